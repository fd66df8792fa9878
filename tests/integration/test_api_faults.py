"""The API under faults, served by the real `fournil api serve` (a subprocess) on a PostgreSQL
server the test owns and stops: a warehouse outage under a client loop, a start without the
warehouse, and slow clients (headers or a body that never finish)."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from fournil.api.app import create_app
from fournil.data.generator import GeneratorConfig, generate
from fournil.db import make_engine, upgrade
from fournil.db.schema import prediction_log
from fournil.models.backtest import BacktestConfig
from fournil.models.estimators import ModelSpec
from fournil.settings import Settings, get_settings, reset_settings_cache
from tests.conftest import END_DATE
from tests.integration.conftest import forecasting_chain
from tests.integration.helpers import free_port, serve
from tests.integration.owned_postgres import OwnedPostgres, owned_postgres

SPEC = ModelSpec(num_boost_round=20, train_days=150, origin_stride=4, horizon=7)
CONFIG = BacktestConfig(folds=2, fold_step=14, test_days=4)
OUTAGE_SECONDS = 15.0  # longer than the key table's refresh (FOURNIL_API_KEY_CACHE_SECONDS, 10)


@contextmanager
def api_process(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`fournil api serve` as a process; yields its base URL once it accepts connections."""
    port = free_port()
    cmd = [sys.executable, "-m", "fournil", "api", "serve", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while True:
                assert proc.poll() is None, "the API exited:\n" + log_path.read_text()[-3000:]
                try:
                    if httpx.get(base + "/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def wait_for(condition, seconds: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        got = condition()
        if got:
            return got
        assert time.monotonic() < deadline, what
        time.sleep(0.25)


@dataclass
class Chain:
    """A warehouse with sales, a promoted champion and forecasts, on a server the test owns."""

    pg: OwnedPostgres
    url: str
    engine: Engine
    env: dict[str, str]
    keys: dict[str, str]


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Chain]:
    with owned_postgres() as pg:
        url = pg.create_database("warehouse")
        overrides = {
            "DATABASE_URL": url,
            "FOURNIL_HORIZON": "7",
            "FOURNIL_GATE_MAX_LATENCY_MS": "5000",
            "FOURNIL_API_TABLES_POLL_SECONDS": "1",
            "FOURNIL_API_MODEL_POLL_SECONDS": "2",
            "FOURNIL_API_LOG_FLUSH_SECONDS": "1",
            "FOURNIL_API_RATE_PER_MINUTE": "100000",
            "FOURNIL_API_AUTH_FAILURES_PER_MINUTE": "100000",
        }
        for name, value in overrides.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()
        settings = get_settings()
        engine = make_engine(url, pool_pre_ping=True)
        upgrade(engine)
        drop = generate(
            GeneratorConfig(stores=3, products=3, days=160, end_date=END_DATE, seed=5),
            tmp_path / "drop",
        )
        keys = forecasting_chain(engine, settings, drop, SPEC, CONFIG)
        env = {**os.environ, "FOURNIL_HOME": str(settings.home_dir), **overrides}
        yield Chain(pg, url, engine, env, keys)
        engine.dispose()


@dataclass
class Loop:
    """A client asking every endpoint in turn, recording (second, endpoint, outcome)."""

    base: str
    keys: dict[str, str]
    t0: float = field(default_factory=time.monotonic)
    seen: list[tuple[float, str, str]] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)  # request ids answered 200
    stop: threading.Event = field(default_factory=threading.Event)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def run(self) -> None:
        read = {"X-API-Key": self.keys["read"]}
        body = {
            "rows": [{"store_id": 1, "product_id": 2, "date": str(END_DATE + dt.timedelta(days=2))}]
        }
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                for name, send in (
                    ("ready", lambda: client.get("/ready")),
                    ("forecasts", lambda: client.get("/v1/forecasts?store_id=1", headers=read)),
                    (
                        "predict",
                        lambda: client.post(
                            "/v1/predict", json=body, headers={"X-API-Key": self.keys["predict"]}
                        ),
                    ),
                    ("models", lambda: client.get("/v1/models/current", headers=read)),
                    ("bad key", lambda: client.get("/v1/forecasts?store_id=1", headers=BAD_KEY)),
                ):
                    try:
                        response = send()
                    except httpx.HTTPError as exc:
                        self.seen.append((self.now(), name, type(exc).__name__))
                        continue
                    outcome = str(response.status_code)
                    if name == "ready":
                        outcome += " " + response.json()["status"]
                    if name == "predict" and response.status_code == 200:
                        self.predicted.append(response.json()["request_id"])
                    self.seen.append((self.now(), name, outcome))
                time.sleep(0.1)

    def outcomes(self, name: str, start: float = 0.0, end: float = float("inf")) -> set[str]:
        return {o for t, n, o in self.seen if n == name and start <= t < end}

    def timeline(self, stopped: float, started: float) -> str:
        """Second by second: what each endpoint answered (counts), the outage marked."""
        names = ("ready", "forecasts", "predict", "models", "bad key")
        buckets: dict[int, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        for t, name, outcome in self.seen:
            cell = buckets[int(t)][name]
            cell[outcome] = cell.get(outcome, 0) + 1
        lines = ["  s | db   | " + " | ".join(f"{n:<22}" for n in names)]
        for second in sorted(buckets):
            db = "down" if stopped <= second + 0.5 < started else "up"
            cells = [
                ", ".join(f"{o} x{c}" for o, c in sorted(buckets[second][n].items())) for n in names
            ]
            lines.append(f"{second:>3} | {db:<4} | " + " | ".join(f"{c:<22}" for c in cells))
        return "\n".join(lines)


BAD_KEY = {"X-API-Key": "fk_000000000000_not-a-real-secret"}


def metric(base: str, name: str, labels: str = "") -> float:
    text = httpx.get(base + "/metrics", timeout=10).text
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+]+)"
    found = re.search("^" + pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def log_counts(base: str) -> dict[str, float]:
    """The prediction log's metrics: rows by outcome, and rows pending."""
    counts = {
        outcome: metric(base, "fournil_api_prediction_log_rows_total", f'outcome="{outcome}"')
        for outcome in ("written", "spilled", "replayed", "dropped")
    }
    counts["pending"] = metric(base, "fournil_api_prediction_log_pending_rows")
    return counts


def logged(engine: Engine, request_ids: list[str]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count(func.distinct(prediction_log.c.request_id))).where(
                    prediction_log.c.request_id.in_(request_ids)
                )
            ).scalar_one()
        )


def test_the_api_serves_through_a_warehouse_outage_and_loses_no_prediction(
    chain: Chain, tmp_path: Path
) -> None:
    """PostgreSQL stopped for longer than the key table's refresh under a client loop: forecasts,
    predictions and model info keep answering 200 from memory, a bad key keeps getting 401,
    /ready says degraded, and every prediction made reaches the prediction log once the
    warehouse is back (spilled to the local file, then replayed)."""
    log_path = tmp_path / "api.log"
    with api_process(chain.env, log_path) as base:
        wait_for(
            lambda: httpx.get(base + "/ready").json()["status"] == "ready", 60, "API not ready"
        )
        loop = Loop(base, chain.keys)
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        try:
            time.sleep(3)
            before = log_counts(base)
            chain.pg.stop()
            stopped = loop.now()
            time.sleep(OUTAGE_SECONDS)
            chain.pg.start()
            started = loop.now()
            wait_for(
                lambda: loop.outcomes("ready", start=loop.now() - 1) == {"200 ready"},
                60,
                "not ready again after the outage",
            )
            time.sleep(3)
        finally:
            loop.stop.set()
            thread.join(timeout=30)
        print(f"\noutage: PostgreSQL stopped at {stopped:.1f} s, started at {started:.1f} s")
        print(loop.timeline(stopped, started))
        during = {"start": stopped + 1, "end": started}
        for name in ("forecasts", "predict", "models"):
            assert loop.outcomes(name) == {"200"}, (name, loop.outcomes(name))
        assert loop.outcomes("bad key") == {"401"}
        assert "200 degraded" in loop.outcomes("ready", **during)
        assert loop.outcomes("ready") <= {"200 ready", "200 degraded"}
        # zero lost: every answered prediction is in the warehouse, once
        n = len(loop.predicted)
        wait_for(lambda: logged(chain.engine, loop.predicted) == n, 30, "prediction rows lost")
        with chain.engine.connect() as conn:
            rows = conn.execute(
                select(func.count()).where(prediction_log.c.request_id.in_(loop.predicted))
            ).scalar_one()
        assert rows == n  # a replay writes no row twice
        counts = log_counts(base)
        pending = counts.pop("pending")
        print(f"prediction log before the outage: {before}")
        print(f"predictions answered: {n}; prediction log after: {counts}; pending {pending}")
        assert counts["spilled"] > 0 and counts["replayed"] == counts["spilled"]
        assert counts["dropped"] == 0 and pending == 0
        assert counts["written"] + counts["replayed"] >= n
    text = log_path.read_text()
    assert "Traceback" not in text, text[-3000:]
    # one line when the warehouse goes, one when it is back: not one per poll
    assert text.count("serving tables not refreshed") == 1, text


def test_the_api_starts_without_the_warehouse_and_gets_ready_when_it_arrives(
    tmp_path: Path,
) -> None:
    """`fournil api serve` with PostgreSQL down: /health answers, /ready says why it is not
    ready (no address, no exception text); once the server is up and migrated, it is ready by
    itself. The API never migrates."""
    with owned_postgres(started=False) as pg:
        env = {
            **os.environ,
            "DATABASE_URL": pg.url(),
            "FOURNIL_HOME": str(tmp_path / "home"),
            "FOURNIL_API_TABLES_POLL_SECONDS": "1",
        }
        log_path = tmp_path / "api.log"
        with api_process(env, log_path) as base:
            ready = httpx.get(base + "/ready")
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert body["status"] == "unavailable" and "unreachable" in body["reason"]
            assert str(pg.port) not in ready.text and "Error" not in ready.text
            pg.start()
            wait_for(
                lambda: "schema not current" in httpx.get(base + "/ready").json()["reason"],
                30,
                "the schema is not reported behind",
            )
            done = subprocess.run(
                [sys.executable, "-m", "fournil", "db", "upgrade"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            ready_now = wait_for(
                lambda: (r := httpx.get(base + "/ready")).status_code == 200 and r.json(),
                30,
                "not ready after the warehouse arrived",
            )
            # an empty warehouse and registry: the fallback serves, and says so
            assert ready_now["status"] == "degraded" and "fallback" in ready_now["reason"]
        text = log_path.read_text()
        assert "Traceback" not in text, text[-3000:]


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[str]:
    """An API (no warehouse data needed) whose header and body deadlines are 1 s."""
    base = Settings()
    settings = base.model_copy(
        update={
            "api": base.api.model_copy(
                update={"header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}
            )
        }
    )
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    upgrade(engine)
    yield from serve(create_app(settings, engine, poll=False), free_port())
    engine.dispose()


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """What the server sends until it closes the connection or the deadline (monotonic) passes,
    and whether it closed it."""
    got = b""
    try:
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            chunk = sock.recv(4096)
            if not chunk:
                return got, True
            got += chunk
    except TimeoutError:
        pass
    except ConnectionResetError:
        return got, True
    return got, False


def test_slow_clients_are_cut_off(impatient: str) -> None:
    """Headers that never finish (200 such connections), a body shorter than its
    Content-Length: each answered 408 and closed after its deadline, while other clients are
    served."""
    slow = [_connect(impatient) for _ in range(200)]
    for sock in slow:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: api\r\nX-Slow: ")
    assert httpx.get(impatient + "/health").status_code == 200  # others are served meanwhile
    deadline = time.monotonic() + 8  # the header deadline is 1 s
    closed = [_read_all(sock, deadline) for sock in slow]
    held = sum(not done for _, done in closed)
    assert held == 0, f"{held} of 200 connections with unfinished headers still open after 8 s"
    assert all(b" 408 " in got.split(b"\r\n")[0] for got, _ in closed)
    for sock in slow:
        sock.close()

    short = _connect(impatient)
    short.sendall(
        b"POST /v1/predict HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        b'X-API-Key: fk_000000000000_x\r\nContent-Length: 100\r\n\r\n{"rows": ['
    )
    got, done = _read_all(short, time.monotonic() + 8)
    short.close()
    assert done, "a body shorter than its Content-Length held the connection for 8 s"
    assert b" 408 " in got.split(b"\r\n")[0] and b"request_timeout" in got, got
