"""Reading drop files: one-line errors for bad files, then chunks of text rows.

Every field is read as text, so that a rejected row can be kept exactly as it came. CSV is
parsed by Arrow (fast, streaming); a malformed line (wrong number of fields) is kept too, with
its line number, found by a second, exact pass that runs only when such lines exist.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fournil.etl.contract import Contract

SCAN_BLOCK = 16 << 20
OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "pipes"}


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
    lines: np.ndarray  # line (CSV) or row number (Parquet) of each row
    malformed: list[Malformed] = field(default_factory=list)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(SCAN_BLOCK):
            digest.update(block)
    return digest.hexdigest()


# --- CSV ---------------------------------------------------------------------------------------


def _scan(path: Path) -> bool:
    """Check the file is UTF-8 (BadFileError if not); return whether it has blank lines."""
    decoder = codecs.getincrementaldecoder("utf-8")()
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
                bad_at = exc.start
                line = newlines + block.count(b"\n", 0, max(bad_at, 0)) + 1
                raise BadFileError(
                    f"not UTF-8: byte 0x{block[bad_at]:02X} on line {line} "
                    f"(offset {offset + bad_at}); re-export the file as UTF-8"
                ) from None
            if not block:
                return blank
            seam = previous[-2:] + block
            blank = blank or b"\n\n" in seam or b"\n\r\n" in seam
            previous = block
            offset += len(block)
            newlines += block.count(b"\n")


def _header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        first = fh.readline()
        if not first.strip():
            raise BadFileError("empty file: no header and no rows")
        header = next(csv.reader([first]))
        if not fh.readline().strip() and not fh.read(1 << 16).strip():
            raise BadFileError("no data rows (header only)")
    return [h.strip() for h in header]


def check_csv(path: Path, contract: Contract) -> tuple[list[str], bool]:
    """Raise BadFileError if the file cannot be loaded; return its columns, and whether it
    has blank lines."""
    if path.stat().st_size == 0:
        raise BadFileError("empty file (0 bytes)")
    has_blank_lines = _scan(path)
    header = _header(path)
    missing = [c for c in contract.required if c not in header]
    if missing:
        if len(header) == 1:
            for delimiter, name in OTHER_DELIMITERS.items():
                if all(c in header[0].split(delimiter) for c in contract.required):
                    raise BadFileError(
                        f"wrong delimiter: columns are separated by {name}, expected commas"
                    )
        raise BadFileError(
            f"missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(header) or 'none'})"
        )
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise BadFileError(f"column(s) {', '.join(duplicated)} appear more than once in the header")
    return header, has_blank_lines


def _exact_layout(path: Path, n_columns: int) -> tuple[np.ndarray, list[Malformed]]:
    """Line of every well-formed record, and the malformed ones (slow; used only if needed)."""
    lines: list[int] = []
    malformed: list[Malformed] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
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
                        ",".join(record),
                        f"malformed line: expected {n_columns} fields, found {len(record)}",
                    )
                )
            start = reader.line_num + 1
    return np.asarray(lines, dtype=np.int64), malformed


def iter_csv(path: Path, contract: Contract, chunk_rows: int) -> Iterator[Chunk]:
    header, irregular = check_csv(path, contract)
    wanted = [c for c in contract.names if c in header]
    invalid_seen: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid_seen.append(row.text)
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=min(max(chunk_rows * 48, 1 << 16), 1 << 28)),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
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
        table = pa.Table.from_batches(pending, schema=reader.schema)
        pending, pending_rows = [], 0
        n = table.num_rows
        malformed: list[Malformed] = []
        if (invalid_seen or irregular) and layout is None:
            layout = _exact_layout(path, len(header))
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
            layout = _exact_layout(path, len(header))
        if layout is not None and reported_malformed < len(layout[1]):
            yield Chunk(
                rows=pa.table({c: pa.array([], pa.string()) for c in wanted}),
                lines=np.zeros(0, np.int64),
                malformed=layout[1][reported_malformed:],
            )
    except pa.ArrowInvalid as exc:
        raise BadFileError(f"unreadable CSV: {str(exc).splitlines()[0]}") from None


# --- Parquet -----------------------------------------------------------------------------------


def iter_parquet(path: Path, contract: Contract, chunk_rows: int) -> Iterator[Chunk]:
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


def iter_chunks(path: Path, contract: Contract, chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of text rows from a CSV or Parquet drop; BadFileError if it cannot be read."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return iter_csv(path, contract, chunk_rows)
    if suffix in (".parquet", ".pq"):
        return iter_parquet(path, contract, chunk_rows)
    raise BadFileError(f"unsupported file type {suffix or '(none)'}: use .csv or .parquet")


def extra_columns(path: Path, contract: Contract) -> list[str]:
    """Columns of the file that the contract does not know (they are ignored)."""
    if path.suffix.lower() == ".csv":
        names = _header(path)
    else:
        names = pq.ParquetFile(path).schema_arrow.names
    return [c for c in names if c not in contract.names]
