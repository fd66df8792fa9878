"""Features: no leakage past the origin, one pipeline for training and serving, nulls handled."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import pytest

from fournil.features import (
    FEATURES,
    WINDOW,
    PanelRequests,
    Vocabulary,
    from_panel,
    from_raw,
    raw_frame,
)
from fournil.panel import Panel


def _requests(panel: Panel, origin: int, horizon: int = 14) -> PanelRequests:
    rows = np.arange(len(panel.series))
    return PanelRequests(rows, np.full(len(rows), origin), np.arange(1, horizon + 1))


def _scrambled(panel: Panel, after: int, seed: int = 0) -> Panel:
    """The panel with every value after day `after` replaced by noise."""
    rng = np.random.default_rng(seed)
    out = Panel(
        series=panel.series,
        start=panel.start,
        units=panel.units.copy(),
        promo=panel.promo.copy(),
        stock_out=panel.stock_out.copy(),
        price=panel.price.copy(),
    )
    for matrix in (out.units, out.promo, out.stock_out, out.price):
        tail = matrix[:, after + 1 :]
        matrix[:, after + 1 :] = rng.integers(0, 2, tail.shape) * rng.uniform(0, 500, tail.shape)
    out.__post_init__()
    return out


def test_a_feature_at_the_origin_uses_nothing_after_it(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    origin = panel.n_days - 40
    before, _, _ = from_panel(panel, vocab, _requests(panel, origin), plan_from_panel=False)
    after, _, _ = from_panel(
        _scrambled(panel, origin), vocab, _requests(panel, origin), plan_from_panel=False
    )
    pd.testing.assert_frame_equal(before.X, after.X)
    np.testing.assert_array_equal(before.log_base, after.log_base)
    np.testing.assert_array_equal(before.naive, after.naive)
    # the same scrambling one day earlier reaches the origin day: features must change
    touched, _, _ = from_panel(
        _scrambled(panel, origin - 1), vocab, _requests(panel, origin), plan_from_panel=False
    )
    assert not before.X.equals(touched.X)


def test_only_the_plan_of_the_target_day_is_read_after_the_origin(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    origin = panel.n_days - 40
    req = _requests(panel, origin, horizon=3)
    before, _, _ = from_panel(panel, vocab, req)
    changed = _scrambled(panel, origin)
    for day in range(origin + 1, origin + 4):  # keep the plan (price, promo) of the targets
        changed.price[:, day] = panel.price[:, day]
        changed.promo[:, day] = panel.promo[:, day]
    changed.__post_init__()
    after, _, _ = from_panel(changed, vocab, req)
    pd.testing.assert_frame_equal(before.X, after.X)


def test_serving_from_raw_inputs_gives_the_training_features(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    req = _requests(panel, panel.n_days - 20)
    trained, _, _ = from_panel(panel, vocab, req)
    served = from_raw(raw_frame(panel, req, plan_from_panel=True), vocab)
    pd.testing.assert_frame_equal(trained.X, served.X)
    np.testing.assert_array_equal(trained.log_base, served.log_base)
    assert list(served.X.columns) == list(FEATURES)


def test_missing_history_and_null_plan_do_not_crash(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    raw = raw_frame(panel, _requests(panel, panel.n_days - 1, horizon=2)).head(6).copy()
    raw.loc[raw.index[0], [c for c in raw.columns if c.startswith("units_")]] = np.nan
    raw.loc[raw.index[1], ["price", "promo", "siblings_on_promo"]] = np.nan
    raw.loc[raw.index[2], ["city", "family"]] = None
    raw.loc[raw.index[3], "product_id"] = 999_999  # a product training never saw
    inputs = from_raw(raw, vocab)
    assert np.isfinite(inputs.log_base).all()
    assert np.isfinite(inputs.naive).all()
    assert inputs.X.loc[0, "has_history"] == 0
    assert inputs.X.loc[1, "price_ratio"] == 1.0  # null plan = regular price
    # an unseen category is missing, not an error
    assert np.isnan(cast(float, inputs.X.loc[3, "product"]))


def test_raw_inputs_need_every_column(panel: Panel) -> None:
    vocab = Vocabulary.fit(panel, "FR")
    raw = raw_frame(panel, _requests(panel, panel.n_days - 1, horizon=1))
    with pytest.raises(ValueError, match="lack column"):
        from_raw(raw.drop(columns=[f"units_{WINDOW - 1}"]), vocab)
