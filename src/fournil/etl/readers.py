"""Reading drop files (CSV in any dialect, Excel, Parquet): one-line errors for bad files, then
chunks of text rows.

Every field is read as text, so that a rejected row can be kept as it came (dates and decimals
in the contract's spelling: see `fournil.etl.dialect`). CSV is parsed by Arrow (fast,
streaming); a malformed line (wrong number of fields) is kept too, with its line number, found
by a second, exact pass that runs only when such lines exist. Excel is read by openpyxl.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fournil.etl.contract import Contract, Kind
from fournil.etl.dialect import (
    Dialect,
    DialectError,
    DialectOptions,
    complete,
    kind_of_header,
    sniff_csv,
    sniff_layout,
)

SCAN_BLOCK = 16 << 20
ISO_DATE = "%Y-%m-%d"


class BadFileError(Exception):
    """A file that cannot be loaded at all; the message is one line for the run log."""


@dataclass
class Malformed:
    line: int
    text: str
    reason: str


@dataclass
class Chunk:
    rows: pa.Table  # text columns
    lines: np.ndarray  # line (CSV), row number (Parquet) or sheet row (Excel) of each row
    malformed: list[Malformed] = field(default_factory=list)


@dataclass
class Drop:
    """An opened drop file: its columns, how it is read (None: Parquet, typed), its chunks."""

    columns: list[str]
    dialect: Dialect | None
    chunks: Iterator[Chunk]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(SCAN_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# --- CSV ---------------------------------------------------------------------------------------


def _scan(path: Path, dialect: Dialect) -> tuple[Dialect, bool]:
    """Check the whole file decodes in the dialect's encoding (BadFileError if not; a detected
    UTF-8 becomes Windows-1252 on the first byte that is not UTF-8); return the dialect and
    whether the file has blank lines."""
    decoder = codecs.getincrementaldecoder(dialect.encoding)()
    offset = 0
    newlines = 0
    blank = False
    previous = b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(SCAN_BLOCK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                if dialect.encoding == "utf-8" and "encoding" not in dialect.given:
                    return _scan(path, replace(dialect, encoding="cp1252"))
                bad_at = exc.start
                line = newlines + block.count(b"\n", 0, max(bad_at, 0)) + 1
                raise BadFileError(
                    f"not {dialect.encoding}: byte 0x{block[bad_at]:02X} on line {line} "
                    f"(offset {offset + bad_at}); pass the file's --encoding or re-export it "
                    "as UTF-8"
                ) from None
            if not block:
                return dialect, blank
            seam = previous[-2:] + block
            blank = blank or b"\n\n" in seam or b"\n\r\n" in seam
            previous = block
            offset += len(block)
            newlines += block.count(b"\n")


def _text_encoding(dialect: Dialect) -> str:
    return "utf-8-sig" if dialect.encoding == "utf-8" else dialect.encoding


def _header(path: Path, dialect: Dialect) -> list[str]:
    with path.open(encoding=_text_encoding(dialect), newline="") as fh:
        first = fh.readline()
        if not first.strip():
            raise BadFileError("empty file: no header and no rows")
        header = next(csv.reader([first], delimiter=dialect.delimiter))
        if not fh.readline().strip() and not fh.read(1 << 16).strip():
            raise BadFileError("no data rows (header only)")
    return [h.strip() for h in header]


def check_csv(
    path: Path, contract: Contract, options: DialectOptions | None = None
) -> tuple[list[str], bool, Dialect]:
    """Raise BadFileError if the file cannot be loaded; return its columns, whether it has blank
    lines, and its dialect (given in `options`, or detected)."""
    if path.stat().st_size == 0:
        raise BadFileError("empty file (0 bytes)")
    try:
        dialect, _ = sniff_csv(path, contract, options or DialectOptions())
    except DialectError as exc:
        raise BadFileError(str(exc)) from None
    dialect, has_blank_lines = _scan(path, dialect)
    header = _header(path, dialect)
    missing = [c for c in contract.required if c not in header]
    if missing:
        raise BadFileError(
            f"missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(header) or 'none'}, read as {dialect.describe()})"
        )
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise BadFileError(f"column(s) {', '.join(duplicated)} appear more than once in the header")
    return header, has_blank_lines, dialect


def _exact_layout(
    path: Path, n_columns: int, dialect: Dialect
) -> tuple[np.ndarray, list[Malformed]]:
    """Line of every well-formed record, and the malformed ones (slow; used only if needed)."""
    lines: list[int] = []
    malformed: list[Malformed] = []
    with path.open(encoding=_text_encoding(dialect), newline="") as fh:
        reader = csv.reader(fh, delimiter=dialect.delimiter)
        next(reader)
        start = reader.line_num + 1
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                start = reader.line_num + 1
                continue
            if len(record) == n_columns:
                lines.append(start)
            else:
                malformed.append(
                    Malformed(
                        start,
                        dialect.delimiter.join(record),
                        f"malformed line: expected {n_columns} fields, found {len(record)}",
                    )
                )
            start = reader.line_num + 1
    return np.asarray(lines, dtype=np.int64), malformed


def normalize(table: pa.Table, contract: Contract, dialect: Dialect) -> pa.Table:
    """Dates and decimals in the contract's spelling (ISO dates, '.' decimals); a value that
    does not parse in the file's format stays as it came (the contract rejects it)."""
    for spec in contract.fields:
        if spec.name not in table.column_names:
            continue
        column = table[spec.name]
        if spec.type == "date" and dialect.date_format != ISO_DATE:
            parsed = pc.strptime(column, format=dialect.date_format, unit="s", error_is_null=True)
            iso = pc.strftime(parsed, format=ISO_DATE)
            column = pc.if_else(pc.is_null(parsed), column, iso)
        elif spec.type == "float" and dialect.decimal == ",":
            column = pc.replace_substring(column, ",", ".")
        else:
            continue
        table = table.set_column(table.column_names.index(spec.name), spec.name, column)
    return table


def iter_csv(
    path: Path, contract: Contract, chunk_rows: int, options: DialectOptions | None = None
) -> Iterator[Chunk]:
    return open_csv(path, contract, chunk_rows, options).chunks


def open_csv(
    path: Path, contract: Contract, chunk_rows: int, options: DialectOptions | None = None
) -> Drop:
    header, irregular, dialect = check_csv(path, contract, options)
    return Drop(
        header, dialect, _csv_chunks(path, contract, chunk_rows, header, irregular, dialect)
    )


def _csv_chunks(
    path: Path,
    contract: Contract,
    chunk_rows: int,
    header: list[str],
    irregular: bool,
    dialect: Dialect,
) -> Iterator[Chunk]:
    wanted = [c for c in contract.names if c in header]
    invalid_seen: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid_seen.append(row.text)
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            block_size=min(max(chunk_rows * 48, 1 << 16), 1 << 28), encoding=dialect.encoding
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=dialect.delimiter, invalid_row_handler=on_invalid
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in header},
            include_columns=wanted,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    layout: tuple[np.ndarray, list[Malformed]] | None = None
    reported_malformed = 0
    done = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def flush() -> Chunk:
        nonlocal done, layout, reported_malformed, pending, pending_rows
        table = normalize(pa.Table.from_batches(pending, schema=reader.schema), contract, dialect)
        pending, pending_rows = [], 0
        n = table.num_rows
        malformed: list[Malformed] = []
        if (invalid_seen or irregular) and layout is None:
            layout = _exact_layout(path, len(header), dialect)
        if layout is not None:
            lines = layout[0][done : done + n]
            last_line = int(lines[-1]) if n else np.iinfo(np.int64).max
            fresh = [m for m in layout[1][reported_malformed:] if m.line <= last_line]
            reported_malformed += len(fresh)
            malformed = fresh
        else:
            lines = np.arange(done + 2, done + 2 + n, dtype=np.int64)
        done += n
        return Chunk(rows=table, lines=lines, malformed=malformed)

    try:
        for batch in reader:
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= chunk_rows:
                yield flush()
        if pending:
            yield flush()
        if layout is None and (invalid_seen or irregular):
            layout = _exact_layout(path, len(header), dialect)
        if layout is not None and reported_malformed < len(layout[1]):
            yield Chunk(
                rows=pa.table({c: pa.array([], pa.string()) for c in wanted}),
                lines=np.zeros(0, np.int64),
                malformed=layout[1][reported_malformed:],
            )
    except pa.ArrowInvalid as exc:
        raise BadFileError(f"unreadable CSV: {str(exc).splitlines()[0]}") from None


# --- Parquet ---------------------------------------------------------------------------------


def open_parquet(path: Path, contract: Contract, chunk_rows: int) -> Drop:
    if path.stat().st_size == 0:
        raise BadFileError("empty file (0 bytes)")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BadFileError(f"not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    columns = pf.schema_arrow.names
    missing = [c for c in contract.required if c not in columns]
    if missing:
        raise BadFileError(
            f"missing required column(s) {', '.join(missing)} (found: {', '.join(columns)})"
        )
    if pf.metadata.num_rows == 0:
        raise BadFileError("no data rows")
    wanted = [c for c in contract.names if c in columns]

    def chunks() -> Iterator[Chunk]:
        done = 0
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=wanted):
            text = pa.table(
                [batch.column(i).cast(pa.string()) for i in range(batch.num_columns)],
                names=batch.schema.names,
            )
            n = text.num_rows
            # booleans cast to 'true'/'false', dates to ISO: the contract's own spellings
            yield Chunk(rows=text, lines=np.arange(done + 1, done + 1 + n, dtype=np.int64))
            done += n

    return Drop(columns, None, chunks())


# --- Excel -------------------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    """A cell as the text a CSV export would hold: dates ISO, whole numbers without '.0'."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value).strip()


def _sheet_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(row number, cell texts) of the first worksheet's non-empty rows."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile, XML or openpyxl's own errors: all mean unreadable
        raise BadFileError(f"not a readable .xlsx workbook: {type(exc).__name__}") from None
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            texts = [_cell_text(v) for v in values]
            if any(texts):
                yield number, texts
    finally:
        book.close()


def xlsx_header(path: Path) -> list[str]:
    first = next(_sheet_rows(path), None)
    if first is None:
        raise BadFileError("empty workbook: no header and no rows")
    return [h for h in first[1]]


def open_xlsx(
    path: Path, contract: Contract, chunk_rows: int, options: DialectOptions | None = None
) -> Drop:
    """The first worksheet of an .xlsx drop: its first non-empty row is the header. Cells are
    read as the text a CSV export would hold (row numbers are the sheet's); date and number
    cells need no dialect, text cells holding dates or decimal commas get one, as CSV does."""
    options = options or DialectOptions()
    rows = _sheet_rows(path)
    first = next(rows, None)
    if first is None:
        raise BadFileError("empty workbook: no header and no rows")
    header = [h.strip() for h in first[1]]
    while header and not header[-1]:
        header.pop()
    missing = [c for c in contract.required if c not in header]
    if missing:
        raise BadFileError(
            f"missing required column(s) {', '.join(missing)} (found: {', '.join(header)})"
        )
    duplicated = sorted({c for c in header if c and header.count(c) > 1})
    if duplicated:
        raise BadFileError(f"column(s) {', '.join(duplicated)} appear more than once in the header")
    wanted = [c for c in contract.names if c in header]
    positions = [header.index(c) for c in wanted]
    sample: list[tuple[int, list[str]]] = list(itertools.islice(rows, 2000))
    if not sample:
        raise BadFileError("no data rows (header only)")
    try:
        dialect = complete(Dialect(), options, header, [r for _, r in sample], contract)
    except DialectError as exc:
        raise BadFileError(str(exc)) from None

    def chunks() -> Iterator[Chunk]:
        every = itertools.chain(sample, rows)
        while block := list(itertools.islice(every, chunk_rows)):
            columns = {
                name: pa.array([r[p] if p < len(r) else "" for _, r in block], pa.string())
                for name, p in zip(wanted, positions, strict=True)
            }
            table = normalize(pa.table(columns), contract, dialect)
            yield Chunk(rows=table, lines=np.asarray([n for n, _ in block], np.int64))

    return Drop(header, dialect, chunks())


# --- any drop ----------------------------------------------------------------------------------

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx"}


def open_drop(
    path: Path, contract: Contract, chunk_rows: int, options: DialectOptions | None = None
) -> Drop:
    """A CSV, Parquet or Excel drop, opened: its columns, dialect and chunks of text rows;
    BadFileError if it cannot be read."""
    form = SUFFIXES.get(path.suffix.lower())
    if form == "csv":
        return open_csv(path, contract, chunk_rows, options)
    if form == "parquet":
        return open_parquet(path, contract, chunk_rows)
    if form == "xlsx":
        return open_xlsx(path, contract, chunk_rows, options)
    raise BadFileError(
        f"unsupported file type {path.suffix or '(none)'}: use .csv, .xlsx or .parquet"
    )


def header_kind(path: Path, options: DialectOptions | None = None) -> Kind | None:
    """The kind of drop the file's header says it is, None if it says none (or is unreadable)."""
    try:
        form = SUFFIXES.get(path.suffix.lower())
        if form == "csv":
            return sniff_layout(path, options or DialectOptions(), None)[3]
        if form == "parquet":
            return kind_of_header(pq.ParquetFile(path).schema_arrow.names)
        if form == "xlsx":
            return kind_of_header([h.strip() for h in xlsx_header(path)])
    except (BadFileError, DialectError, OSError, pa.ArrowInvalid, UnicodeError):
        return None
    return None
