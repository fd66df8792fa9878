"""`fournil runs`, `quarantine`, `forecasts show`, `model decisions` and `status`, as a user runs
them (real processes) on what a real `fournil demo` left behind, checked against the warehouse
and the registry; tables piped to a file are not cut at 80 columns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from fournil import registry
from fournil.db import make_engine
from fournil.db.schema import etl_runs, forecasts, quarantine, sales
from fournil.pipeline_runs import RunRecorder
from fournil.settings import Settings
from tests.conftest import clean_environ


@dataclass
class Demo:
    env: dict[str, str]
    engine: Engine
    settings: Settings

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fournil", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    home = tmp_path_factory.mktemp("views-home")
    # module-wide: set up before the per-test isolation, so from a clean environment
    env = {k: v for k, v in clean_environ().items() if k != "COLUMNS"}
    env |= {"FOURNIL_HOME": str(home), "FOURNIL_GATE_MAX_LATENCY_MS": "5000"}
    done = subprocess.run(
        [sys.executable, "-m", "fournil", "demo", "--stores", "3", "--products", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with pytest.MonkeyPatch.context() as mp:  # the settings the demo ran with
        for name in set(os.environ) - set(env):
            mp.delenv(name)
        mp.setenv("FOURNIL_HOME", str(home))
        settings = Settings()
    assert settings.home_dir == home.resolve()
    engine = make_engine(settings.warehouse_url)
    with RunRecorder(engine, "forecast", None, "forecast/daily") as run:  # a flow run
        run.rows_processed = 42
    return Demo(env, engine, settings)


def count(engine: Engine, query: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def test_runs_lists_the_etl_and_pipeline_runs(demo: Demo) -> None:
    got = demo.json("runs")
    assert len(got["etl_runs"]) == count(demo.engine, select(func.count()).select_from(etl_runs))
    assert {r["file"] for r in got["etl_runs"]} == {"stores.csv", "products.csv", "sales.csv"}
    [flow] = got["pipeline_runs"]
    assert (flow["flow"], flow["status"], flow["rows_processed"]) == ("forecast", "success", 42)
    table = demo.run("runs").stdout
    assert "sales.csv" in table and "forecast/daily" in table


def test_quarantine_groups_reasons_and_shows_rows_as_they_came(demo: Demo) -> None:
    got = demo.json("quarantine", "--samples", "3")
    total = count(demo.engine, select(func.count()).select_from(quarantine))
    assert got["rows"] == total > 0
    assert sum(r["rows"] for r in got["reasons"]) >= total  # a row may have several reasons
    assert len(got["samples"]) == 3 and all(isinstance(s["raw"], dict) for s in got["samples"])
    kinds = [r["reason"] for r in got["reasons"]]
    assert len(kinds) == len(set(kinds))
    sales_run = next(r for r in demo.json("runs")["etl_runs"] if r["file"] == "sales.csv")
    only = demo.json("quarantine", "--run", str(sales_run["run_id"]))
    assert only["rows"] == sales_run["rows_rejected"]
    piped = demo.run("quarantine").stdout  # to a pipe: the longest reason is whole
    assert max((r["reason"] for r in got["reasons"]), key=len).replace("...", "") in piped.replace(
        "...", ""
    )


def test_forecasts_show_a_store_s_newest_forecasts(demo: Demo) -> None:
    got = demo.json("forecasts", "show", "--store", "2", "--days", "3")
    with demo.engine.connect() as conn:
        made = conn.execute(select(func.max(forecasts.c.forecast_date))).scalar_one()
        expected = conn.execute(
            select(func.count())
            .select_from(forecasts)
            .where(
                forecasts.c.store_id == 2,
                forecasts.c.forecast_date == made,
                forecasts.c.target_date > made,
            )
        ).scalar_one()
    assert got["forecast_date"] == str(made)
    assert len(got["forecasts"]) == min(expected, 3 * 3)
    assert all(r["low"] <= r["forecast"] <= r["high"] for r in got["forecasts"])
    one = demo.json("forecasts", "show", "--store", "2", "--product", "1")
    assert {r["product_id"] for r in one["forecasts"]} == {1}
    missing = demo.run("forecasts", "show", "--store", "999")
    assert missing.returncode == 1 and "no forecasts for store 999" in missing.stderr


def test_model_decisions_and_status(demo: Demo) -> None:
    decisions = demo.json("model", "decisions")
    assert decisions and decisions[0]["action"] == "promoted"
    client = registry.configure(demo.settings)
    champion = registry.alias_version(client, demo.settings.model_name, registry.CHAMPION)
    status = demo.json("status")
    with demo.engine.connect() as conn:
        last = conn.execute(select(func.max(sales.c.sale_date))).scalar_one()
    assert status["warehouse"]["last_sales_day"] == str(last)
    assert status["models"]["champion"] == champion is not None
    assert status["models"]["challenger"] is None  # the promoted version is the champion only
    assert [r["flow"] for r in status["last_runs"]] == ["forecast"]
    assert status["alerts"]["source"] is None
    screen = demo.run("status").stdout
    assert f"champion v{champion}" in screen and str(last) in screen
