"""Superset in its own virtualenv (`make superset-venv`, cached by requirements hash): the
init job's bootstrap script on a SQLite metadata DB, run twice as every stack start does, then
the real server. (The dashboards on a warehouse filled by the pipeline, with a PostgreSQL
metadata DB, are tested in tests/e2e/test_stack.py.)"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from fournil.db import make_engine, upgrade
from tests.integration.helpers import free_port, server_process, throwaway_database

ROOT = Path(__file__).resolve().parents[2]
CHARTS = len(list((ROOT / "superset" / "bundle" / "charts").glob("*.yaml")))


@pytest.fixture(scope="module")
def superset_bin() -> Path:
    from tests.e2e.superset import superset_bin as built

    return built()


def superset_env(bin_dir: Path, tmp_path: Path, password: str, warehouse: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "TZ")}
    return {
        **keep,
        "PATH": f"{bin_dir}{os.pathsep}{keep.get('PATH', '')}",
        "SUPERSET_CONFIG_PATH": str(ROOT / "superset" / "superset_config.py"),
        "SUPERSET_SECRET_KEY": "test-" + secrets.token_urlsafe(32),
        "SUPERSET_DATABASE_URI": f"sqlite:///{tmp_path / 'superset.db'}",
        "SUPERSET_ADMIN_PASSWORD": password,
        "SUPERSET_WAREHOUSE_URI": warehouse,
    }


def login(base: str, password: str) -> int:
    return httpx.post(
        f"{base}/api/v1/security/login",
        json={"username": "admin", "password": password, "provider": "db", "refresh": True},
        timeout=30,
    ).status_code


def test_the_bootstrap_is_idempotent_and_keeps_the_admin_in_sync(
    superset_bin: Path, tmp_path: Path
) -> None:
    script = ROOT / "superset" / "bootstrap.sh"
    with throwaway_database("fournil_superset") as url:
        engine = make_engine(url)
        upgrade(engine)  # an empty warehouse: the bundle imports without reading it
        engine.dispose()
        warehouse = make_url(url).set(drivername="postgresql+psycopg2")
        check_bootstrap(superset_bin, tmp_path, script, warehouse.render_as_string(False))


def check_bootstrap(superset_bin: Path, tmp_path: Path, script: Path, warehouse: str) -> None:
    first = superset_env(superset_bin, tmp_path, "first-password", warehouse)
    done = subprocess.run(
        ["bash", str(script)], env=first, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"imported {CHARTS} charts, 4 dashboards" in done.stdout
    again = {**first, "SUPERSET_ADMIN_PASSWORD": "changed-in-dotenv"}
    done = subprocess.run(
        ["bash", str(script)], env=again, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    port = free_port()
    command = [str(superset_bin / "superset"), "run", "-p", str(port), "--with-threads"]
    base = f"http://127.0.0.1:{port}"
    with server_process(command, base + "/health", tmp_path / "superset.log", env=again):
        assert login(base, "changed-in-dotenv") == 200
        assert login(base, "first-password") == 401
        # imported twice, held once: the bundle's uuids make the second import an overwrite
        token = httpx.post(
            f"{base}/api/v1/security/login",
            json={"username": "admin", "password": "changed-in-dotenv", "provider": "db"},
        ).json()["access_token"]
        charts = httpx.get(
            f"{base}/api/v1/chart/",
            params={"q": "(page_size:100)"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert charts["count"] == CHARTS
