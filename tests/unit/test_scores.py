"""The one WAPE every score uses (backtests, the segment-vs-global comparison, monitoring)."""

from __future__ import annotations

import math

from fournil.scores import wape


def test_wape_weighs_absolute_errors_by_the_units_sold() -> None:
    # errors 2 and 3 on 10 + 40 units sold: 5 / 50, whatever the sign of each error
    assert wape([10, 40], [12, 37]) == 0.1
    assert wape([10, 40], [8, 43]) == 0.1
    assert wape([0, 100], [5, 100]) == 0.05  # a zero day still counts its error


def test_wape_has_no_scale_when_nothing_was_sold() -> None:
    assert math.isnan(wape([0, 0], [1, 2]))
