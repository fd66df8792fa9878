"""The durable prediction log against a PostgreSQL server the test owns: written by time under
steady traffic, spilled while the server is down and replayed when it is back, flushed on
shutdown, picked up after a crash, bounded."""

from __future__ import annotations

import datetime as dt
import fcntl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from fournil.api.prediction_log import PredictionLog
from fournil.db import make_engine, upgrade
from fournil.db.schema import prediction_log
from tests.integration.owned_postgres import OwnedPostgres, owned_postgres


@dataclass
class Warehouse:
    pg: OwnedPostgres
    engine: Engine


@pytest.fixture(scope="module")
def server() -> Iterator[OwnedPostgres]:
    with owned_postgres() as pg:
        yield pg


@pytest.fixture
def warehouse(server: OwnedPostgres) -> Iterator[Warehouse]:
    engine = make_engine(server.create_database(f"log_{uuid.uuid4().hex[:8]}"), pool_pre_ping=True)
    upgrade(engine)
    yield Warehouse(server, engine)
    engine.dispose()


def rows(n: int, tag: str) -> list[dict[str, object]]:
    return [
        {
            "request_id": f"{tag}-{i}",
            "key_id": "k",
            "model_name": "m",
            "model_version": "1",
            "arm": "champion",
            "store_id": 1,
            "product_id": 1,
            "target_date": dt.date(2026, 7, 1),
            "inputs_hash": "0" * 64,
            "yhat": 1.5,
        }
        for i in range(n)
    ]


def stored(engine: Engine, tag: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).where(prediction_log.c.request_id.like(f"{tag}%"))
            ).scalar_one()
        )


def wait_for(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def spill_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("prediction-log-*.jsonl"))


def test_rows_are_written_by_time_under_steady_traffic(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """A row every 50 ms never lets the queue go quiet for a second; rows must still reach the
    warehouse within the flush interval (nothing was written until traffic paused)."""
    log = PredictionLog(warehouse.engine, tmp_path, flush_seconds=0.5)
    try:
        started = time.monotonic()
        first_seen = None
        for i in range(60):  # 3 s of steady traffic
            log.add(rows(1, f"steady{i:02d}"))
            if first_seen is None and stored(warehouse.engine, "steady") > 0:
                first_seen = time.monotonic() - started
            time.sleep(0.05)
        assert first_seen is not None and first_seen < 2.0, first_seen
    finally:
        log.close()
    assert stored(warehouse.engine, "steady") == 60


def test_rows_are_spilled_while_the_warehouse_is_down_and_replayed_when_it_returns(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    log = PredictionLog(warehouse.engine, tmp_path, flush_seconds=0.2)
    try:
        log.add(rows(5, "before"))
        wait_for(lambda: stored(warehouse.engine, "before") == 5, 10, "not written")
        warehouse.pg.stop()
        try:
            for i in range(4):
                log.add(rows(25, f"down{i}"))
                time.sleep(0.3)
            wait_for(lambda: log.counts["spilled"] == 100, 15, f"not spilled: {log.counts}")
            assert spill_files(tmp_path) and log.pending == 100
        finally:
            warehouse.pg.start()
        wait_for(lambda: log.counts["replayed"] == 100, 60, f"not replayed: {log.counts}")
        assert sum(stored(warehouse.engine, f"down{i}") for i in range(4)) == 100
        assert log.pending == 0 and log.counts["dropped"] == 0
        assert not spill_files(tmp_path)
    finally:
        log.close()


def test_shutdown_during_an_outage_keeps_the_rows_for_the_next_process(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Closed while the warehouse is down: the queue goes to the spill file; the next process
    (a restart, or one after a crash) writes it once the warehouse is back, exactly once."""
    warehouse.pg.stop()
    try:
        log = PredictionLog(warehouse.engine, tmp_path, flush_seconds=30)
        log.add(rows(40, "closing"))
        log.close()
        assert log.counts["spilled"] == 40 and len(spill_files(tmp_path)) == 1
    finally:
        warehouse.pg.start()
    successor = PredictionLog(warehouse.engine, tmp_path, flush_seconds=0.2)
    try:
        wait_for(lambda: stored(warehouse.engine, "closing") == 40, 30, "left rows not replayed")
        assert successor.counts["replayed"] == 40 and not spill_files(tmp_path)
    finally:
        successor.close()
    assert stored(warehouse.engine, "closing") == 40


def test_a_live_process_spill_file_is_left_to_it(warehouse: Warehouse, tmp_path: Path) -> None:
    """Another worker's file (locked while it runs) is not replayed under its feet."""
    other = tmp_path / "prediction-log-1-1.jsonl"
    held = other.open("a")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    held.write('{"request_id": "x"}\n')
    held.flush()
    log = PredictionLog(warehouse.engine, tmp_path, flush_seconds=0.2)
    try:
        log.add(rows(3, "mine"))
        wait_for(lambda: stored(warehouse.engine, "mine") == 3, 10, "not written")
        assert other.exists() and log.counts["replayed"] == 0
    finally:
        log.close()
        held.close()


def test_the_spill_file_is_bounded_and_what_it_cannot_hold_is_counted(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    warehouse.pg.stop()
    try:
        log = PredictionLog(warehouse.engine, tmp_path, flush_seconds=0.1, spill_bytes=5_000)
        log.add(rows(200, "flood"))
        log.close()
    finally:
        warehouse.pg.start()
    assert spill_files(tmp_path)[0].stat().st_size <= 5_000
    assert log.counts["spilled"] + log.counts["dropped"] == 200
    assert log.counts["dropped"] > 0 and log.pending == log.counts["spilled"]
