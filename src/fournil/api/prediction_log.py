"""The durable prediction log: every online prediction reaches `prediction_log`, through
warehouse outages and restarts.

`PredictionLog.add` only queues (never on a request's I/O path). A writer thread inserts the
queue in batches, by size (500 rows) and by time (the oldest row waits at most `flush_seconds`,
under steady traffic too). A failed insert is retried with backoff (0.5 s doubling to 30 s);
while the warehouse refuses, batches go to a local spill file (JSON lines, one file per process,
bounded by `spill_bytes`; past that bound rows are dropped and counted). When an insert succeeds
again the spill files are replayed, oldest first, each deleted once written. Spill files left by
a process that died (found at start: a file no live process holds a lock on) are replayed too.
On shutdown the queue is flushed, to the warehouse or else to the spill file.

Counts of written, spilled, replayed and dropped rows, and the rows pending (queued or spilled),
are Prometheus metrics. A crash (SIGKILL) loses at most the rows queued since the last flush.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import IO, Any

from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, insert

from fournil.api.errors import describe
from fournil.db.schema import prediction_log

log = logging.getLogger("fournil.api")

ROWS = Counter(
    "fournil_api_prediction_log_rows_total",
    "Prediction log rows by what happened to them: written (to the warehouse), spilled (to the "
    "local file while it was down), replayed (from that file), dropped (lost: queue or file full)",
    ["outcome"],
)
PENDING = Gauge(
    "fournil_api_prediction_log_pending_rows",
    "Prediction log rows not in the warehouse yet (queued or spilled)",
    multiprocess_mode="livesum",
)
BATCH_ROWS = 500
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
_STOP = object()


def _encode(row: dict[str, Any]) -> str:
    return json.dumps({k: str(v) if isinstance(v, dt.date) else v for k, v in row.items()})


def _decode(line: str) -> dict[str, Any]:
    row = json.loads(line)
    row["target_date"] = dt.date.fromisoformat(row["target_date"])
    return row


class PredictionLog:
    def __init__(
        self,
        engine: Engine,
        spill_dir: Path,
        flush_seconds: float = 2.0,
        spill_bytes: int = 100_000_000,
        max_queue: int = 100_000,
    ) -> None:
        self.engine, self.flush_seconds, self.spill_bytes = engine, flush_seconds, spill_bytes
        self.spill_dir = spill_dir
        spill_dir.mkdir(parents=True, exist_ok=True)
        self.spill_path = spill_dir / f"prediction-log-{os.getpid()}-{time.time_ns()}.jsonl"
        self._spill: IO[str] | None = None  # ours, locked while open
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self.pending = 0
        self.counts = {"written": 0, "spilled": 0, "replayed": 0, "dropped": 0}
        self.failing = False  # the last insert failed: batches go to the spill file until
        self._next_attempt = 0.0  # this time (monotonic), then the warehouse is tried again
        self._backoff = BACKOFF_FIRST
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.thread.start()

    # --- counting --------------------------------------------------------------------------
    def _count(self, outcome: str, n: int, pending: int) -> None:
        if not n:
            return
        with self._lock:
            self.counts[outcome] += n
            self.pending += pending
        ROWS.labels(outcome).inc(n)
        PENDING.inc(pending)

    # --- the request side --------------------------------------------------------------------
    def add(self, rows: list[dict[str, object]]) -> None:
        queued = 0
        for row in rows:
            try:
                self.queue.put_nowait(row)
                queued += 1
            except queue.Full:
                self._count("dropped", 1, 0)
        with self._lock:
            self.pending += queued
        PENDING.inc(queued)

    # --- the writer ----------------------------------------------------------------------------
    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(prediction_log), rows)

    def _failed(self, exc: Exception) -> None:
        if not self.failing:
            log.warning("prediction log: the warehouse refused rows, spilling: %s", describe(exc))
        self.failing = True
        self._next_attempt = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _recovered(self) -> None:
        if self.failing:
            log.info("prediction log: the warehouse takes rows again")
        self.failing, self._backoff = False, BACKOFF_FIRST

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        """Insert `batch`; True if it is in the warehouse."""
        try:
            self._insert(batch)
        except Exception as exc:
            self._failed(exc)
            return False
        self._recovered()
        self._count("written", len(batch), -len(batch))
        return True

    def _to_spill(self, batch: list[dict[str, Any]]) -> None:
        if self._spill is None:
            self._spill = self.spill_path.open("a", encoding="utf-8")
            fcntl.flock(self._spill, fcntl.LOCK_EX | fcntl.LOCK_NB)
        room = self.spill_bytes - self._spill.tell()
        lines = [_encode(row) + "\n" for row in batch]
        kept = 0
        for line in lines:
            room -= len(line.encode())
            if room < 0:
                break
            kept += 1
        self._spill.writelines(lines[:kept])
        self._spill.flush()
        os.fsync(self._spill.fileno())
        if kept < len(lines):
            log.error("prediction log: spill file full, %d rows dropped", len(lines) - kept)
            self._count("dropped", len(lines) - kept, -(len(lines) - kept))
        # spilled rows stay pending until replayed
        with self._lock:
            self.counts["spilled"] += kept
        ROWS.labels("spilled").inc(kept)

    def _replay(self) -> None:
        """Write every spill file no live process holds (ours once closed), oldest first."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        for path in sorted(self.spill_dir.glob("prediction-log-*.jsonl"), key=_age):
            try:
                handle = path.open("r+", encoding="utf-8")
            except FileNotFoundError:
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live process's own file
                lines = [line for line in handle if line.strip()]
                ours = path == self.spill_path
                done = 0
                try:
                    for at in range(0, len(lines), BATCH_ROWS):
                        self._insert([_decode(line) for line in lines[at : at + BATCH_ROWS]])
                        done = min(at + BATCH_ROWS, len(lines))
                except Exception:
                    handle.seek(0)  # keep only what is not written yet: no row twice
                    handle.truncate()
                    handle.writelines(lines[done:])
                    handle.flush()
                    os.fsync(handle.fileno())
                    self._replayed(done, ours)
                    raise
                path.unlink()
                self._replayed(done, ours)
                log.info("prediction log: %d spilled rows written from %s", done, path.name)

    def _replayed(self, done: int, ours: bool) -> None:
        if not done:
            return
        with self._lock:
            self.counts["replayed"] += done
            if ours:  # our spilled rows were counted pending; another process's were not
                self.pending -= done
        ROWS.labels("replayed").inc(done)
        if ours:
            PENDING.dec(done)

    def _flush(self, batch: list[dict[str, Any]], last: bool = False) -> None:
        if not batch:
            return
        if self.failing and not last and time.monotonic() < self._next_attempt:
            self._to_spill(batch)  # backing off: no warehouse attempt per batch
        elif self._write(batch):
            if self._spilled_exists():
                self._try_replay()
        else:
            self._to_spill(batch)

    def _try_replay(self) -> None:
        try:
            self._replay()
        except Exception as exc:
            self._failed(exc)
        else:
            self._recovered()

    def _spilled_exists(self) -> bool:
        return self._spill is not None or any(self.spill_dir.glob("prediction-log-*.jsonl"))

    def _run(self) -> None:
        if self._spilled_exists():
            self._try_replay()  # what a process that died left behind
        batch: list[dict[str, Any]] = []
        oldest = 0.0
        while True:
            now = time.monotonic()
            timeout: float | None = None
            if batch:
                timeout = max(0.0, self.flush_seconds - (now - oldest))
            elif self.failing:  # nothing queued: probe the warehouse by replaying the spill
                timeout = max(0.0, self._next_attempt - now)
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                self._flush(batch, last=True)
                if self._spill is not None:
                    self._spill.close()
                    self._spill = None
                return
            if item is not None:
                if not batch:
                    oldest = time.monotonic()
                batch.append(item)
                if len(batch) < BATCH_ROWS and time.monotonic() - oldest < self.flush_seconds:
                    continue
            if batch:
                self._flush(batch)
                batch = []
            elif self.failing and time.monotonic() >= self._next_attempt:
                self._try_replay()

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (to the warehouse, else to the spill file) and stop."""
        self.queue.put(_STOP)
        self.thread.join(timeout=timeout)


def _age(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
