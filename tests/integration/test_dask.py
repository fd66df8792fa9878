"""Past one VM: the fits of a training run as tasks on a real Dask cluster (a local one of two
worker processes, reached by its address as an existing cluster would be), giving the same
models as the single-process path; a whole `train` on PostgreSQL through it; and the flows on a
scheduler and workers started from the command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster, get_task_stream
from sqlalchemy import Engine

from fournil.cluster import dask_runner
from fournil.data.generator import GeneratedData
from fournil.db import make_engine
from fournil.etl.runner import run_etl
from fournil.models.backtest import BacktestConfig
from fournil.models.estimators import ModelSpec
from fournil.models.training import fit_segment, train
from fournil.settings import get_settings, reset_settings_cache
from tests.integration.helpers import free_port
from tests.integration.test_flows import (  # noqa: F401 - fixtures
    CLI,
    FORECAST_DATE,
    _env,
    _landing,
    _runs,
    flow_drop,
    prefect_home,
)
from tests.unit.conftest import panel_of

SPEC = ModelSpec(num_boost_round=40, train_days=150, origin_stride=1, horizon=7)
CONFIG = BacktestConfig(folds=2, fold_step=14, test_days=4)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield str(local.scheduler_address)


def test_fits_on_the_cluster_equal_the_single_process_fits(
    cluster: str, small_drop: GeneratedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOURNIL_TRAIN_MAX_ROWS", "10000")  # sampled pairs travel too
    reset_settings_cache()
    settings = get_settings()
    panel = panel_of(small_drop)
    truth = pd.read_parquet(small_drop.expected_path)
    here = fit_segment(panel, SPEC, settings, None, CONFIG, truth)
    assert here.model.spec.pair_fraction < 1.0
    with Client(cluster) as client, get_task_stream(client) as stream:
        there = fit_segment(panel, SPEC, settings, None, CONFIG, truth, dask_runner(client))
    fits = [t for t in stream.data if str(t["key"]).startswith("fit_one_cutoff")]
    assert len(fits) == CONFIG.folds + 1  # each backtest cut-off and the final fit
    assert len({t["worker"] for t in fits}) == 2  # spread over both workers
    a, b = here.backtest.predictions, there.backtest.predictions
    assert len(a) == len(b) > 1000
    np.testing.assert_array_equal(a["model"].to_numpy(), b["model"].to_numpy())
    np.testing.assert_allclose(a["linear"].to_numpy(), b["linear"].to_numpy(), rtol=1e-9)
    assert here.backtest.wape() == there.backtest.wape()
    assert here.model.booster_text == there.model.booster_text
    assert here.model.interval_quantiles == there.model.interval_quantiles


def test_train_with_the_dask_setting_registers_the_same_model_quality(
    cluster: str, pg_url: str, small_drop: GeneratedData, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine: Engine = make_engine(pg_url)
    monkeypatch.setenv("FOURNIL_HORIZON", str(SPEC.horizon))
    reset_settings_cache()
    assert run_etl(small_drop.out_dir, engine, get_settings()).ok
    (single,) = train(engine, get_settings(), spec=SPEC, config=CONFIG)
    monkeypatch.setenv("FOURNIL_TASK_RUNNER", "dask")
    monkeypatch.setenv("FOURNIL_TASK_RUNNER_ADDRESS", cluster)
    reset_settings_cache()
    with Client(cluster) as client, get_task_stream(client) as stream:
        (distributed,) = train(engine, get_settings(), spec=SPEC, config=CONFIG)
    assert sum(str(t["key"]).startswith("fit_one_cutoff") for t in stream.data) == 3
    assert distributed.version != single.version
    assert distributed.wape == single.wape and distributed.wape_linear == single.wape_linear
    engine.dispose()


def test_flows_send_their_tasks_and_training_fits_to_a_dask_cluster(
    pg_url: str,
    flow_drop: GeneratedData,  # noqa: F811 - the fixture
    prefect_home: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """As on several VMs: a `dask scheduler` and `dask worker` processes started from the
    command line with the deployment's environment, and the flows run with the dask setting."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = _env(
        pg_url,
        tmp_path / "home",
        _landing(tmp_path, flow_drop),
        prefect_home,
        FOURNIL_TASK_RUNNER="dask",
        FOURNIL_TASK_RUNNER_ADDRESS=address,
    )
    dask = str(Path(sys.executable).parent / "dask")
    log = (tmp_path / "dask.log").open("w")
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    workers = subprocess.Popen(
        [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            done = subprocess.run(
                [
                    *CLI,
                    "flows",
                    "run",
                    "etl",
                    "train",
                    "forecast",
                    "monitor",
                    "--date",
                    str(FORECAST_DATE),
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            assert done.stdout.count(": Completed") == 4
            prefixes = client.run_on_scheduler(
                lambda dask_scheduler: sorted(dask_scheduler.task_prefixes)
            )
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
            proc.wait(timeout=60)
        log.close()
    assert "fit_one_cutoff" in prefixes  # training's fits
    assert {"accuracy", "drift", "health"} <= set(prefixes), prefixes  # the monitor's tasks
    runs = _runs(pg_url)
    assert runs["train"][0]["status"] == "success"
    assert runs["monitor"][0]["status"] == "success"
