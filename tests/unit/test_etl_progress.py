"""`fournil etl run` sizes its progress bar from the file before loading it."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fournil.cli.etl import expected_rows
from fournil.data.generator import GeneratorConfig, generate
from tests.conftest import END_DATE


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_expected_rows_is_close_to_the_real_count(tmp_path: Path, fmt: str) -> None:
    drop = generate(
        GeneratorConfig(stores=12, products=8, days=730, end_date=END_DATE, seed=3, fmt=fmt),  # type: ignore[arg-type]
        tmp_path,
    )
    guess = expected_rows(drop.sales_path)
    assert guess is not None
    if fmt == "parquet":
        assert guess == pq.ParquetFile(drop.sales_path).metadata.num_rows == drop.rows
    else:  # a CSV over 1 MB: estimated from its first megabyte
        assert drop.sales_path.stat().st_size > 1 << 20
        assert abs(guess - drop.rows) / drop.rows < 0.05


def test_expected_rows_of_an_unreadable_file_is_unknown(tmp_path: Path) -> None:
    broken = tmp_path / "sales.parquet"
    broken.write_bytes(b"not parquet")
    assert expected_rows(broken) is None
    assert expected_rows(tmp_path / "missing.csv") is None
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert expected_rows(empty) is None
