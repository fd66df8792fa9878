"""The example notebooks are committed without outputs (what runs them is the test in
tests/integration/test_notebooks.py; outputs in git would be noise and could leak data)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_is_valid_and_stripped(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code and book.cells[0].cell_type == "markdown"  # a title says what it is for
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name}: outputs committed: run `make notebooks-strip`"
        )
