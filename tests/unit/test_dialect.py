"""The dialect rules on their own: which date format, which decimal separator, which options."""

from __future__ import annotations

from pathlib import Path

import pytest

from fournil.etl.contract import SALES
from fournil.etl.dialect import (
    DialectError,
    DialectOptions,
    detect_date_format,
    detect_decimal,
    sniff_csv,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2026-03-01", "2026-03-02"], "%Y-%m-%d"),
        (["01/03/2026", "13/03/2026"], "%d/%m/%Y"),  # a day over 12 in front: dd/mm
        (["03/01/2026", "03/13/2026"], "%m/%d/%Y"),  # a day over 12 second: mm/dd
        (["1.3.2026", "24.12.2026"], "%d.%m.%Y"),
        (["13/03/2026", "14/03/2026", "oops"], "%d/%m/%Y"),  # a bad value does not hide it
        (["oops", "nope", "13/03/2026"], "%Y-%m-%d"),  # mostly not dates: the contract says
        ([], "%Y-%m-%d"),
    ],
)
def test_date_formats_are_told_apart(values: list[str], expected: str) -> None:
    assert detect_date_format(values) == expected


def test_dates_without_a_day_over_12_are_refused_with_the_fix() -> None:
    with pytest.raises(DialectError, match=r"ambiguous dates: '01/02/2026'.*--date-format"):
        detect_date_format(["01/02/2026", "02/02/2026", "12/11/2026"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["2,35", "1,1", "3"], ","), (["2.35", "3"], "."), (["2,35", "2.35"], "."), ([], ".")],
)
def test_decimal_separator(values: list[str], expected: str) -> None:
    assert detect_decimal(values) == expected


def test_options_are_checked_and_date_names_become_formats() -> None:
    assert DialectOptions(date_format="DD/MM/YYYY").date_format == "%d/%m/%Y"
    assert DialectOptions(date_format="%m/%d/%Y").date_format == "%m/%d/%Y"
    for bad in (
        {"encoding": "klingon"},
        {"delimiter": ":"},
        {"decimal": ";"},
        {"date_format": "%j"},
    ):
        with pytest.raises(DialectError):
            DialectOptions(**bad)


def test_a_file_sorted_by_date_is_sampled_beyond_its_first_days(tmp_path: Path) -> None:
    """A big export sorted by date: its head holds only days 1-12 (ambiguous), the blocks
    spread over the file reach later days and decide dd/mm."""
    lines = ["date;store_id;product_id;units_sold;price;promo"]
    for day in range(1, 29):
        lines += [f"{day:02d}/02/2026;{s};1;3;2,5;0" for s in range(1, 3000)]
    path = tmp_path / "sales.csv"
    path.write_text("\n".join(lines) + "\n", encoding="cp1252")
    dialect, header = sniff_csv(path, SALES, DialectOptions())
    assert (dialect.delimiter, dialect.decimal, dialect.date_format) == (";", ",", "%d/%m/%Y")
    assert header[0] == "date"


def test_a_decimal_comma_in_a_comma_separated_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sales.csv"
    path.write_text('date,store_id,product_id,units_sold,price,promo\n2026-03-01,1,1,3,"2,5",0\n')
    with pytest.raises(DialectError, match="decimal comma in a comma-separated file"):
        sniff_csv(path, SALES, DialectOptions())
