"""The README's Python examples run, and print the shapes their comments promise."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """The ```python blocks (```py blocks need data sets on disk and are not run)."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_examples_run_and_print_what_they_say():
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, str(README), "exec"), {})
        printed = out.getvalue().splitlines()
        promised = [
            line.split("#", 1)[1].split(":")[0].strip()
            for line in block.splitlines()
            if line.startswith("print(") and "#" in line
        ]
        assert len(printed) == len(promised)
        for got, want in zip(printed, promised, strict=True):
            shapes = re.findall(r"\(([\d, ]+)\)", want)
            assert [f"torch.Size([{s}])" for s in shapes] == re.findall(
                r"torch\.Size\(\[[^]]*\]\)", got
            )
