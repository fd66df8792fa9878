"""Forecast error measures shared by backtests, the gate's comparisons and monitoring."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def wape(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Weighted absolute percentage error: sum |predicted - actual| / sum actual; NaN when the
    actuals sum to zero (nothing sold: no scale to weigh errors by)."""
    y = np.asarray(actual, dtype=np.float64)
    total = float(y.sum())
    if total <= 0:
        return float("nan")
    return float(np.abs(np.asarray(predicted, dtype=np.float64) - y).sum() / total)


def bias(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Total forecast minus total actual, over total actual (negative: under-forecast); NaN
    when the actuals sum to zero."""
    y = np.asarray(actual, dtype=np.float64)
    total = float(y.sum())
    if total <= 0:
        return float("nan")
    return float((np.asarray(predicted, dtype=np.float64) - y).sum() / total)


def wape_bias(actual: ArrayLike, predicted: ArrayLike) -> float:
    """WAPE + |bias|: what candidates are chosen on. WAPE alone is smallest for a forecast of
    the median, which for intermittent demand is zero: a model that never forecasts a sale
    would win it. The total bias term makes under-forecasting cost what it costs a shop."""
    return wape(actual, predicted) + abs(bias(actual, predicted))
