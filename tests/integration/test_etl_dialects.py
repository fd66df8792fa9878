"""Drops as real users have them: CSV exports in other dialects (French `;`, decimal commas,
dd/mm/yyyy and Windows-1252; tabs and mm/dd/yyyy; German dd.mm.yyyy), Excel workbooks written by
openpyxl (date and number cells, or dates and decimal commas typed as text), under names that
say nothing. Each must load into the same warehouse rows as the contract's own CSV; ambiguous
dates are refused unless a format is given; nothing in a drop folder is skipped without a word.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook
from sqlalchemy import Engine, select

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db import make_engine
from fournil.db.schema import etl_runs, products, sales, stores
from fournil.etl.dialect import DialectOptions
from fournil.etl.runner import run_etl
from fournil.settings import get_settings
from tests.conftest import END_DATE
from tests.integration.helpers import throwaway_database


@pytest.fixture(scope="module")
def canonical(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    """A small chain in the contract's own CSV, with accented names (they must survive a
    Windows-1252 round trip)."""
    drop = generate(
        GeneratorConfig(stores=3, products=4, days=45, end_date=END_DATE, seed=3),
        tmp_path_factory.mktemp("canonical"),
    )
    frame = pd.read_csv(drop.stores_path)
    frame["city"] = ["Périgueux", "Besançon", "Orléans"][: len(frame)]
    frame.to_csv(drop.stores_path, index=False)
    return drop


def frames(drop: GeneratedData) -> dict[str, pd.DataFrame]:
    return {
        "stores": pd.read_csv(drop.stores_path, dtype=str, keep_default_na=False),
        "products": pd.read_csv(drop.products_path, dtype=str, keep_default_na=False),
        "sales": pd.read_csv(drop.sales_path, dtype=str, keep_default_na=False),
    }


DATE_COLUMNS = {"stores": ["opened_on", "closed_on"], "products": [], "sales": ["date"]}
FLOAT_COLUMNS = {"stores": ["size_m2"], "products": ["base_price"], "sales": ["price"]}
NAMES = {"stores": "magasins", "products": "articles", "sales": "export"}  # say nothing


def rewrite(frame: pd.DataFrame, kind: str, date_format: str, decimal: str) -> pd.DataFrame:
    """The same rows as text in another date format and decimal separator."""
    out = frame.copy()
    for column in DATE_COLUMNS[kind]:
        if column in out:
            parsed = pd.to_datetime(out[column], format="%Y-%m-%d", errors="coerce")
            out[column] = parsed.dt.strftime(date_format).fillna("")
    if decimal == ",":
        for column in FLOAT_COLUMNS[kind]:
            if column in out:
                out[column] = out[column].str.replace(".", ",", regex=False)
    return out


def csv_writer(sep: str, date_format: str, decimal: str, encoding: str, suffix: str = ".csv"):  # type: ignore[no-untyped-def]
    def write(drop: GeneratedData, folder: Path) -> None:
        for kind, frame in frames(drop).items():
            text = rewrite(frame, kind, date_format, decimal)
            text.to_csv(folder / f"{NAMES[kind]}{suffix}", sep=sep, index=False, encoding=encoding)

    return write


def xlsx_typed(drop: GeneratedData, folder: Path) -> None:
    """Workbooks as Excel holds them: date cells, number cells, booleans as 0/1 numbers."""
    for kind, frame in frames(drop).items():
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = "Feuil1"
        sheet.append(list(frame.columns))
        for record in frame.itertuples(index=False):
            cells: list[object] = []
            for column, value in zip(frame.columns, record, strict=True):
                if value == "":
                    cells.append(None)
                elif column in DATE_COLUMNS[kind]:
                    cells.append(dt.date.fromisoformat(value))
                elif column in FLOAT_COLUMNS[kind]:
                    cells.append(float(value))
                elif column.endswith("_id") or column in ("units_sold", "promo", "stock_out"):
                    cells.append(int(float(value)) if value.replace(".", "").isdigit() else value)
                else:
                    cells.append(value)
            sheet.append(cells)
        book.save(folder / f"{NAMES[kind]}.xlsx")


def xlsx_as_text(drop: GeneratedData, folder: Path) -> None:
    """Workbooks typed by hand in a French Excel: dates and prices as text cells."""
    for kind, frame in frames(drop).items():
        text = rewrite(frame, kind, "%d/%m/%Y", ",")
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(list(text.columns))
        for record in text.itertuples(index=False):
            sheet.append([v if v != "" else None for v in record])
        book.save(folder / f"{NAMES[kind]}.xlsx")


DIALECTS: dict[str, tuple[Callable[[GeneratedData, Path], None], dict[str, str]]] = {
    "french csv": (
        csv_writer(";", "%d/%m/%Y", ",", "cp1252"),
        {"encoding": "cp1252", "delimiter": ";", "decimal": ",", "date_format": "dd/mm/yyyy"},
    ),
    "us tab-separated, utf-8 with BOM": (
        csv_writer("\t", "%m/%d/%Y", ".", "utf-8-sig", ".csv"),
        {"encoding": "utf-8", "delimiter": "\t", "decimal": ".", "date_format": "mm/dd/yyyy"},
    ),
    "german csv": (
        csv_writer(";", "%d.%m.%Y", ",", "latin-1"),
        {"encoding": "cp1252", "delimiter": ";", "decimal": ",", "date_format": "dd.mm.yyyy"},
    ),
    "excel workbook": (xlsx_typed, {"decimal": ".", "date_format": "yyyy-mm-dd"}),
    "excel workbook typed as text": (xlsx_as_text, {"decimal": ",", "date_format": "dd/mm/yyyy"}),
}


def table_rows(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row's data (not when nor by which run it was loaded)."""
    with engine.connect() as conn:
        return {
            t.name: sorted(
                conn.execute(
                    select(*[c for c in t.c if not c.name.endswith(("_at", "run_id"))])
                ).tuples(),
                key=repr,
            )
            for t in (stores, products, sales)
        }


@pytest.fixture(scope="module")
def reference(canonical: GeneratedData, pg_template: str) -> Iterator[dict[str, list]]:
    with throwaway_database("dialect_ref", pg_template) as url:
        engine = make_engine(url)
        assert run_etl(canonical.out_dir, engine, get_settings()).ok
        yield table_rows(engine)
        engine.dispose()


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialect_loads_the_same_rows_as_the_contract_csv(
    dialect: str,
    canonical: GeneratedData,
    reference: dict[str, list],
    pg_template: str,
    tmp_path: Path,
) -> None:
    write, expected_reader = DIALECTS[dialect]
    folder = tmp_path / "drop"
    folder.mkdir()
    write(canonical, folder)
    with throwaway_database("dialect", pg_template) as url:
        engine = make_engine(url)
        result = run_etl(folder, engine, get_settings())
        assert result.ok, [(f.path.name, f.error) for f in result.files]
        assert [f.kind for f in result.files] == ["stores", "products", "sales"]
        assert all(f.rows_rejected == 0 for f in result.files)
        assert table_rows(engine) == reference
        with engine.connect() as conn:
            logged = dict(conn.execute(select(etl_runs.c.kind, etl_runs.c.reader)).tuples().all())
        engine.dispose()
    # the run log keeps how each file was read (sales: dates and prices; stores: accents)
    expected = {k: v for k, v in expected_reader.items() if k != "encoding"}
    assert {k: logged["sales"][k] for k in expected} == expected, logged["sales"]
    if "encoding" in expected_reader:
        assert logged["stores"]["encoding"] == expected_reader["encoding"], logged["stores"]
    assert all(reader["given"] == [] for reader in logged.values())


@pytest.fixture
def ambiguous(canonical: GeneratedData, tmp_path: Path) -> Path:
    """Sales dated 1 to 10 June written dd/mm/yyyy: each reads as a day of January to October
    as well."""
    folder = tmp_path / "drop"
    folder.mkdir()
    for path in (canonical.stores_path, canonical.products_path):
        (folder / path.name).write_bytes(path.read_bytes())
    sales_frame = frames(canonical)["sales"]
    june = sales_frame[sales_frame.date.between("2026-06-01", "2026-06-10")]
    rewrite(june, "sales", "%d/%m/%Y", ".").to_csv(folder / "sales.csv", index=False)
    return folder


def test_ambiguous_dates_are_refused_unless_a_format_is_given(ambiguous: Path, pg_url: str) -> None:
    engine = make_engine(pg_url)
    refused = run_etl(ambiguous, engine, get_settings())
    sales_run = refused.files[-1]
    assert sales_run.status == "failed" and sales_run.error is not None
    assert "ambiguous dates" in sales_run.error and "--date-format" in sales_run.error
    loaded = run_etl(
        ambiguous / "sales.csv",
        engine,
        get_settings(),
        options=DialectOptions(date_format="dd/mm/yyyy"),
    )
    assert loaded.ok, loaded.files[0].error
    assert loaded.files[0].reader is not None
    assert loaded.files[0].reader["given"] == ["date_format"]
    with engine.connect() as conn:
        days = set(conn.execute(select(sales.c.sale_date).distinct()).scalars())
    engine.dispose()
    assert days == {dt.date(2026, 6, d) for d in range(1, 11)}


def test_nothing_in_a_drop_folder_is_skipped_without_a_word(
    canonical: GeneratedData, tmp_path: Path, pg_url: str
) -> None:
    """Files of no kind are failed runs with their reason; the drops beside them still load;
    `fournil etl run` prints how each file was read and exits 1."""
    folder = tmp_path / "drop"
    folder.mkdir()
    csv_writer(";", "%d/%m/%Y", ",", "cp1252")(canonical, folder)
    (folder / "notes.txt").write_text("call the Orléans shop\n")
    (folder / "export2.csv").write_text("week,turnover\n1,1200\n")
    (folder / ".DS_Store").write_bytes(b"\0\0")
    (folder / "~$export.xlsx").write_bytes(b"lock")
    engine = make_engine(pg_url)
    result = run_etl(folder, engine, get_settings())
    outcome = {f.path.name: (f.status, f.error) for f in result.files}
    assert set(outcome) == {
        "magasins.csv",
        "articles.csv",
        "export.csv",
        "notes.txt",
        "export2.csv",
    }
    assert {outcome[n][0] for n in ("magasins.csv", "articles.csv", "export.csv")} == {"success"}
    assert outcome["notes.txt"][0] == "failed" and "not a drop" in str(outcome["notes.txt"][1])
    assert outcome["export2.csv"][0] == "failed"
    assert "cannot tell what it holds" in str(outcome["export2.csv"][1])
    with engine.connect() as conn:
        kinds = dict(conn.execute(select(etl_runs.c.source, etl_runs.c.kind)).tuples().all())
    engine.dispose()
    assert kinds[str(folder / "notes.txt")] == "unknown"
    done = subprocess.run(
        [sys.executable, "-m", "fournil", "etl", "run", "--source", str(folder)],
        env={**__import__("os").environ, "DATABASE_URL": pg_url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # the stores file has accents (Windows-1252 bytes); the sales export is plain ASCII
    assert "read magasins.csv: cp1252, semicolon-separated, dates dd/mm/yyyy, decimal comma" in (
        done.stdout
    ), done.stdout
    assert "read export.csv: utf-8, semicolon-separated, dates dd/mm/yyyy" in done.stdout
    assert "notes.txt: not a drop" in done.stdout and "Traceback" not in done.stderr
