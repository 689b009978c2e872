"""docs/reliability.md: at least 20 bad inputs, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([^\]]+)\])?`")


def bad_input_rows() -> list[str]:
    """The rows of the "Bad inputs" table (numbered first column)."""
    section = DOC.read_text().split("## Bad inputs", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if re.match(r"\| \d+ \|", line)]


def test_the_bad_input_table_has_at_least_20_rows_each_with_a_test():
    rows = bad_input_rows()
    assert len(rows) >= 20
    for row in rows:
        assert REFERENCE.search(row), row


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize(
    ("path", "name", "param"), sorted(set(REFERENCE.findall(DOC.read_text()))), ids=str
)
def test_every_named_test_exists(path, name, param):
    source = ROOT / path
    assert source.is_file(), path
    assert name in functions_in(source), f"{path} has no {name}"
    if param:  # a parametrised case: its id is written in the file
        assert f'"{param}"' in source.read_text(), f"{path} has no case {param!r}"
