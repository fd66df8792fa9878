"""Training past one VM: the fits of a training run as tasks on a real Dask cluster (a local
one of two worker processes, reached by its address as an existing cluster would be), giving
the same models as the single-process path; then a whole `train` on PostgreSQL through it."""

from __future__ import annotations

from collections.abc import Iterator

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
