"""The forecasters and the backtest, on a generated chain (no database, no MLflow)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from fournil.data.generator import GeneratedData
from fournil.features import FEATURES, PanelRequests, Vocabulary, from_panel
from fournil.models.backtest import (
    BacktestConfig,
    Reference,
    TrainingRows,
    cut,
    cutoffs,
    fit_at,
    fit_one_cutoff,
    fit_rows,
    kept_pairs,
    pair_fraction,
    run_backtest,
)
from fournil.models.estimators import ModelSpec, fit_linear
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


def test_a_long_fit_says_how_far_it_is(
    panel: Panel, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fit logs its boosting rounds while it runs (every ROUND_PROGRESS_SECONDS; 0 here), so a
    fit of minutes on a busy machine is not silent."""
    from fournil.models import backtest

    monkeypatch.setattr(backtest, "ROUND_PROGRESS_SECONDS", 0.0)
    vocab = Vocabulary.fit(panel, "FR")
    with caplog.at_level(logging.INFO, logger="fournil.train"):
        run_backtest(panel, SPEC, vocab, CONFIG, with_baselines=False)
    rounds = [r.getMessage() for r in caplog.records if ": round " in r.getMessage()]
    first_fit = [m for m in rounds if m.startswith("fit 1 of ")]
    done = [int(m.split(": round ")[1].split(" of ")[0]) for m in first_fit]
    assert done == list(range(1, SPEC.num_boost_round)), first_fit[:3]  # the last: the fit line
    assert all(f"of {SPEC.num_boost_round}," in m for m in first_fit)


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


def test_linear_fits_from_normal_equations_match_scikit_learns_ridge(panel: Panel) -> None:
    from sklearn.linear_model import Ridge

    from fournil.models.estimators import _linear_design

    vocab = Vocabulary.fit(panel, "FR")
    c = panel.n_days - 30
    rows = TrainingRows.build(panel, SPEC, vocab, [c, panel.n_days - 1])
    spec = SPEC.replace(kind="linear")
    # two masks in one pass, in small chunks: each must equal its own Ridge fit
    masks = [rows.mask(c, SPEC.train_days), rows.mask(panel.n_days - 1, SPEC.train_days)]
    fitted = fit_linear(spec, vocab, rows, masks, chunk=7_001)
    for model, mask in zip(fitted, masks, strict=True):
        X = pd.DataFrame(rows.X[mask], columns=list(FEATURES))
        y = rows.actual[mask].astype(np.float64)
        z = np.log((y + 1.0) / (np.exp(rows.log_base[mask]) + 1.0))
        ridge = Ridge(alpha=spec.ridge_alpha).fit(_linear_design(X), z)
        assert model.linear_coef is not None
        np.testing.assert_allclose(model.linear_coef, ridge.coef_, rtol=1e-6, atol=1e-9)
        assert model.linear_intercept == pytest.approx(ridge.intercept_, rel=1e-6, abs=1e-9)
    first, second = fitted[0].linear_coef, fitted[1].linear_coef
    assert first is not None and second is not None and not np.allclose(first, second)


def test_a_fit_on_rows_built_for_its_cutoff_alone_equals_the_shared_matrix_fit(
    panel: Panel,
) -> None:
    """What a distributed task fits (rows for one cut-off, shipped bins) is the model the
    single-process path fits on a subset of the shared binned matrix, to the last bit."""
    vocab = Vocabulary.fit(panel, "FR")
    spec = SPEC.replace(pair_fraction=0.5)
    specs = [spec, spec.replace(kind="linear")]
    days = cutoffs(panel, spec, CONFIG)
    shared = TrainingRows.build(panel, spec, vocab, [*days, panel.n_days - 1])
    reference = Reference.of(shared, days[0], spec.train_days)
    together = fit_rows(specs, vocab, shared, [*days, panel.n_days - 1], reference)
    alone_reference = Reference.of(
        TrainingRows.build(panel, spec, vocab, [days[0]]), days[0], spec.train_days
    )
    np.testing.assert_array_equal(alone_reference.X, reference.X)
    req = PanelRequests.grid(np.arange(len(panel.series)), np.array([panel.n_days - 20]), 7)
    inputs, _, _ = from_panel(panel, vocab, req)
    for k, c in enumerate([days[-1], panel.n_days - 1]):
        model, linear = fit_one_cutoff(panel, specs, vocab, c, alone_reference)
        shared_model, shared_linear = together[[*days, panel.n_days - 1].index(c)]
        np.testing.assert_array_equal(
            model.predict_inputs(inputs), shared_model.predict_inputs(inputs)
        )
        np.testing.assert_allclose(
            linear.predict_inputs(inputs), shared_linear.predict_inputs(inputs), rtol=1e-9
        )
        assert k == 0 or model.booster_text != together[0][0].booster_text


def test_pair_sampling_keeps_its_share_of_pairs_the_same_whichever_fit_asks(
    panel: Panel,
) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    days = cutoffs(panel, SPEC, CONFIG)
    everything = [*days, panel.n_days - 1]
    full = TrainingRows.build(panel, SPEC, vocab, everything)
    fraction = pair_fraction(panel, SPEC, everything, max_rows=len(full) // 4)
    assert 0.2 < fraction < 0.3
    assert pair_fraction(panel, SPEC, everything, max_rows=10**9) == 1.0
    sampled = TrainingRows.build(panel, SPEC.replace(pair_fraction=fraction), vocab, everything)
    assert 0.8 * len(full) / 4 < len(sampled) < 1.2 * len(full) / 4
    # every series and every horizon is still there
    assert len(np.unique(sampled.origin)) == len(np.unique(full.origin))
    # a fold's sampled rows do not depend on the other cut-offs of the build
    alone = TrainingRows.build(panel, SPEC.replace(pair_fraction=fraction), vocab, [days[0]])
    np.testing.assert_array_equal(alone.X, sampled.X[sampled.mask(days[0], SPEC.train_days)])
    # nor on where the panel starts (the hash reads dates, not day indices)
    later = cut(panel, panel.n_days - 1)
    later = Panel(
        series=later.series,
        start=later.start + dt.timedelta(days=7),
        units=later.units[:, 7:],
        promo=later.promo[:, 7:],
        stock_out=later.stock_out[:, 7:],
        price=later.price[:, 7:],
    )
    rows = np.arange(len(panel.series))
    origins = np.full(len(rows), 100)
    np.testing.assert_array_equal(
        kept_pairs(panel, rows, origins + 7, fraction), kept_pairs(later, rows, origins, fraction)
    )


def test_the_global_comparison_of_segment_training_keeps_to_the_row_cap(
    panel: Panel, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fournil.models.training import compare_with_global
    from fournil.settings import get_settings, reset_settings_cache

    monkeypatch.setenv("FOURNIL_TRAIN_MAX_ROWS", "10000")
    reset_settings_cache()
    with caplog.at_level(logging.INFO, logger="fournil.train"):
        compare_with_global(panel, SPEC, get_settings(), CONFIG, [])
    fitted = [int(m.split(": ")[1].split(" rows")[0].replace(",", "")) for m in caplog.messages
              if m.startswith("fit ")]  # fmt: skip
    assert len(fitted) == CONFIG.folds
    full = TrainingRows.build(
        panel, SPEC, Vocabulary.fit(panel, "FR"), cutoffs(panel, SPEC, CONFIG)
    )
    assert len(full) > 15_000 and max(fitted) <= 10_000 * 1.2


def test_the_latency_check_holds_on_a_busy_machine_and_refuses_a_slow_model() -> None:
    from fournil.models.gate import latency_check
    from fournil.settings import GateSettings

    limits = GateSettings(max_latency_ms=200, max_latency_ratio=10)
    assert latency_check(25.0, 10.0, limits)[0]  # idle machine, quick model
    # a busy machine: 3x over the limit, but the reference timed alongside slowed as much
    ok, text = latency_check(600.0, 200.0, limits)
    assert ok and "3.0x the reference" in text
    # a slow model on an idle machine: over the limit and 60x the reference
    assert not latency_check(600.0, 10.0, limits)[0]
    assert not latency_check(600.0, 0.0, limits)[0]  # a reference too quick to time
