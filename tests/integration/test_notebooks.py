"""The example notebooks (notebooks/) run top to bottom, in order, against a platform in local
mode (the same `fournil` commands the compose services run: demo, forecast, the monitor flow),
each in a fresh kernel; any error fails the test. In JupyterLab the same code reads the
compose stack's warehouse and MLflow from the environment."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def fournil(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "fournil", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Local mode under a fresh FOURNIL_HOME: a trained and promoted champion, forecasts from a
    week back (so the monitor scores them on actuals), and a drift report."""
    home = tmp_path_factory.mktemp("notebooks-home")
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        HOME=str(home),
        FOURNIL_HOME=str(home / "fournil"),
        FOURNIL_HORIZON="7",
        FOURNIL_GATE_MAX_LATENCY_MS="5000",
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    fournil(env, "demo", "--stores", "3", "--products", "3", "--days", "200")
    today = dt.date.today()
    fournil(env, "forecast", "--date", str(today - dt.timedelta(days=8)))
    fournil(env, "flows", "run", "monitor")
    yield env


def test_notebooks_are_numbered_and_cover_the_four_topics() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert names == sorted(names) and len(names) == 4
    assert [n.split("-", 1)[0] for n in names] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_notebook_runs_top_to_bottom(
    path: Path, platform: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in platform.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no plot"
