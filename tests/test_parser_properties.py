"""Property tests (hypothesis) of the sampler and the list and CSV parsers: for every input,
the documented result or a DataError naming the file and line, never another exception."""

from __future__ import annotations

import itertools
import random
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aclstm.data import (
    DataError,
    read_congd_segments,
    read_isogd_list,
    read_jester_split,
    read_rawframe_list,
)
from aclstm.data.jester import read_jester_classes
from aclstm.data.sampling import sample_indices

FILE_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@given(
    n=st.integers(1, 2000),
    t=st.integers(1, 128),
    training=st.booleans(),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=500, deadline=None)
def test_sample_indices_are_t_non_decreasing_indices_within_the_clip(n, t, training, seed):
    indices = sample_indices(n, t, training, random.Random(seed))
    assert len(indices) == t
    assert all(0 <= k <= n - 1 for k in indices)
    assert all(a <= b for a, b in itertools.pairwise(indices))
    if not training:
        assert indices == sample_indices(n, t, False)


# Text made of the characters list files are made of, and of the ones that break them.
line_text = st.text(alphabet=string.ascii_letters + string.digits + " ;-_./\t\ufeff", max_size=30)
file_text = st.lists(line_text, max_size=8).map("\n".join)
line_ending = st.sampled_from(["\n", "\r\n", "\r"])


def _write(tmp_path, text: str, ending: str, name: str):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", ending).encode("utf-8"))
    return path


@FILE_SETTINGS
@given(text=file_text, ending=line_ending)
def test_rawframe_lists_parse_or_name_file_and_line(tmp_path, text, ending):
    path = _write(tmp_path, text, ending, "list.txt")
    try:
        records = read_rawframe_list(path, num_classes=5)
    except DataError as error:
        assert str(path) in str(error)
        return
    for record in records:
        assert record.num_frames >= 1 and -1 <= record.label < 5


@FILE_SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            st.from_regex(r"[a-z0-9_/]{1,12}", fullmatch=True),
            st.integers(1, 500),
            st.integers(0, 4),
        ),
        max_size=10,
    ),
    ending=line_ending,
    bom=st.booleans(),
)
def test_valid_rawframe_lists_round_trip(tmp_path, rows, ending, bom):
    text = ("\ufeff" if bom else "") + "\n".join(f"{d} {n} {y}" for d, n, y in rows) + "\n"
    records = read_rawframe_list(_write(tmp_path, text, ending, "list.txt"), num_classes=5)
    assert [(r.source.name, r.num_frames, r.label) for r in records] == [
        (tmp_path.joinpath(d).name, n, y) for d, n, y in rows
    ]


@FILE_SETTINGS
@given(text=file_text, ending=line_ending)
def test_isogd_lists_parse_or_name_file_and_line(tmp_path, text, ending):
    path = _write(tmp_path, text, ending, "valid_list.txt")
    try:
        records = read_isogd_list(path, tmp_path)
    except DataError as error:
        assert str(path) in str(error)
        return
    assert all(-1 <= r.label <= 248 for r in records)


@FILE_SETTINGS
@given(labels=file_text, split=file_text, ending=line_ending)
def test_jester_csvs_parse_or_name_file_and_line(tmp_path, labels, split, ending):
    labels_path = _write(tmp_path, labels, ending, "labels.csv")
    split_path = _write(tmp_path, split, ending, "train.csv")
    try:
        classes = read_jester_classes(labels_path)
        items = read_jester_split(split_path, classes)
    except DataError as error:
        assert str(labels_path) in str(error) or str(split_path) in str(error)
        return
    assert len(set(classes)) == len(classes) > 0
    assert len({clip for clip, _ in items}) == len(items)
    assert all(-1 <= label < len(classes) for _, label in items)


congd_text = st.lists(st.text(alphabet=string.digits + " ,:-_/\t", max_size=30), max_size=8).map(
    "\n".join
)


@FILE_SETTINGS
@given(text=congd_text, ending=line_ending)
def test_congd_lists_parse_or_name_file_and_line(tmp_path, text, ending):
    path = _write(tmp_path, text, ending, "train_list.txt")
    try:
        entries = read_congd_segments(path, num_classes=249)
    except DataError as error:
        assert str(path) in str(error) and error.line is not None
        return
    for entry in entries:
        segments = entry.segments or ()
        assert all(1 <= s.start <= s.end and 1 <= s.label <= 249 for s in segments)
        assert all(a.end < b.start for a, b in itertools.pairwise(segments))
