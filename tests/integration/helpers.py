"""Helpers for integration tests: writing drops, reading the warehouse back, waiting for servers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import make_url

from fournil.api.server import uvicorn_options
from fournil.db.schema import etl_runs, quarantine, sales
from fournil.etl.runner import FileResult

SALES_HEADER = "date,store_id,product_id,units_sold,price,promo,stock_out"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            "sales": conn.execute(select(func.count()).select_from(sales)).scalar_one(),
            "quarantine": conn.execute(select(func.count()).select_from(quarantine)).scalar_one(),
            "units": conn.execute(
                select(func.coalesce(func.sum(sales.c.units_sold), 0))
            ).scalar_one(),
        }


def run_row(engine: Engine, run_id: int) -> dict[str, Any]:  # a database row
    with engine.connect() as conn:
        return dict(
            conn.execute(select(etl_runs).where(etl_runs.c.run_id == run_id)).mappings().one()
        )


def reasons(engine: Engine, run_id: int) -> list[tuple[int | None, str]]:
    with engine.connect() as conn:
        return [
            (r.line, r.reason)
            for r in conn.execute(
                select(quarantine.c.line, quarantine.c.reason)
                .where(quarantine.c.etl_run_id == run_id)
                .order_by(quarantine.c.line)
            )
        ]


def assert_reconciles(engine: Engine, result: FileResult) -> None:
    """The result and the run log agree, and read = inserted + updated + unchanged + rejected."""
    row = run_row(engine, result.run_id)
    assert row["status"] == result.status
    assert row["rows_read"] == (
        row["rows_inserted"] + row["rows_updated"] + row["rows_unchanged"] + row["rows_rejected"]
    )
    assert row["rows_rejected"] == len(reasons(engine, result.run_id))
    assert row["finished_at"] is not None


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log_name: str, seconds: float = 120
) -> None:
    """Poll `url` until it answers 200; fail early if the server process died."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server at {url} did not start: see {log_name}")
        time.sleep(0.5)


@contextmanager
def throwaway_database(prefix: str, template: str | None = None) -> Iterator[str]:
    """A fresh database on the test server (optionally cloned from `template`), dropped after."""
    from tests.conftest import _admin_engine, test_server_url

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    clone = f' TEMPLATE "{template}"' if template else ""
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{clone}'))
    try:
        yield make_url(test_server_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def server_process(
    cmd: list[str], health_url: str, log_path: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    """Run a server command until the block ends, once `health_url` answers 200."""
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(health_url, proc, str(log_path))
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def api_contract(openapi_url: str, key: str, examples: int) -> subprocess.CompletedProcess[str]:
    """schemathesis over the API's OpenAPI schema, with valid and invalid data (`--mode all`) and
    in every phase, stateful included: no server error, invalid data rejected with a 4xx,
    responses and status codes as documented; bounded in examples and time for CI, seeded so a
    run can be replayed."""
    cli = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    return subprocess.run(
        [
            cli,
            "run",
            openapi_url,
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,"
            "negative_data_rejection",
            "--mode",
            "all",
            "--max-examples",
            str(examples),
            "--header",
            f"X-API-Key: {key}",
            "--request-timeout",
            "20",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


def serve(app: FastAPI, port: int) -> Iterator[str]:
    """`app` served as `fournil api serve` serves it (the same uvicorn options), in a thread."""
    options = uvicorn_options(app.state.settings)
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
