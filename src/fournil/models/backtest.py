"""Rolling-origin backtest: refit at several cut-offs, forecast the days after each, score.

At a cut-off `c` the models are fitted on targets up to `c` only, then forecast from origins
c, c+1, ..., c+test_days-1 at every horizon. The training rows (series x origin x horizon) and
their features are built once, columnar (`TrainingRows`), for every cut-off and the final fit:
a row's features read the history up to its origin and the plan of its target day, so the rows
with a target on or before `c` are exactly what a panel cut at `c` gives; each fit is a slice.
The test rows of every fold are built in one pass too. Actuals on stock-out days are
censored and left out of the scores, as are unknown days. If the data came from the generator,
its expected (noise-free) demand gives the noise floor on the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fournil.features import WINDOW, Inputs, PanelRequests, Vocabulary, from_panel
from fournil.models.estimators import Forecaster, ModelSpec, fit
from fournil.panel import Panel
from fournil.scores import wape

log = logging.getLogger("fournil.train")

BASELINES = ("seasonal_naive", "linear")


@dataclass(frozen=True)
class BacktestConfig:
    folds: int = 3
    fold_step: int = 28  # days between cut-offs
    test_days: int = 7  # origins per fold


def training_requests(
    panel: Panel, spec: ModelSpec, cutoff: int, first_cutoff: int | None = None
) -> PanelRequests:
    """Origins whose targets can fall on or before `cutoff`, for fits at cut-offs from
    `first_cutoff` (default: `cutoff`) on. Origins fall every `origin_stride` days counted back
    from the panel's last possible origin, whatever the cut-offs: a fold's rows are the same
    whether its fit is one of a training run's or the gate's re-run, and the final fit (at the
    last day) sees exactly its grid."""
    first = max(0, (cutoff if first_cutoff is None else first_cutoff) - spec.train_days)
    origins = np.arange(panel.n_days - 2, first - 1, -spec.origin_stride)[::-1]
    origins = origins[origins <= cutoff - 1]
    return PanelRequests.grid(np.arange(len(panel.series)), origins, spec.horizon)


def _take(inputs: Inputs, keep: np.ndarray) -> Inputs:
    return Inputs(
        X=inputs.X[keep].reset_index(drop=True),
        log_base=inputs.log_base[keep],
        naive=inputs.naive[keep],
    )


@dataclass
class TrainingRows:
    """Every row some fit needs (those with a known actual), with its features, built once."""

    inputs: Inputs
    actual: np.ndarray
    origin: np.ndarray  # day index of each row's origin
    target: np.ndarray  # day index of each row's target

    @classmethod
    def build(
        cls, panel: Panel, spec: ModelSpec, vocab: Vocabulary, cutoffs: list[int]
    ) -> TrainingRows:
        """The rows for fits at every cut-off in `cutoffs` (day indices)."""
        last = max(cutoffs)
        requests = training_requests(panel, spec, last, first_cutoff=min(cutoffs))
        known = cut(panel, last)
        inputs, actual, _ = from_panel(known, vocab, requests)
        pair, _, horizon = requests.expand()
        origin = requests.origins[pair]
        keep = np.isfinite(actual)
        return cls(_take(inputs, keep), actual[keep], origin[keep], (origin + horizon)[keep])

    def at(self, cutoff: int, train_days: int) -> tuple[Inputs, np.ndarray]:
        """The slice known at day index `cutoff`: targets up to it, origins within
        `train_days` before it."""
        keep = (self.target <= cutoff) & (self.origin >= cutoff - train_days)
        return _take(self.inputs, keep), self.actual[keep]


def cut(panel: Panel, last_day: int) -> Panel:
    """The panel up to day index `last_day` (inclusive): nothing later can leak."""
    return Panel(
        series=panel.series,
        start=panel.start,
        units=panel.units[:, : last_day + 1],
        promo=panel.promo[:, : last_day + 1],
        stock_out=panel.stock_out[:, : last_day + 1],
        price=panel.price[:, : last_day + 1],
    )


def fit_at(
    panel: Panel,
    specs: list[ModelSpec],
    vocab: Vocabulary,
    cutoff: int,
    rows: TrainingRows | None = None,
) -> list[Forecaster]:
    """Fit each spec on what is known at day index `cutoff`: a slice of `rows` if given, else
    rows built for this cut-off alone."""
    rows = rows or TrainingRows.build(panel, specs[0], vocab, [cutoff])
    inputs, actual = rows.at(cutoff, specs[0].train_days)
    return [fit(spec, vocab, inputs, actual) for spec in specs]


def cutoffs(panel: Panel, spec: ModelSpec, config: BacktestConfig) -> list[int]:
    last = panel.n_days - 1 - spec.horizon - config.test_days + 1
    days = [last - k * config.fold_step for k in range(config.folds)][::-1]
    if days[0] < WINDOW + 28:
        need = WINDOW + 28 + spec.horizon + config.test_days + (config.folds - 1) * config.fold_step
        raise ValueError(
            f"not enough history for a {config.folds}-fold backtest: {panel.n_days} days, "
            f"need at least {need}"
        )
    return days


@dataclass
class Backtest:
    predictions: pd.DataFrame  # one row per (fold, series, origin, horizon) with a known actual
    cutoffs: list[dt.date]

    def scores(self, group: str | None = None) -> pd.DataFrame:
        """WAPE and RMSE per method (model, baselines, noise floor), optionally per group."""
        methods = [m for m in ("model", *BASELINES, "expected") if m in self.predictions]
        frame = self.predictions
        keys = [group] if group else []

        def score(part: pd.DataFrame) -> pd.Series:
            y = part["actual"].to_numpy()
            out = {}
            for m in methods:
                err = part[m].to_numpy() - y
                out[f"wape_{m}"] = wape(y, part[m].to_numpy())
                out[f"rmse_{m}"] = float(np.sqrt(np.mean(err**2)))
            out["rows"] = len(part)
            return pd.Series(out)

        if not keys:
            return score(frame).to_frame().T
        return frame.groupby(keys).apply(score, include_groups=False)  # type: ignore[call-overload]

    def wape(self, method: str = "model") -> float:
        return float(self.scores()[f"wape_{method}"].iloc[0])

    def coverage(self) -> float:
        p = self.predictions
        if "lower" not in p:
            return float("nan")
        inside = (p["actual"] >= p["lower"]) & (p["actual"] <= p["upper"])
        return float(inside.mean())


def run_backtest(
    panel: Panel,
    spec: ModelSpec,
    vocab: Vocabulary,
    config: BacktestConfig | None = None,
    truth: pd.DataFrame | None = None,
    with_baselines: bool = True,
    at: list[int] | None = None,
    rows: TrainingRows | None = None,
) -> Backtest:
    """Refit `spec` (and the baselines) at each cut-off (default: `cutoffs`, or the day
    indices `at`) on slices of `rows` (built here if not given) and collect out-of-sample
    forecasts."""
    config = config or BacktestConfig()
    days = at if at is not None else cutoffs(panel, spec, config)
    rows = rows or TrainingRows.build(panel, spec, vocab, days)
    # the test rows of every fold, in one pass: each fold's origins, every horizon
    test_origins = np.unique(np.concatenate([np.arange(c, c + config.test_days) for c in days]))
    test = PanelRequests.grid(np.arange(len(panel.series)), test_origins, spec.horizon)
    inputs, actual, series_rows = from_panel(panel, vocab, test)
    pair, _, horizon = test.expand()
    origin = test.origins[pair]
    parts = []
    for fold, cutoff in enumerate(days):
        specs = [spec, spec.replace(kind="linear")] if with_baselines else [spec]
        started = time.perf_counter()
        model, *others = fit_at(panel, specs, vocab, cutoff, rows)
        linear = others[0] if others else None
        mine = (origin >= cutoff) & (origin < cutoff + config.test_days) & np.isfinite(actual)
        fold_inputs = _take(inputs, mine)
        part = pd.DataFrame(
            {
                "fold": fold,
                "series": series_rows[mine],
                "horizon": horizon[mine],
                "target_day": origin[mine] + horizon[mine],
                "actual": actual[mine],
                "model": model.predict_inputs(fold_inputs),
            }
        )
        if with_baselines:
            part["seasonal_naive"] = fold_inputs.naive
            assert linear is not None
            part["linear"] = linear.predict_inputs(fold_inputs)
        parts.append(part)
        log.info(  # one line per fold: progress where there is no terminal
            "backtest fold %d of %d, cut-off %s: %s test rows, fitted and scored in %.1f s, "
            "WAPE %.3f",
            fold + 1,
            len(days),
            panel.start + dt.timedelta(days=int(cutoff)),
            f"{len(part):,}",
            time.perf_counter() - started,
            wape(part["actual"].to_numpy(), part["model"].to_numpy()),
        )
    frame = pd.concat(parts, ignore_index=True)
    series = panel.series
    frame["store_id"] = series["store_id"].to_numpy()[frame["series"]]
    frame["product_id"] = series["product_id"].to_numpy()[frame["series"]]
    frame["family"] = series["family"].to_numpy()[frame["series"]]
    frame["target_date"] = pd.DatetimeIndex(panel.date_of(frame["target_day"].to_numpy()))
    if truth is not None:
        expected = truth.assign(target_date=pd.to_datetime(truth["date"])).drop(columns="date")
        frame = frame.merge(
            expected.rename(columns={"expected_units": "expected"}),
            on=["store_id", "product_id", "target_date"],
            how="left",
        )
        frame = frame[frame["expected"].notna()].reset_index(drop=True)
    return Backtest(
        predictions=frame, cutoffs=[panel.start + dt.timedelta(days=int(d)) for d in days]
    )
