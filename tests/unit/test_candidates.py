"""Every candidate, and the champion chosen among them by demand class on the backtest."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from fournil.data_report import CLASSES, data_report
from fournil.features import (
    FEATURES,
    WINDOW,
    PanelRequests,
    Vocabulary,
    from_panel,
    from_raw,
    raw_frame,
)
from fournil.models.backtest import BacktestConfig, TrainingRows, run_backtest
from fournil.models.estimators import CANDIDATES, Forecaster, ModelSpec
from fournil.models.selection import (
    MIN_ROWS,
    candidate_table,
    route_predictions,
    select_routes,
)
from fournil.panel import Panel
from fournil.scores import wape, wape_bias
from tests.unit.conftest import units_panel

SPEC = ModelSpec(num_boost_round=30, train_days=200, origin_stride=3, horizon=7)
CONFIG = BacktestConfig(folds=2, fold_step=14, test_days=4)


def _panel(units: np.ndarray, price: np.ndarray | None = None) -> Panel:
    return units_panel(units, price, start=dt.date(2025, 1, 1))


def _last_origin(panel: Panel) -> PanelRequests:
    rows = np.arange(len(panel.series))
    return PanelRequests(rows, np.full(len(rows), panel.n_days - 1), np.arange(1, 8))


def test_the_intermittent_methods_forecast_a_steady_pattern_at_its_rate() -> None:
    """Four units one day in four: Croston's size / interval (with the Syntetos-Boylan
    correction, 1 - alpha / 2) says 0.95 a day; TSB's probability x size about one, lower
    three days after a sale (its probability decays on every day without one)."""
    units = np.tile(np.array([4.0, 0, 0, 0], np.float32), 40)[None, :]
    panel = _panel(units)
    inputs, _, _ = from_panel(panel, Vocabulary.fit(panel, "FR"), _last_origin(panel))
    np.testing.assert_allclose(inputs.simple["tsb"], 4 * 0.1 / (1 - 0.9**4) * 0.9**3, rtol=0.01)
    np.testing.assert_allclose(inputs.simple["croston"], 0.95, rtol=0.02)
    np.testing.assert_allclose(inputs.simple["moving_average"], 1.0)
    assert CLASSES[int(inputs.demand_class[0])] == "intermittent"
    assert (inputs.candidate("zero") == 0).all()


def test_the_candidates_and_the_class_are_the_same_from_raw_inputs(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    req = PanelRequests(
        np.arange(len(panel.series)), np.full(len(panel.series), panel.n_days - 9), np.arange(1, 8)
    )
    trained, _, _ = from_panel(panel, vocab, req)
    served = from_raw(raw_frame(panel, req, plan_from_panel=True), vocab)
    for kind in trained.simple:
        np.testing.assert_array_equal(trained.simple[kind], served.simple[kind])
    np.testing.assert_array_equal(trained.demand_class, served.demand_class)


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    actual = rng.poisson(5, rows).astype(np.float64)
    frame = pd.DataFrame(
        {
            "fold": np.arange(rows) % 2,
            "horizon": 1 + np.arange(rows) % 7,
            "actual": actual,
            "demand_class": np.where(np.arange(rows) < rows // 2, 0, 2).astype(np.int8),
        }
    )
    for kind in CANDIDATES:
        frame[kind] = actual + rng.normal(0, 3, rows)
    return frame


def test_each_class_gets_its_best_candidate_and_the_champion_beats_every_one() -> None:
    frame = _frame(4 * MIN_ROWS)
    smooth, intermittent = frame["demand_class"] == 0, frame["demand_class"] == 2
    frame.loc[smooth, "lightgbm"] = frame.loc[smooth, "actual"] + 0.1
    frame.loc[intermittent, "tsb"] = frame.loc[intermittent, "actual"] - 0.1
    routes, table = select_routes(frame)
    assert routes[0] == "lightgbm" and routes[2] == "tsb"
    champion = route_predictions(frame, routes)
    y = frame["actual"].to_numpy()
    mine = wape_bias(y, champion)
    for kind in CANDIDATES:
        assert mine <= wape_bias(y, frame[kind].to_numpy()) + 1e-6
    chosen = table[table["chosen"]].set_index("demand_class")["candidate"].to_dict()
    assert chosen == {"all": routes[-1], "smooth": "lightgbm", "intermittent": "tsb"}
    assert {"score_fold0", "score_fold1", "score_fold_min", "wape", "bias"} <= set(table.columns)


def test_zero_never_wins_intermittent_demand_for_being_the_median() -> None:
    """Sales on one day in ten: a zero forecast has the smaller WAPE (1.0) than the rate
    (about 1.8), but forecasts no sale ever; judged on WAPE + |bias| the rate wins."""
    rng = np.random.default_rng(1)
    rows = 4 * MIN_ROWS
    actual = (rng.random(rows) < 0.1) * rng.integers(1, 4, rows).astype(np.float64)
    frame = pd.DataFrame(
        {"fold": np.arange(rows) % 2, "actual": actual, "demand_class": np.int8(2)}
    )
    frame["zero"] = 0.0
    frame["tsb"] = actual.mean()
    assert wape(actual, frame["zero"]) < wape(actual, frame["tsb"])
    routes, _ = select_routes(frame)
    assert routes[2] == routes[-1] == "tsb"


def test_one_candidate_answers_all_when_it_beats_the_routed_combination() -> None:
    """Per class, A over-forecasts a little less than B under-forecasts the other class, so
    each class picks the one with the smaller error; over all rows B's biases cancel."""
    rows = 2 * MIN_ROWS
    actual = np.full(rows, 10.0)
    first = np.arange(rows) < rows // 2
    frame = pd.DataFrame(
        {"fold": np.arange(rows) % 2, "actual": actual, "demand_class": np.where(first, 0, 1)}
    )
    frame["linear"] = np.where(first, 12.0, 11.0)  # +20% / +10%
    frame["lightgbm"] = np.where(first, 11.5, 8.5)  # +15% / -15%: cancels over all rows
    routes, _ = select_routes(frame)
    assert routes == {-1: "lightgbm"}


def test_a_tie_goes_to_the_simpler_and_a_small_class_takes_the_default() -> None:
    frame = _frame(2 * MIN_ROWS)
    frame["demand_class"] = np.int8(0)
    frame.loc[frame.index[:10], "demand_class"] = np.int8(3)  # a class of 10 rows
    for kind in ("seasonal_naive", "lightgbm"):
        frame[kind] = frame["actual"] + 0.5  # equally good
    routes, _ = select_routes(frame)
    assert routes[0] == routes[-1] == "seasonal_naive"
    assert 3 not in routes


def test_a_routed_forecaster_answers_each_row_with_its_class_candidate(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    inputs, _, _ = from_panel(panel, vocab, _last_origin(panel))
    inputs.demand_class[:] = np.arange(len(inputs.demand_class)) % 2  # smooth, erratic, ...
    routed = Forecaster(spec=SPEC, vocab=vocab, routes={-1: "zero", 1: "moving_average"})
    out = routed.predict_inputs(inputs)
    erratic = inputs.demand_class == 1
    np.testing.assert_array_equal(out[~erratic], 0.0)
    np.testing.assert_allclose(out[erratic], inputs.simple["moving_average"][erratic])


def test_the_backtest_champion_is_never_worse_than_a_candidate(panel: Panel) -> None:
    bt = run_backtest(panel, SPEC, Vocabulary.fit(panel, "FR"), CONFIG)
    assert bt.routes is not None and bt.selection is not None
    for kind in CANDIDATES:
        assert bt.score() <= bt.score(kind) + 1e-9, kind
    table = candidate_table(bt.predictions, ["model", *CANDIDATES])
    assert set(table["horizon"]) == {*range(1, SPEC.horizon + 1), "all"}
    assert set(table["candidate"]) == {"model", *CANDIDATES}
    overall = table[(table["horizon"] == "all") & (table["candidate"] == "zero")].iloc[0]
    assert overall["wape"] == pytest.approx(1.0) and overall["bias"] == pytest.approx(-1.0)


def test_a_price_known_only_on_sale_days_is_found_and_left_out_of_the_features() -> None:
    """An export's price is revenue / units: it exists only where something sold. Known on
    every day (a price list), it is a plan; known only on sale days, it is the answer."""
    rng = np.random.default_rng(5)
    units = rng.poisson(0.6, (4, 300)).astype(np.float32)
    price_list = np.full_like(units, 2.0)
    derived = np.where(units > 0, 2.0 * rng.uniform(0.8, 1.0, units.shape), np.nan)
    assert data_report(_panel(units, price_list), "zero").leaks == ()
    report = data_report(_panel(units, derived.astype(np.float32)), "zero")
    assert report.leaks == ("price",)
    assert any("price is known on 100% of days with sales" in w for w in report.warnings())
    assert "price excluded" in report.lines()[-1]
    # excluded, the target day's price no longer reaches a model: neutral in fit and serving
    panel = _panel(units, derived.astype(np.float32))
    vocab = Vocabulary.fit(panel, "FR")
    spec = SPEC.replace(excluded_plan=("price",))
    rows = TrainingRows.build(panel, spec, vocab, [panel.n_days - 10])
    assert (rows.X[:, FEATURES.index("price_ratio")] == 1.0).all()
    assert (TrainingRows.build(panel, SPEC, vocab, [panel.n_days - 10]).X[:, 20] != 1.0).any()
    inputs, _, _ = from_panel(panel, vocab, _last_origin(panel))
    inputs.X["price_ratio"] = np.float32(3.0)
    seen = []

    class Probe(Forecaster):
        def _predict(self, kind: str, inputs):  # type: ignore[no-untyped-def]
            seen.append(inputs.X["price_ratio"].to_numpy())
            return super()._predict(kind, inputs)

    Probe(spec=spec.replace(kind="linear"), vocab=vocab, linear_coef=np.zeros(16)).predict_inputs(
        inputs
    )
    np.testing.assert_array_equal(seen[0], 1.0)
    assert inputs.X["price_ratio"].iloc[0] == 3.0  # the caller's inputs are left alone
    assert dataclasses.asdict(spec)["excluded_plan"] == ("price",)
    assert FEATURES.index("price_ratio") == 20 and WINDOW > 28
