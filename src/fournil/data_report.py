"""What the sales hold, checked before training: days without a row inside a series' life,
intermittent demand (Syntetos-Boylan classes), short series and series with no recent sales,
and target-day plan columns (price, promo) that leak the answer.

A plan column leaks when whether it is known tells a sale day from a day without sales: an
export's price is often revenue / units and its promo flag comes from discounts, so both exist
only on days with sales. A model given the target day's value would learn "no price, no
sales" and look excellent in the backtest while the plan it gets for the future says nothing
of the kind. Such columns are excluded from the features (with a warning).

Logged to MLflow with every training run (`data_report.json`, `data.*` metrics), printed by
`fournil model train`, and its warnings logged where there is no terminal.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

import numpy as np

from fournil.panel import Panel

#: Syntetos-Boylan cut-offs: average demand interval (days per day with sales), and the squared
#: coefficient of variation of the sizes of non-zero sales
ADI_CUT = 1.32
CV2_CUT = 0.49
SHORT_DAYS = 90  #: fewer days with a row than this: a short series
RECENT_DAYS = 28  #: no sales in this many last days: a silent series
CLASSES = ("smooth", "erratic", "intermittent", "lumpy", "no sales")
_BLOCK = 4096
PLAN = ("price", "promo")
LEAK_MIN_DAYS = 50  #: zero-sale days and sale days each needed to judge a plan column
LEAK_GAP = 0.8  #: share known on sale days minus share known on zero-sale days


@dataclass
class DataReport:
    series: int
    days: int  # the panel's length
    life_days: int  # sum over series of first..last day with a row
    absent_days: int  # days without a row inside those lives (taken as the setting says)
    absent_setting: str | None  # settings.absent_days
    filled_days: int  # absent days taken as zero sales (absent_setting "zero")
    classes: dict[str, int] = field(default_factory=dict)
    short: int = 0
    silent: int = 0
    #: per plan column: share known on days with sales and on days without
    plan_known: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def leaks(self) -> tuple[str, ...]:
        """Plan columns known (nearly) only on days with sales: excluded from the features."""
        return tuple(
            name for name, (sale, zero) in self.plan_known.items() if sale - zero >= LEAK_GAP
        )

    @property
    def absent_share(self) -> float:
        return (self.absent_days + self.filled_days) / max(self.life_days, 1)

    def warnings(self) -> list[str]:
        out = []
        if self.absent_setting is None and self.absent_days:
            out.append(
                f"{self.absent_days:,} days without a row inside series' lives "
                f"({self.absent_share:.1%} of their days) are taken as unknown, not as zero "
                "sales: if the export lists only days with sales, set FOURNIL_ABSENT_DAYS=zero "
                "(FOURNIL_ABSENT_DAYS=unknown keeps this and silences the warning)"
            )
        for name in self.leaks:
            sale, zero = self.plan_known[name]
            out.append(
                f"the target day's {name} is known on {sale:.0%} of days with sales but on "
                f"{zero:.0%} of days without: it gives the answer away (derived from the sales, "
                f"as revenue / units or from discounts), so it is not used as a feature"
            )
        return out

    def lines(self) -> list[str]:
        shares = ", ".join(
            f"{name} {count / max(self.series, 1):.0%}"
            for name, count in self.classes.items()
            if count
        )
        absent = (
            f"{self.filled_days:,} days without a row taken as zero sales"
            if self.absent_setting == "zero"
            else f"{self.absent_days:,} days without a row inside series' lives "
            f"({self.absent_share:.1%}), taken as unknown"
        )
        return [
            f"{self.series:,} series over {self.days:,} days; {absent}",
            f"demand (Syntetos-Boylan): {shares}",
            f"{self.short:,} short series (fewer than {SHORT_DAYS} days with a row), "
            f"{self.silent:,} without sales in the last {RECENT_DAYS} days",
            "target-day plan: "
            + (
                ", ".join(f"{name} excluded (leaks the answer)" for name in self.leaks)
                if self.leaks
                else "price and promo used as known in advance"
            ),
        ]

    def metrics(self) -> dict[str, float]:
        n = max(self.series, 1)
        out = {"data.absent_share": self.absent_share, "data.short_share": self.short / n}
        out["data.silent_share"] = self.silent / n
        out["data.plan_leaks"] = float(len(self.leaks))
        for name, count in self.classes.items():
            out[f"data.class_{name.replace(' ', '_')}_share"] = count / n
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            **dataclasses.asdict(self),
            "absent_share": self.absent_share,
            "excluded_plan": list(self.leaks),
        }


def demand_classes(units: np.ndarray) -> np.ndarray:
    """Each series' Syntetos-Boylan class (index into CLASSES), over its days with a row."""
    recorded = np.isfinite(units)
    sold = recorded & (units > 0)
    days = recorded.sum(axis=1)
    n_sold = sold.sum(axis=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # series without sales: NaN, classed below
        sizes = np.where(sold, units, np.nan)
        mean = np.nanmean(sizes, axis=1)
        cv2 = np.nanvar(sizes, axis=1) / mean**2
        adi = days / n_sold
    smooth_interval = adi < ADI_CUT
    steady = cv2 < CV2_CUT
    out = np.select(
        [n_sold == 0, smooth_interval & steady, smooth_interval, steady],
        [4, 0, 1, 2],
        default=3,
    )
    return out.astype(np.int64)


def data_report(panel: Panel, absent_setting: str | None) -> DataReport:
    """The report on `panel`, block by block (memory stays small at a chain's size)."""
    life = absent = short = silent = 0
    counts = np.zeros(len(CLASSES), np.int64)
    # per plan column: [known on sale days, sale days, known on zero days, zero days]
    plan = {name: np.zeros(4, np.int64) for name in PLAN}
    for a in range(0, len(panel.series), _BLOCK):
        units = panel.units[a : a + _BLOCK]
        recorded = np.isfinite(units)
        has = recorded.any(axis=1)
        first = recorded.argmax(axis=1)
        last = units.shape[1] - 1 - recorded[:, ::-1].argmax(axis=1)
        lives = np.where(has, last - first + 1, 0)
        life += int(lives.sum())
        absent += int(lives.sum() - recorded.sum())
        short += int((recorded.sum(axis=1) < SHORT_DAYS).sum())
        recent = units[:, -RECENT_DAYS:]
        silent += int((~(np.isfinite(recent) & (recent > 0)).any(axis=1)).sum())
        counts += np.bincount(demand_classes(units), minlength=len(CLASSES))
        sale, zero = recorded & (units > 0), recorded & (units == 0)
        for name in PLAN:
            known = np.isfinite(getattr(panel, name)[a : a + _BLOCK])
            plan[name] += [(known & sale).sum(), sale.sum(), (known & zero).sum(), zero.sum()]
    return DataReport(
        series=len(panel.series),
        days=panel.n_days,
        life_days=life,
        absent_days=absent,
        absent_setting=absent_setting,
        filled_days=panel.filled_days,
        classes={name: int(c) for name, c in zip(CLASSES, counts, strict=True)},
        short=short,
        silent=silent,
        plan_known={
            name: (int(c[0]) / c[1], int(c[2]) / c[3])
            for name, c in plan.items()
            if min(c[1], c[3]) >= LEAK_MIN_DAYS
        },
    )
