"""How a drop file is written, and what it holds: its encoding, delimiter, decimal separator and
date format (`Dialect`), and which kind of drop its header says it is.

Real exports are rarely the contract's own spelling: a French till or Excel writes `;`
separators, decimal commas, `dd/mm/yyyy` dates and Windows-1252 bytes. Each of these is
detected (the delimiter from the header; decimals and dates from samples of the file, its head
and blocks spread over it, so that a file sorted by date shows more than its first day; the
encoding by the readers' full pass over the bytes), or given (`DialectOptions`, from
`fournil etl run --encoding --delimiter --decimal --date-format`). What cannot be told apart
is refused with a one-line reason, never guessed: dates whose every sample reads both as
`dd/mm` and `mm/dd` (`01/02/2026`) need `--date-format`.

The readers then turn dates and decimals into the contract's spelling (ISO dates, `.` decimals)
before validation; a value that does not parse in the file's format is left as it came, and the
contract rejects it with its reason.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fournil.etl.contract import CONTRACTS, LOAD_ORDER, Contract, Kind

DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
DECIMALS = {".": "point", ",": "comma"}
#: date formats a drop may use, by the name people know them by
DATE_FORMATS = {
    "yyyy-mm-dd": "%Y-%m-%d",
    "dd/mm/yyyy": "%d/%m/%Y",
    "mm/dd/yyyy": "%m/%d/%Y",
    "dd.mm.yyyy": "%d.%m.%Y",
    "dd-mm-yyyy": "%d-%m-%Y",
    "yyyy/mm/dd": "%Y/%m/%d",
}
_DATE_PATTERNS = {
    "%Y-%m-%d": r"(\d{4})-(\d{1,2})-(\d{1,2})",
    "%d/%m/%Y": r"(\d{1,2})/(\d{1,2})/(\d{4})",
    "%m/%d/%Y": r"(\d{1,2})/(\d{1,2})/(\d{4})",
    "%d.%m.%Y": r"(\d{1,2})\.(\d{1,2})\.(\d{4})",
    "%d-%m-%Y": r"(\d{1,2})-(\d{1,2})-(\d{4})",
    "%Y/%m/%d": r"(\d{4})/(\d{1,2})/(\d{1,2})",
}
SAMPLE_BLOCKS, BLOCK_BYTES = 8, 1 << 16


class DialectError(ValueError):
    """The file's dialect cannot be told (or is contradicted by what was given): one line."""


@dataclass(frozen=True)
class DialectOptions:
    """What the user gave; None: detect it."""

    encoding: str | None = None
    delimiter: str | None = None
    decimal: str | None = None
    date_format: str | None = None  # a name of DATE_FORMATS, or a strftime format

    def __post_init__(self) -> None:
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise DialectError(f"unknown encoding {self.encoding!r}") from None
        if self.delimiter is not None and self.delimiter not in DELIMITERS:
            names = ", ".join(repr(d) for d in DELIMITERS)
            raise DialectError(f"delimiter must be one of {names}, not {self.delimiter!r}")
        if self.decimal is not None and self.decimal not in DECIMALS:
            raise DialectError(f"decimal separator must be '.' or ',', not {self.decimal!r}")
        if self.date_format is not None:
            strftime = DATE_FORMATS.get(self.date_format.lower(), self.date_format)
            if strftime not in _DATE_PATTERNS:
                known = ", ".join(DATE_FORMATS)
                raise DialectError(f"date format must be one of {known}, not {self.date_format!r}")
            object.__setattr__(self, "date_format", strftime)


@dataclass(frozen=True)
class Dialect:
    encoding: str = "utf-8"
    delimiter: str = ","
    decimal: str = "."
    date_format: str = "%Y-%m-%d"
    given: frozenset[str] = field(default_factory=frozenset)  # the fields the user gave

    @property
    def date_name(self) -> str:
        return next((k for k, v in DATE_FORMATS.items() if v == self.date_format), "?")

    def as_dict(self) -> dict[str, Any]:
        """For the run log (etl_runs.reader)."""
        return {
            "encoding": self.encoding,
            "delimiter": self.delimiter,
            "decimal": self.decimal,
            "date_format": self.date_name,
            "given": sorted(self.given),
        }

    def describe(self, csv_file: bool = True) -> str:
        """One line: how the file was read, and which of it was given rather than detected."""
        parts = [f"dates {self.date_name}", f"decimal {DECIMALS[self.decimal]}"]
        if csv_file:
            parts = [self.encoding, f"{DELIMITERS[self.delimiter]}-separated", *parts]
        given = f" (given: {', '.join(sorted(self.given))})" if self.given else ""
        return ", ".join(parts) + given


# --- encoding and header -------------------------------------------------------------------


def _blocks(path: Path) -> Iterable[bytes]:
    """The file's head and SAMPLE_BLOCKS - 1 blocks spread over the rest (raw bytes)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        yield fh.read(BLOCK_BYTES)
        if size <= BLOCK_BYTES:
            return
        for i in range(1, SAMPLE_BLOCKS):
            fh.seek(size * i // SAMPLE_BLOCKS)
            yield fh.read(BLOCK_BYTES)


def header_line(path: Path, encoding: str) -> str:
    with path.open(encoding=encoding, errors="replace", newline="") as fh:
        line = fh.readline()
    return line.lstrip("\ufeff").rstrip("\r\n")


def split_header(line: str, delimiter: str) -> list[str]:
    return [h.strip() for h in next(csv.reader([line], delimiter=delimiter), [])]


def kind_of_header(columns: Sequence[str]) -> Kind | None:
    """The contract whose required columns the header holds (sales before the masters: a sales
    header names store_id and product_id too)."""
    for kind in reversed(LOAD_ORDER):
        if all(c in columns for c in CONTRACTS[kind].required):
            return kind
    return None


def sniff_layout(
    path: Path, options: DialectOptions, contract: Contract | None
) -> tuple[str, str, list[str], Kind | None]:
    """(encoding as given or UTF-8, delimiter, header, kind by header) of a CSV file. The
    delimiter is the one whose split of the header holds a contract's required columns (the
    given contract's, if any), else the one giving the most columns."""
    # UTF-8 unless given: the readers' full pass (`readers._scan`) is what decides, turning it
    # into Windows-1252 at the first byte that is not UTF-8; the header and the samples read
    # here need only ASCII (the contracts' columns, digits, separators)
    encoding = options.encoding or "utf-8"
    line = header_line(path, encoding)
    candidates = [options.delimiter] if options.delimiter else list(DELIMITERS)
    best: tuple[str, list[str]] | None = None
    for delimiter in candidates:
        header = split_header(line, delimiter)
        kind = kind_of_header(header)
        if contract is not None:
            kind = contract.kind if all(c in header for c in contract.required) else None
        if kind is not None:
            return encoding, delimiter, header, kind
        if best is None or len(header) > len(best[1]):
            best = (delimiter, header)
    assert best is not None
    return encoding, best[0], best[1], None


# --- samples: decimals and dates ------------------------------------------------------------


def sample_records(path: Path, encoding: str, delimiter: str, limit: int = 2000) -> list[list[str]]:
    """Records from the head of the file and from blocks spread over it: the header, a block's
    first (partial) line and a line cut at a block's end are left out."""
    records: list[list[str]] = []
    blocks = list(_blocks(path))
    per_block = limit // len(blocks)  # each part of the file gets its share
    for block in blocks:
        lines = block.decode(encoding, errors="replace").splitlines()
        if len(block) == BLOCK_BYTES:
            lines = lines[:-1]  # it may end inside a line
        records += [r for r in csv.reader(lines[1 : per_block + 1], delimiter=delimiter) if r]
    return records


def _values(records: list[list[str]], header: list[str], names: Iterable[str]) -> list[str]:
    positions = [header.index(n) for n in names if n in header]
    return [r[p].strip() for r in records for p in positions if p < len(r) and r[p].strip()]


def detect_decimal(values: list[str]) -> str:
    """',' when numbers are written with a decimal comma and never with a decimal point."""
    commas = sum(bool(re.fullmatch(r"-?\d*,\d+", v)) for v in values)
    points = sum(bool(re.fullmatch(r"-?\d*\.\d+", v)) for v in values)
    return "," if commas and not points else "."


def _parses(value: str, fmt: str) -> bool:
    found = re.fullmatch(_DATE_PATTERNS[fmt], value)
    if not found:
        return False
    parts = dict(zip(re.findall(r"%([dmY])", fmt), map(int, found.groups()), strict=True))
    return 1 <= parts["m"] <= 12 and 1 <= parts["d"] <= 31


def detect_date_format(values: list[str]) -> str:
    """The format most sampled dates parse in (a few bad dates do not hide it). ISO wins whenever
    it fits; dd/mm against mm/dd is decided by a day over 12, and refused when none has one."""
    if not values:
        return "%Y-%m-%d"
    fitting = [f for f in _DATE_PATTERNS if all(_parses(v, f) for v in values)]
    if not fitting:
        fitting = [
            f for f in _DATE_PATTERNS if sum(_parses(v, f) for v in values) * 2 > len(values)
        ]
    if not fitting:
        return "%Y-%m-%d"  # let the contract say which values are not dates
    if "%Y-%m-%d" in fitting:
        return "%Y-%m-%d"
    if "%d/%m/%Y" in fitting and "%m/%d/%Y" in fitting:
        raise DialectError(
            f"ambiguous dates: {values[0]!r} reads as dd/mm/yyyy and as mm/dd/yyyy and no "
            "sampled date tells them apart; pass --date-format dd/mm/yyyy or mm/dd/yyyy"
        )
    return fitting[0]


def complete(
    base: Dialect,
    options: DialectOptions,
    header: list[str],
    records: list[list[str]],
    contract: Contract,
) -> Dialect:
    """`base` (encoding and delimiter known) with the decimal separator and the date format,
    given or detected from `records` (rows under `header`)."""
    floats = [f.name for f in contract.fields if f.type == "float"]
    dates = [f.name for f in contract.fields if f.type == "date"]
    decimal = options.decimal or detect_decimal(_values(records, header, floats))
    date_format = options.date_format or detect_date_format(_values(records, header, dates))
    given = {
        name
        for name in ("encoding", "delimiter", "decimal", "date_format")
        if getattr(options, name) is not None
    }
    return replace(base, decimal=decimal, date_format=date_format, given=frozenset(given))


def sniff_csv(path: Path, contract: Contract, options: DialectOptions) -> tuple[Dialect, list[str]]:
    """The dialect of a CSV drop of `contract`, and its header."""
    encoding, delimiter, header, _ = sniff_layout(path, options, contract)
    records = sample_records(path, encoding, delimiter)
    dialect = complete(Dialect(encoding, delimiter), options, header, records, contract)
    if dialect.decimal == "," and delimiter == ",":
        raise DialectError("a decimal comma in a comma-separated file: the columns cannot be told")
    return dialect, header
