"""Every bug mutation_check.py plants still has its place in the code: a refactor that moves
the text a mutation replaces is caught here, not by a failing `make mutation-check` later."""

from __future__ import annotations

import pytest

from mutation_check import MUTATIONS, ROOT


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_text_each_mutation_replaces_occurs_once(mutation):
    text = (ROOT / mutation.path).read_text()
    assert text.count(mutation.old) == 1, f"{mutation.path}: fix mutation {mutation.name!r}"
    assert mutation.new != mutation.old


def test_mutation_names_are_unique():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
