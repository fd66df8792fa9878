"""The data report: days without a row, Syntetos-Boylan classes, short and silent series."""

from __future__ import annotations

import numpy as np

from fournil.data_report import CLASSES, data_report, demand_classes
from fournil.panel import Panel, absent, fill_absent
from tests.unit.conftest import units_panel


def _panel(units: np.ndarray) -> Panel:
    return units_panel(units)


def test_each_demand_pattern_gets_its_syntetos_boylan_class() -> None:
    rng = np.random.default_rng(3)
    days = 200
    every_third = (np.arange(days) % 3 == 0).astype(np.float32)
    units = np.stack(
        [
            rng.poisson(20, days),  # smooth: every day, steady sizes
            rng.choice([1, 60], days),  # erratic: every day, sizes all over
            every_third * 10,  # intermittent: one day in three, steady
            every_third * rng.choice([1, 60], days),  # lumpy
            np.zeros(days),  # no sales
        ]
    ).astype(np.float32)
    assert [CLASSES[c] for c in demand_classes(units)] == list(CLASSES)


def test_days_without_a_row_are_counted_and_warned_about_until_the_setting_says() -> None:
    units = np.full((3, 120), 5.0, np.float32)
    units[0, :10] = np.nan  # before its first row: not inside its life
    units[0, 50:60] = np.nan  # a gap of 10 days inside it
    units[1, 90:] = np.nan  # stopped: its last 30 days are after its life, and silent
    units[2, :] = np.nan
    units[2, 5:30] = 3.0  # short, and silent at the end
    report = data_report(_panel(units), None)
    assert report.absent_days == 10
    assert report.short == 1 and report.silent == 2
    (warning,) = report.warnings()
    assert warning.startswith("10 days without a row inside series' lives")
    assert "FOURNIL_ABSENT_DAYS=zero" in warning
    assert data_report(_panel(units), "unknown").warnings() == []
    # ... as zero sales: from each series' first row on, to the panel's end
    panel = _panel(units)
    mask = absent(panel.units)
    assert fill_absent(panel) == int(mask.sum()) == 10 + 30 + 90
    assert np.isnan(panel.units[0, :10]).all() and (panel.units[0, 50:60] == 0).all()
    assert (panel.units[1, 90:] == 0).all() and np.isnan(panel.units[2, :5]).all()
    filled = data_report(panel, "zero")
    assert filled.warnings() == [] and filled.filled_days == 130
    assert "130 days without a row taken as zero sales" in filled.lines()[0]
    assert filled.metrics()["data.absent_share"] > 0
