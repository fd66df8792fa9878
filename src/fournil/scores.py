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
