"""`fournil etl run`: load drop files, each in one transaction, each with a run-log entry.

For every file: a run-log row is committed as `running`; then, in one transaction, chunks are
read as text, validated, good rows staged, bad rows quarantined with their reasons, and the stage
merged. The counts must reconcile (read = inserted + updated + unchanged + rejected) before the
transaction commits. Any failure rolls the whole file back and marks its run `failed` with a
one-line error; a killed process leaves the warehouse as it was (the database rolls back).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from sqlalchemy import Connection, Engine, insert, select, update

from fournil.calendar import business_today
from fournil.db.schema import etl_runs, products, quarantine, stores
from fournil.etl.contract import CONTRACTS, LOAD_ORDER, Context, Contract, Kind, kind_of, validate
from fournil.etl.dialect import DialectOptions
from fournil.etl.load import KeyIndex, Stage
from fournil.etl.readers import SUFFIXES, BadFileError, Chunk, file_sha256, header_kind, open_drop
from fournil.settings import Settings

log = logging.getLogger("fournil.etl")
UNKNOWN = "unknown"  # the run log's kind of a file that holds no drop it can tell


class EtlError(Exception):
    """The ETL call itself cannot proceed (no such path, nothing to load)."""


@dataclass
class FileResult:
    path: Path
    kind: Kind | None  # None: the file holds no drop that could be told
    run_id: int
    status: str = "running"
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_rejected: int = 0
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    reader: dict[str, object] | None = None  # how the file was read (Dialect.as_dict)
    read_as: str | None = None  # the same, in words

    @property
    def reconciles(self) -> bool:
        return self.rows_read == (
            self.rows_inserted + self.rows_updated + self.rows_unchanged + self.rows_rejected
        )


@dataclass
class EtlResult:
    batch_id: str
    files: list[FileResult]

    @property
    def ok(self) -> bool:
        return all(f.status == "success" for f in self.files)


ProgressCallback = Callable[[Path, int], None]


def _hidden(path: Path) -> bool:
    """Files that are nobody's drop: dot files, and the lock files Excel and LibreOffice leave
    beside an open workbook."""
    return path.name.startswith((".", "~$", ".~lock."))


def kind_of_file(path: Path, options: DialectOptions | None = None) -> Kind | None:
    """The kind of drop `path` holds: from its name (`sales_2024-05.csv`), else from its
    header (`export.csv` with a sales header); None if neither tells."""
    return kind_of(path.name) or header_kind(path, options)


def discover(
    source: Path, kind: Kind | None = None, options: DialectOptions | None = None
) -> list[tuple[Path, Kind | None]]:
    """The drop files under `source` (a file or a folder), masters first. In a folder every
    file is a drop: one whose kind cannot be told comes last with kind None, to be logged as a
    failed run with its reason (never skipped without a word); only hidden and lock files are
    left out, with a log line."""
    if not source.exists():
        raise EtlError(f"no such file or folder: {source}")
    if source.is_file():
        found = kind or kind_of_file(source, options)
        if found is None:
            raise EtlError(
                f"cannot tell what {source.name} holds: neither its name (stores*, products*, "
                "sales*) nor its header (the contract's columns) says; pass --kind"
            )
        return [(source, found)]
    files: list[tuple[Path, Kind | None]] = []
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        if _hidden(path):
            log.info("%s: hidden or lock file, not a drop: left out", path.name)
            continue
        files.append((path, kind or kind_of_file(path, options)))
    if not files:
        raise EtlError(
            f"no drop files in {source}: expected stores, products and sales files "
            "(.csv, .xlsx or .parquet)"
        )
    order = [*LOAD_ORDER, None]
    return sorted(files, key=lambda item: (order.index(item[1]), item[0].name))


def _context(conn: Connection, settings: Settings) -> Context:
    known = {
        row.store_id: row.opened_on
        for row in conn.execute(select(stores.c.store_id, stores.c.opened_on))
    }
    return Context(
        today=business_today(settings.timezone),
        known_stores=known,
        known_products=frozenset(conn.execute(select(products.c.product_id)).scalars()),
        max_units=settings.etl.max_units,
        base_prices=dict(
            conn.execute(select(products.c.product_id, products.c.base_price)).tuples().all()
        ),
        max_price_ratio=settings.etl.max_price_ratio,
        max_price=settings.etl.max_price,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC)


def _raw_json(record: dict[str, object]) -> dict[str, object]:
    clean: dict[str, object] = {}
    for key, value in record.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            clean[key] = None
        elif isinstance(value, dt.date | dt.datetime):
            clean[key] = value.isoformat()[:10]
        else:
            clean[key] = value if isinstance(value, str | int | float | bool) else str(value)
    return clean


class _FileLoad:
    """Loads one file inside one transaction.

    Each chunk is validated, checked against the keys of earlier chunks, staged and merged. On
    PostgreSQL the database work of a chunk (quarantine insert, COPY, merge) runs on one worker
    thread while the main thread validates the next chunk, so the server and Python use both
    cores; the two threads never use the connection at the same time.
    """

    def __init__(
        self,
        conn: Connection,
        path: Path,
        contract: Contract,
        result: FileResult,
        settings: Settings,
        on_progress: ProgressCallback | None,
        options: DialectOptions | None = None,
    ) -> None:
        self.options = options
        self.conn = conn
        self.path = path
        self.contract = contract
        self.result = result
        self.settings = settings
        self.on_progress = on_progress
        self.warnings: dict[str, int] = {}
        self.seen = KeyIndex()
        self.spans: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _quarantine_rows(
        self, lines: list[int | None], raws: list[dict[str, object]], reasons: list[str]
    ) -> list[dict[str, object]]:
        self.result.rows_rejected += len(reasons)
        return [
            {
                "etl_run_id": self.result.run_id,
                "source": str(self.path),
                "line": line,
                "raw": _raw_json(raw),
                "reason": reason,
            }
            for line, raw, reason in zip(lines, raws, reasons, strict=True)
        ]

    def _write(
        self,
        stage: Stage,
        good: pa.Table,
        lines: np.ndarray,
        codes: np.ndarray,
        rejected: list[dict[str, object]],
        ctx: Context,
    ) -> None:
        if rejected:
            self.conn.execute(insert(quarantine), rejected)
        if good.num_rows and stage.postgres and self.contract.kind == "sales":
            good, lines = self._insert_new_keys(stage, good, lines, codes, ctx)
        if good.num_rows:
            stage.add(good, lines)
            counts = stage.merge(self.result.run_id)
            stage.clear()
            self.result.rows_inserted += counts.inserted
            self.result.rows_updated += counts.updated
            self.result.rows_unchanged += counts.unchanged

    def _insert_new_keys(
        self, stage: Stage, good: pa.Table, lines: np.ndarray, codes: np.ndarray, ctx: Context
    ) -> tuple[pa.Table, np.ndarray]:
        """COPY the rows that cannot be in `sales` yet straight in; return the others, which go
        through the stage and merge (insert, update or unchanged). A row cannot be there yet
        when its day is outside its series' span as the file's load began: a key repeated
        within the file is a duplicate, caught before this."""
        if self.spans is None:
            self.spans = self._series_spans(stage, ctx)
        series, first_day, last_day = self.spans
        day, mine = self._split(codes)
        at = np.searchsorted(series, mine).clip(max=max(len(series) - 1, 0))
        is_new = np.ones(good.num_rows, bool)
        if len(series):
            known = series[at] == mine
            is_new = ~known | (day < first_day[at]) | (day > last_day[at])
        self.result.rows_inserted += stage.copy_into_target(
            good.filter(pa.array(is_new)), self.result.run_id
        )
        return good.filter(pa.array(~is_new)), lines[~is_new]

    def _series_spans(
        self, stage: Stage, ctx: Context
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The series already in `sales` (as the low bits of their key codes, sorted) and the
        first and last day number of each."""
        spans = stage.sales_series_spans()
        # series of stores or products no longer known can never match a valid row
        known = np.isin(spans[:, 0], ctx.sorted_store_ids) & np.isin(
            spans[:, 1], ctx.sorted_product_ids
        )
        spans = spans[known]
        series = self._series_code(
            np.searchsorted(ctx.sorted_store_ids, spans[:, 0]),
            np.searchsorted(ctx.sorted_product_ids, spans[:, 1]),
        )
        order = np.argsort(series)
        return series[order], spans[order, 2], spans[order, 3]

    # a sales key code: (day + 2**20) in the high bits, then the series (store and product rank)
    _SERIES_BITS = 42

    @staticmethod
    def _series_code(store_rank: np.ndarray, product_rank: np.ndarray) -> np.ndarray:
        return (store_rank.astype(np.int64) << 21) | product_rank.astype(np.int64)

    @classmethod
    def _code(cls, day: np.ndarray, store_rank: np.ndarray, product_rank: np.ndarray) -> np.ndarray:
        return ((day.astype(np.int64) + (1 << 20)) << cls._SERIES_BITS) | cls._series_code(
            store_rank, product_rank
        )

    @classmethod
    def _split(cls, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The day numbers and the series codes of sales key codes."""
        return (codes >> cls._SERIES_BITS) - (1 << 20), codes & ((1 << cls._SERIES_BITS) - 1)

    def _codes(self, good: pa.Table, ctx: Context) -> np.ndarray:
        """One int64 per key: the id itself for masters; for sales, (day, store, product)
        with ids replaced by their rank among the known ones so that any ids fit in 63 bits."""
        if self.contract.kind != "sales":
            return np.asarray(good.column(self.contract.key_columns[0]).to_numpy(), dtype=np.int64)
        day = np.asarray(good.column("sale_date").cast(pa.int32()).to_numpy(), np.int64)
        store = np.searchsorted(ctx.sorted_store_ids, good.column("store_id").to_numpy()).astype(
            np.int64
        )
        product = np.searchsorted(
            ctx.sorted_product_ids, good.column("product_id").to_numpy()
        ).astype(np.int64)
        return self._code(day, store, product)

    def _chunk(self, ctx: Context, chunk: Chunk) -> tuple[pa.Table, np.ndarray, np.ndarray, list]:
        rejected = self._quarantine_rows(
            [m.line for m in chunk.malformed],
            [{"line_text": m.text} for m in chunk.malformed],
            [m.reason for m in chunk.malformed],
        )
        self.result.rows_read += chunk.rows.num_rows + len(chunk.malformed)
        if chunk.rows.num_rows == 0:
            return chunk.rows, np.zeros(0, np.int64), np.zeros(0, np.int64), rejected
        checked = validate(chunk.rows, self.contract, ctx)
        for text_warning, count in checked.warnings.items():
            self.warnings[text_warning] = self.warnings.get(text_warning, 0) + count
        bad_positions, reasons = list(checked.bad_positions), list(checked.bad_reasons)
        lines = chunk.lines[checked.good_positions]
        codes = self._codes(checked.good, ctx)
        earlier = self.seen.check_and_add(codes, lines)
        repeated = earlier > 0
        good = checked.good
        if repeated.any():
            key = "/".join(self.contract.key)
            bad_positions += list(checked.good_positions[repeated])
            reasons += [f"duplicate {key}: line {n} has the same key" for n in earlier[repeated]]
            good, lines = good.filter(pa.array(~repeated)), lines[~repeated]
            codes = codes[~repeated]
        if bad_positions:
            positions = np.asarray(bad_positions, np.int64)
            raws = chunk.rows.take(pa.array(positions)).to_pylist()
            rejected += self._quarantine_rows(
                [int(x) for x in chunk.lines[positions]], raws, reasons
            )
        return good, lines, codes, rejected

    def run(self) -> None:
        ctx = _context(self.conn, self.settings)
        if self.on_progress:
            self.on_progress(self.path, 0)  # started: rates count from here
        drop = open_drop(self.path, self.contract, self.settings.etl.chunk_rows, self.options)
        if drop.dialect is not None:
            self.result.reader = drop.dialect.as_dict()
            self.result.read_as = drop.dialect.describe(csv_file=self.path.suffix != ".xlsx")
            log.info("%s: read as %s", self.path.name, self.result.read_as)
        chunks = drop.chunks
        first = next(chunks, None)
        if first is None:
            raise BadFileError("no data rows")
        present = [c for c in self.contract.names if c in first.rows.column_names]
        stage = Stage(self.conn, self.contract, present)
        stage.lock_target()
        overlap = self.conn.dialect.name == "postgresql"
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="etl-db") as db:
            pending: Future[None] | None = None
            for number, chunk in enumerate(itertools.chain([first], chunks), start=1):
                good, lines, codes, rejected = self._chunk(ctx, chunk)
                if pending is not None:
                    pending.result()  # one chunk in flight at most; re-raises its error
                if overlap:
                    pending = db.submit(self._write, stage, good, lines, codes, rejected, ctx)
                else:
                    self._write(stage, good, lines, codes, rejected, ctx)
                elapsed = max(time.perf_counter() - started, 1e-9)
                log.info(  # one line per chunk: progress where there is no terminal
                    "%s: chunk %d, %s rows read (%s rows/s), %s rejected so far",
                    self.path.name,
                    number,
                    f"{self.result.rows_read:,}",
                    f"{self.result.rows_read / elapsed:,.0f}",
                    f"{self.result.rows_rejected:,}",
                )
                if self.on_progress:
                    self.on_progress(self.path, self.result.rows_read)
            if pending is not None:
                pending.result()
        stage.drop()
        self._collect_warnings(present, drop.columns)
        if not self.result.reconciles:  # a bug, never expected: refuse to commit
            raise RuntimeError(
                f"counts do not reconcile: read {self.result.rows_read} != inserted "
                f"{self.result.rows_inserted} + updated {self.result.rows_updated} + unchanged "
                f"{self.result.rows_unchanged} + rejected {self.result.rows_rejected}"
            )

    def _collect_warnings(self, present: list[str], columns: list[str]) -> None:
        ignored = [c for c in columns if c and c not in self.contract.names]
        if ignored:
            self.result.warnings.append(f"ignored unknown column(s): {', '.join(ignored)}")
        absent = [f.name for f in self.contract.fields if not f.required and f.name not in present]
        if absent:
            self.result.warnings.append(f"optional column(s) absent: {', '.join(absent)}")
        self.result.warnings += [f"{n} {text_warning}" for text_warning, n in self.warnings.items()]
        if self.result.rows_rejected:
            self.result.warnings.append(f"{self.result.rows_rejected} rows quarantined")


def _finish(engine: Engine, result: FileResult) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(etl_runs)
            .where(etl_runs.c.run_id == result.run_id)
            .values(
                status=result.status,
                finished_at=_now(),
                rows_read=result.rows_read,
                rows_inserted=result.rows_inserted,
                rows_updated=result.rows_updated,
                rows_unchanged=result.rows_unchanged,
                rows_rejected=result.rows_rejected,
                warnings=result.warnings,
                error=result.error,
                reader=result.reader,
            )
        )


def load_file(
    engine: Engine,
    path: Path,
    kind: Kind | None,
    batch_id: str,
    settings: Settings,
    on_progress: ProgressCallback | None = None,
    options: DialectOptions | None = None,
) -> FileResult:
    """Load one drop file in one transaction and log the run. Never raises for bad data. A file
    of no kind (None) is logged as a failed run saying why."""
    try:
        digest: str | None = file_sha256(path)
    except OSError:
        digest = None
    with engine.begin() as conn:
        run_id = conn.execute(
            insert(etl_runs)
            .values(
                batch_id=batch_id,
                source=str(path),
                kind=kind or UNKNOWN,
                file_sha256=digest,
                started_at=_now(),
                status="running",
                warnings=[],
            )
            .returning(etl_runs.c.run_id)
        ).scalar_one()
    result = FileResult(path=path, kind=kind, run_id=run_id)
    committed = False
    try:
        if kind is None:
            raise BadFileError(_unknown_reason(path))
        with engine.begin() as conn:
            _FileLoad(conn, path, CONTRACTS[kind], result, settings, on_progress, options).run()
        committed = True
        result.status = "success"
        if result.rows_read and result.rows_rejected == result.rows_read:
            # every row is in the quarantine with its reason, but nothing loaded
            result.status = "failed"
            result.error = (
                f"every row was rejected ({result.rows_rejected:,}); nothing was loaded: "
                f"the quarantine holds each with its reason (ETL run {run_id})"
            )
    except BadFileError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # a database or unexpected error: still one line, still logged
        log.debug("load of %s failed", path, exc_info=True)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        result.status, result.error = "failed", f"{type(exc).__name__}: {first_line}"
    if not committed:
        # the transaction rolled back: nothing of this file is in the warehouse
        read = result.rows_read
        result.rows_inserted = result.rows_updated = result.rows_unchanged = 0
        result.rows_rejected = 0
        result.rows_read = 0
        if read:
            result.warnings = [f"rolled back after reading {read} rows"]
    _finish(engine, result)
    log.debug(
        "%s %s: %s",
        kind or UNKNOWN,
        path.name,
        json.dumps(
            {
                "status": result.status,
                "read": result.rows_read,
                "inserted": result.rows_inserted,
                "updated": result.rows_updated,
                "unchanged": result.rows_unchanged,
                "rejected": result.rows_rejected,
                "error": result.error,
            }
        ),
    )
    return result


def _unknown_reason(path: Path) -> str:
    if path.suffix.lower() not in SUFFIXES:
        return (
            f"not a drop: {path.suffix or 'no'} file type (drops are .csv, .xlsx or .parquet); "
            "move it out of the drop folder"
        )
    return (
        "cannot tell what it holds: neither its name (stores*, products*, sales*) nor its "
        "header (the contract's columns) says; rename it, or load it with --kind"
    )


def loaded_digests(engine: Engine) -> set[str]:
    """SHA-256 of every file already loaded successfully (to skip re-delivered drops)."""
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(etl_runs.c.file_sha256).where(
                    etl_runs.c.status == "success", etl_runs.c.file_sha256.is_not(None)
                )
            ).scalars()
        )


def run_etl(
    source: Path,
    engine: Engine,
    settings: Settings,
    kind: Kind | None = None,
    on_progress: ProgressCallback | None = None,
    options: DialectOptions | None = None,
) -> EtlResult:
    """Load every drop file under `source`, masters first, each in its own transaction."""
    files = discover(Path(source), kind, options)
    batch_id = str(uuid.uuid4())
    results = [
        load_file(engine, path, file_kind, batch_id, settings, on_progress, options)
        for path, file_kind in files
    ]
    return EtlResult(batch_id=batch_id, files=results)
