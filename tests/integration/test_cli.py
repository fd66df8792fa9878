"""The CLI as a user runs it: real processes, real files, the embedded warehouse."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from fournil.db.migrate import alembic_config, head_revision

CLI = [sys.executable, "-m", "fournil"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture
def migrated(isolated_settings: Path) -> Path:
    """The embedded warehouse, migrated the one way there is: `fournil db upgrade`."""
    done = run("db", "upgrade")
    assert done.returncode == 0, done.stderr
    return isolated_settings


def test_generate_then_etl_then_rerun(tmp_path: Path, migrated: Path) -> None:
    out = tmp_path / "drop"
    gen = run(
        "data",
        "generate",
        "--out",
        str(out),
        "--stores",
        "3",
        "--products",
        "4",
        "--days",
        "60",
        "--end-date",
        "2026-06-30",
        "--bad-rows",
        "0.02",
    )
    assert gen.returncode == 0, gen.stderr
    assert "deliberately bad" in gen.stdout
    assert {p.name for p in out.iterdir()} == {"stores.csv", "products.csv", "sales.csv", "truth"}
    first = run("etl", "run", "--source", str(out))
    assert first.returncode == 0, first.stderr
    assert "success" in first.stdout and "rows quarantined" in first.stdout
    assert (migrated / "warehouse.db").exists()
    second = run("etl", "run", "--source", str(out))
    assert second.returncode == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty file (0 bytes)"),
        (
            b"date;store_id;product_id;units_sold;price;promo\n01/02/2026;1;1;1;1;0\n",
            "ambiguous dates",
        ),
    ],
)
def test_a_bad_file_exits_1_with_a_one_line_error(
    tmp_path: Path, migrated: Path, body: bytes, message: str
) -> None:
    path = tmp_path / "sales.csv"
    path.write_bytes(body)
    result = run("etl", "run", "--source", str(path))
    assert result.returncode == 1
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_usage_errors_are_one_line(tmp_path: Path, migrated: Path) -> None:
    missing = run("etl", "run", "--source", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert "no such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    unknown = tmp_path / "weird.csv"
    unknown.write_text("a,b\n1,2\n")
    assert "cannot tell what weird.csv holds" in run("etl", "run", "--source", str(unknown)).stderr


def _server_url(database: str) -> str:
    """The test server's URL for `database`, with a password written in (it must never be
    printed)."""
    from sqlalchemy.engine import make_url

    from tests.conftest import test_server_url

    url = make_url(test_server_url()).set(database=database, password="s3cr3t-pw")
    return url.render_as_string(hide_password=False)


BAD_WAREHOUSES = {
    "postgres:// scheme": ("postgres://u:s3cr3t-pw@127.0.0.1:5432/w", "postgresql+psycopg://"),
    "postgresql:// scheme": ("postgresql://u:s3cr3t-pw@127.0.0.1:5432/w", "postgresql+psycopg://"),
    "no server": ("postgresql+psycopg://u:s3cr3t-pw@127.0.0.1:9/w", "start the server"),
    "no database": (None, "create it"),
}
COMMANDS = {
    "etl run": ("etl", "run", "--source", "."),
    "forecast": ("forecast",),
    "apikey list": ("apikey", "list"),
    "model train": ("model", "train"),
    "db upgrade": ("db", "upgrade"),
    "demo": ("demo",),
}


@pytest.mark.parametrize("failure", list(BAD_WAREHOUSES))
def test_every_command_says_a_database_failure_in_one_line(failure: str, tmp_path: Path) -> None:
    """Each command, on each kind of unusable DATABASE_URL: exit 1, one line on stderr naming
    the fix, the password masked, no traceback."""
    url, fix = BAD_WAREHOUSES[failure]
    url = url or _server_url("fournil_no_such_database")
    for name, args in COMMANDS.items():
        done = run(*args, env={"DATABASE_URL": url})
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, done.stderr)
        assert fix in lines[0], (name, lines[0])
        assert "s3cr3t-pw" not in done.stdout + done.stderr and "***" in lines[0], (name, lines)


def test_commands_never_migrate_a_warehouse_they_find_behind(
    tmp_path: Path, isolated_settings: Path
) -> None:
    """Only `fournil db upgrade` (and the demo's own set-up) migrates: on a warehouse with no
    schema, or an older one, a command stops with one line naming it and changes nothing."""
    drop = tmp_path / "sales.csv"
    drop.write_text("date,store_id,product_id,units_sold,price,promo\n")
    commands = [("forecast",), ("etl", "run", "--source", str(drop)), ("flows", "run", "etl")]
    for args in commands:
        done = run(*args)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (args, done.stderr)
        assert "has no schema" in lines[0] and "run `fournil db upgrade`" in lines[0], lines
        assert "Traceback" not in done.stdout + done.stderr
    assert run("db", "current").returncode == 1  # still nothing: nobody migrated it
    head = head_revision()
    assert head is not None
    previous = ScriptDirectory.from_config(alembic_config("sqlite://")).get_revision(head)
    assert previous is not None and isinstance(previous.down_revision, str)
    assert run("db", "upgrade", previous.down_revision).returncode == 0  # one behind head
    behind = run("forecast")
    assert behind.returncode == 1
    assert (
        f"at schema revision {previous.down_revision}, not head {head}: "
        "run `fournil db upgrade`" in behind.stderr
    )
    assert run("db", "upgrade").returncode == 0
    now = run("forecast")  # current: the command runs (and stops on what is missing instead)
    assert now.returncode == 1 and "db upgrade" not in now.stderr, now.stderr


def test_production_mode_with_placeholder_secret_refuses_to_start() -> None:
    result = run(
        "db",
        "current",
        env={"FOURNIL_MODE": "production", "DATABASE_URL": "postgresql+psycopg://u:pw-xyz@h/db"},
    )
    assert result.returncode == 2
    assert "FOURNIL_SECRET_KEY is a placeholder" in result.stderr


def test_demo_runs_on_embedded_defaults(isolated_settings: Path) -> None:
    result = run("demo")  # the defaults, as README runs it
    assert result.returncode == 0, result.stderr
    assert "warehouse:" in result.stdout and "sales rows from" in result.stdout
    assert "quarantined rows by reason" in result.stdout
    assert (isolated_settings / "warehouse.db").exists()
    assert "gate: promoted v1" in result.stdout  # trained, gated and promoted...
    assert "forecasts from" in result.stdout  # ...and the batch forecasts written
    assert (isolated_settings / "mlflow.db").exists()
    status = run("model", "status")
    assert status.returncode == 0, status.stderr
    assert "fournil-forecaster" in status.stdout and "promoted" in status.stdout
    verified = run("model", "verify")  # the deployment test CI runs on the champion
    assert verified.returncode == 0, verified.stderr
    assert "reproduced exactly" in verified.stdout


def test_api_keys_are_created_listed_and_revoked(migrated: Path) -> None:
    created = run("apikey", "create", "--name", "shop app", "--scope", "predict")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("fk_") and len(key.split("_", 2)[2]) >= 24
    key_id = key.split("_")[1]
    listed = run("apikey", "list")
    assert "shop app" in listed.stdout and key_id in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout  # the secret is never shown again
    assert run("apikey", "revoke", key_id).returncode == 0
    again = run("apikey", "revoke", key_id)
    assert again.returncode == 1 and f"no active key {key_id}" in again.stderr
    bad = run("apikey", "create", "--name", "x", "--scope", "everything")
    assert bad.returncode == 1 and "scopes must be among" in bad.stderr


def _serve_demo(*args: str) -> tuple[list[str], float]:
    """`fournil demo --serve ARGS` until its API serves the demo's forecasts with the key it
    printed; (its output, seconds until it said 'serving')."""
    import httpx

    from tests.integration.helpers import free_port

    port = free_port()
    env = {**os.environ, "COLUMNS": "400", "FOURNIL_GATE_MAX_LATENCY_MS": "5000"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [*CLI, "demo", "--serve", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("serving;"):
                break
        took = time.monotonic() - started
        key = next(ln for ln in lines if ln.startswith("demo key")).split(": ", 1)[1].strip()
        assert any("/v1/predict" in ln and key in ln for ln in lines)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(base + "/ready").json()["status"] == "ready":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        page = httpx.get(base + "/v1/forecasts", params={"store_id": 1}, headers={"X-API-Key": key})
        assert page.status_code == 200 and page.json()["total"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return lines, took


def test_demo_serve_prints_a_key_and_curl_commands_that_work(isolated_settings: Path) -> None:
    """The first `demo --serve` runs the demo, on the port asked for; a second one serves that
    demo again without redoing it."""
    first, _ = _serve_demo()
    assert any("Fournil demo" in ln for ln in first)
    again, took = _serve_demo()
    assert any(ln.startswith("serving the demo already in") for ln in again), again
    assert not any("training" in ln or "Fournil demo" in ln for ln in again), again
    print(f"second demo --serve: serving after {took:.1f} s")


def test_prefect_state_lives_under_fournil_home_on_the_port_asked_for(
    migrated: Path, tmp_path: Path
) -> None:
    """`fournil flows run` in local mode: Prefect's database under FOURNIL_HOME/prefect (not
    ~/.prefect), its temporary server on FOURNIL_PREFECT_PORT, and nothing left complaining
    after it stopped."""
    from tests.integration.helpers import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"FOURNIL_PREFECT_PORT": str(port), "COLUMNS": "200"}
    done = subprocess.run(
        [*CLI, "flows", "run", "report"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Prefect API: http://127.0.0.1:{port}/api (temporary)" in done.stdout
    assert (migrated / "prefect" / "prefect.db").exists()
    assert "Error logging to API" not in done.stdout + done.stderr
