"""The forecasters and the backtest, on a generated chain (no database, no MLflow)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from fournil.data.generator import GeneratedData
from fournil.features import PanelRequests, Vocabulary, from_panel
from fournil.models.backtest import (
    BacktestConfig,
    TrainingRows,
    cut,
    cutoffs,
    fit_at,
    run_backtest,
)
from fournil.models.estimators import ModelSpec
from fournil.panel import Panel

SPEC = ModelSpec(num_boost_round=60, train_days=240, origin_stride=3, horizon=7)
CONFIG = BacktestConfig(folds=2, fold_step=14, test_days=5)


def test_backtest_model_beats_seasonal_naive_and_approaches_the_noise_floor(
    panel: Panel, chain: GeneratedData
) -> None:
    truth = pd.read_parquet(chain.expected_path)
    bt = run_backtest(panel, SPEC, Vocabulary.fit(panel, "FR"), CONFIG, truth)
    scores = bt.scores().iloc[0]
    assert scores["wape_model"] < 0.9 * scores["wape_seasonal_naive"]
    assert scores["wape_linear"] < scores["wape_seasonal_naive"]
    assert scores["wape_model"] < 1.3 * scores["wape_expected"]
    assert set(bt.scores("horizon").index) == set(range(1, SPEC.horizon + 1))
    assert len(bt.cutoffs) == CONFIG.folds
    # out of sample: every scored target is after its fold's cut-off
    days = np.array(cutoffs(panel, SPEC, CONFIG))
    assert (bt.predictions["target_day"].to_numpy() > days[bt.predictions["fold"]]).all()


def test_seasonal_naive_is_the_same_weekday_of_the_last_known_week(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    origin = panel.n_days - 30
    req = PanelRequests(np.array([0]), np.array([origin]), np.array([1, 7, 8, 13]))
    inputs, _, _ = from_panel(panel, vocab, req)
    expected_days = [origin - 6, origin, origin - 6, origin - 1]
    checked = 0
    for position, day in enumerate(expected_days):
        value = panel.units[0, day]
        if np.isfinite(value):  # a missing day falls back to the week before
            assert inputs.naive[position] == value
            checked += 1
    assert checked >= 2


def test_training_twice_with_the_same_seed_gives_identical_predictions(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    cut = panel.n_days - 10
    req = PanelRequests(
        np.arange(len(panel.series)), np.full(len(panel.series), cut), np.arange(1, 8)
    )
    inputs, _, _ = from_panel(panel, vocab, req)
    first, linear = fit_at(panel, [SPEC, SPEC.replace(kind="linear")], vocab, cut)
    second, linear2 = fit_at(panel, [SPEC, SPEC.replace(kind="linear")], vocab, cut)
    np.testing.assert_array_equal(first.predict_inputs(inputs), second.predict_inputs(inputs))
    np.testing.assert_array_equal(linear.predict_inputs(inputs), linear2.predict_inputs(inputs))
    (other,) = fit_at(panel, [SPEC.replace(seed=7, feature_fraction=0.7)], vocab, cut)
    assert not np.array_equal(first.predict_inputs(inputs), other.predict_inputs(inputs))


def test_intervals_cover_about_their_nominal_share(
    panel: Panel, caplog: pytest.LogCaptureFixture
) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    with caplog.at_level(logging.INFO, logger="fournil.train"):
        bt = run_backtest(panel, SPEC, vocab, CONFIG, with_baselines=False)
    # progress without a terminal: one line per fold, with its cut-off and its score
    folds = [r.getMessage() for r in caplog.records if "backtest fold" in r.getMessage()]
    assert [m.split(",")[0] for m in folds] == [
        f"backtest fold {k} of {CONFIG.folds}" for k in range(1, CONFIG.folds + 1)
    ]
    assert all(f"cut-off {day}" in m for m, day in zip(folds, bt.cutoffs, strict=True))
    (model,) = fit_at(panel, [SPEC], vocab, panel.n_days - 1)
    p = bt.predictions
    model.calibrate(p["model"].to_numpy(), p["actual"].to_numpy(), p["horizon"].to_numpy())
    lower, upper = model.interval(p["model"].to_numpy(), p["horizon"].to_numpy())
    inside = ((p["actual"] >= lower) & (p["actual"] <= upper)).mean()
    assert 0.7 <= inside <= 0.9  # calibrated in-sample on these residuals: close to 0.8
    assert (lower <= p["model"]).all() and (upper >= p["model"]).all()


def test_a_slice_of_the_one_training_matrix_is_what_a_panel_cut_there_gives(
    panel: Panel,
) -> None:
    """Features are built once for every fold and the final fit; the slice at a cut-off must
    hold exactly the rows and features a panel cut at that day gives (nothing later leaks)."""
    vocab = Vocabulary.fit(panel, "FR")
    days = cutoffs(panel, SPEC, CONFIG)
    rows = TrainingRows.build(panel, SPEC, vocab, [*days, panel.n_days - 1])
    early = days[0]
    inputs, actual = rows.at(early, SPEC.train_days)
    # the same origins (the matrix's phase), from a panel that ends at the cut-off
    origins = np.unique(
        rows.origin[(rows.origin >= early - SPEC.train_days) & (rows.origin < early)]
    )
    known = cut(panel, early)
    reference = PanelRequests.grid(np.arange(len(panel.series)), origins, SPEC.horizon)
    ref_inputs, ref_actual, _ = from_panel(known, vocab, reference)
    keep = np.isfinite(ref_actual)
    assert len(actual) == keep.sum() > 1000
    np.testing.assert_array_equal(actual, ref_actual[keep])
    pd.testing.assert_frame_equal(inputs.X, ref_inputs.X[keep].reset_index(drop=True))
    np.testing.assert_array_equal(inputs.log_base, ref_inputs.log_base[keep])
    # and the slice stops at the cut-off even though the matrix goes on
    assert rows.target.max() == panel.n_days - 1 and (rows.target[rows.target <= early]).size
