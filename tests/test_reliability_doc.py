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


def message_templates() -> list[tuple[re.Pattern, str]]:
    """Every string the library can print, as a pattern (its f-strings with ``(.*?)`` where a
    value goes in) and its own text; only those with 8 characters of their own or more (not
    ``f"{a}: {b}"``)."""
    patterns = []
    for path in (ROOT / "src" / "aclstm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                pieces, current = [], ""
                for value in node.values:
                    if isinstance(value, ast.Constant):
                        current += value.value
                    else:
                        pieces, current = [*pieces, current], ""
                pieces.append(current)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                pieces = [node.value]
            else:
                continue
            if sum(len(p.strip()) for p in pieces) >= 8:
                pattern = re.compile("(.*?)".join(map(re.escape, pieces)), re.DOTALL)
                patterns.append((pattern, "\x00".join(pieces)))
    return patterns


def quoted_messages() -> list[str]:
    """The messages the bad-input table quotes: backticked text of its behaviour column."""
    messages = []
    for row in bad_input_rows():
        behaviour = row.split(" | ")[2]
        messages += [m for m in re.findall(r"`([^`]+)`", behaviour) if len(m) >= 30 and " " in m]
    return messages


def test_quoted_messages_are_what_the_code_prints():
    """Guards the table's "verbatim" claim: each quoted message is one the library can print,
    one of its f-strings with values filled in (after any "PATH: " prefix that DataError and
    the like put first). A message whose wording changes in the code, and not here, fails.
    The two quotes that leave text out ("...") or start mid-line are checked piece by piece:
    their runs of words between values must stand in the library's strings as they are."""
    patterns = message_templates()
    messages = quoted_messages()
    assert len(messages) >= 45
    partial = []
    for message in messages:
        tails = [message] + [
            message[k + 2 :] for k in range(len(message)) if message[k:].startswith(": ")
        ]
        if any(p.fullmatch(tail) for tail in tails for p, _ in patterns):
            continue
        assert "..." in message or not message[0].isalnum(), f"no code prints {message!r}"
        partial.append(message)
    assert len(partial) <= 2, partial
    code = "\x00".join(text for _, text in patterns)
    for message in partial:
        for piece in re.split(r"\.\.\.|\([^()]*\)|\d+", message):
            piece = piece.strip(" ,;:(")
            if len(piece) >= 12:
                assert piece in code, f"{piece!r} (from {message!r}) is not in src/"
