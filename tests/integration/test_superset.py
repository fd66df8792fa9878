"""Superset in its own virtualenv (`make superset-venv`, cached by requirements hash): the
init job's bootstrap script, run twice as every stack start does, then the real server."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import free_port, server_process

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-superset"


@pytest.fixture(scope="module")
def superset_bin() -> Path:
    made = subprocess.run(
        ["make", "--no-print-directory", "superset-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return VENV / "bin"


def superset_env(bin_dir: Path, tmp_path: Path, password: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME", "TZ")}
    return {
        **keep,
        "PATH": f"{bin_dir}{os.pathsep}{keep.get('PATH', '')}",
        "SUPERSET_CONFIG_PATH": str(ROOT / "superset" / "superset_config.py"),
        "SUPERSET_SECRET_KEY": "test-" + secrets.token_urlsafe(32),
        "SUPERSET_DATABASE_URI": f"sqlite:///{tmp_path / 'superset.db'}",
        "SUPERSET_ADMIN_PASSWORD": password,
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
    first = superset_env(superset_bin, tmp_path, "first-password")
    done = subprocess.run(
        ["bash", str(script)], env=first, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
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
