"""Rolling-origin backtest: refit at several cut-offs, forecast the days after each, score.

At a cut-off `c` the models are fitted on targets up to `c` only, then forecast from origins
c, c+1, ..., c+test_days-1 at every horizon. The training rows (series x origin x horizon) and
their features are built once (`TrainingRows`), series block by series block into one float32
matrix, for every cut-off and the final fit: a row's features read the history up to its
origin and the plan of its target day, so the rows with a target on or before `c` are exactly
what a panel cut at `c` gives; each fit takes the rows known at its cut-off. LightGBM bins them
once, on bins from rows known at the first cut-off (`Reference`), and fits on subsets; the
linear model is solved from normal equations over the same matrix. Above a row cap, a hashed
share of the (series, origin) pairs is kept (`kept_pairs`). A fit can also run elsewhere (a
`FitRunner`, e.g. a Dask task: `fit_one_cutoff`) and gives the same model. The test rows are
scored block by block. Actuals on stock-out days are censored and left out of the scores, as
are unknown days. If the data came from the generator, its expected (noise-free) demand gives
the noise floor on the same rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fournil.features import (
    FEATURES,
    WINDOW,
    Inputs,
    PanelRequests,
    Vocabulary,
    from_panel,
    neutral_plan,
    series_blocks,
)
from fournil.models.estimators import (
    CANDIDATES,
    Forecaster,
    ModelSpec,
    fit_lightgbm,
    fit_linear,
    lgb_dataset,
)
from fournil.models.selection import route_predictions, select_routes
from fournil.panel import Panel
from fournil.scores import bias, wape, wape_bias

log = logging.getLogger("fournil.train")

#: the candidates a backtest scores beside the model (`CANDIDATES` but LightGBM's recipe)
BASELINES = tuple(c for c in CANDIDATES if c != "lightgbm")


@dataclass(frozen=True)
class BacktestConfig:
    folds: int = 3
    fold_step: int = 28  # days between cut-offs
    test_days: int = 7  # origins per fold


#: rows the shared bin boundaries are found on (LightGBM's own sample size)
REFERENCE_ROWS = 200_000


def training_requests(
    panel: Panel, spec: ModelSpec, cutoff: int, first_cutoff: int | None = None
) -> PanelRequests:
    """Origins whose targets can fall on or before `cutoff`, for fits at cut-offs from
    `first_cutoff` (default: `cutoff`) on. Origins fall every `origin_stride` days counted back
    from the panel's last possible origin, whatever the cut-offs: a fold's rows are the same
    whether its fit is one of a training run's or the gate's re-run, and the final fit (at the
    last day) sees exactly its grid. With `pair_fraction` < 1, a fixed share of the (series,
    origin) pairs is kept, chosen by a hash of store, product and origin date (see
    `kept_pairs`)."""
    origins = _origins(panel, spec, cutoff, cutoff if first_cutoff is None else first_cutoff)
    requests = PanelRequests.grid(np.arange(len(panel.series)), origins, spec.horizon)
    if spec.pair_fraction < 1.0:
        keep = kept_pairs(panel, requests.series_rows, requests.origins, spec.pair_fraction)
        requests = PanelRequests(
            requests.series_rows[keep], requests.origins[keep], requests.horizons
        )
    return requests


def _origins(panel: Panel, spec: ModelSpec, cutoff: int, first_cutoff: int) -> np.ndarray:
    """Training origins, ascending: every `origin_stride` days back from the panel's last
    possible origin, within `train_days` before `first_cutoff`, before `cutoff`."""
    first = max(0, first_cutoff - spec.train_days)
    origins = np.arange(panel.n_days - 2, first - 1, -spec.origin_stride)[::-1]
    return origins[origins <= cutoff - 1]


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: well-spread 64-bit hashes (uint64 arithmetic wraps)."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def kept_pairs(
    panel: Panel, series_rows: np.ndarray, origins: np.ndarray, fraction: float
) -> np.ndarray:
    """Which (series, origin) pairs a sample of `fraction` keeps: a hash of store id, product
    id and the origin's date, so the choice does not depend on the panel's first day, its
    series order or which fit asks."""
    store = panel.series["store_id"].to_numpy(np.int64)[series_rows].astype(np.uint64)
    product = panel.series["product_id"].to_numpy(np.int64)[series_rows].astype(np.uint64)
    ordinal = (origins + panel.start.toordinal()).astype(np.uint64)
    h = _mix(_mix(_mix(store + np.uint64(0x9E3779B97F4A7C15)) ^ product) ^ ordinal)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def pair_fraction(panel: Panel, spec: ModelSpec, cutoffs: list[int], max_rows: int) -> float:
    """The share of (series, origin) pairs that keeps a build for `cutoffs` near `max_rows`
    rows (1.0 when everything fits)."""
    n_origins = len(_origins(panel, spec, max(cutoffs), min(cutoffs)))
    full = len(panel.series) * n_origins * spec.horizon
    return 1.0 if full <= max_rows else round(max_rows / full, 6)


@dataclass
class TrainingRows:
    """Every row some fit needs (those with a known actual), with its features, built once,
    block by block into one float32 matrix (the FEATURES' columns)."""

    X: np.ndarray  # float32, (rows, len(FEATURES))
    log_base: np.ndarray  # float64: the offset (LightGBM's init score)
    actual: np.ndarray  # float32
    origin: np.ndarray  # int32 day index of each row's origin
    target: np.ndarray  # int32 day index of each row's target

    @classmethod
    def build(
        cls, panel: Panel, spec: ModelSpec, vocab: Vocabulary, cutoffs: list[int]
    ) -> TrainingRows:
        """The rows for fits at every cut-off in `cutoffs` (day indices)."""
        last = max(cutoffs)
        requests = training_requests(panel, spec, last, first_cutoff=min(cutoffs))
        known = cut(panel, last)
        bound = len(requests.series_rows) * len(requests.horizons)
        # np.empty maps pages lazily: the unused tail of the bound never becomes resident
        X = np.empty((bound, len(FEATURES)), dtype=np.float32)
        log_base = np.empty(bound, dtype=np.float64)
        actual = np.empty(bound, dtype=np.float32)
        origin = np.empty(bound, dtype=np.int32)
        target = np.empty(bound, dtype=np.int32)
        n = 0
        owner = np.searchsorted(requests.series_rows, np.arange(len(panel.series) + 1))
        for block in series_blocks(len(panel.series)):
            lo, hi = owner[block[0]], owner[block[-1] + 1]
            if hi == lo:
                continue
            part = PanelRequests(
                requests.series_rows[lo:hi], requests.origins[lo:hi], requests.horizons
            )
            inputs, y, _ = from_panel(known, vocab, part)
            pair, _, horizon = part.expand()
            keep = np.isfinite(y)
            k = int(keep.sum())
            X[n : n + k] = inputs.X.to_numpy(np.float32)[keep]
            neutral_plan(X[n : n + k], spec.excluded_plan)
            log_base[n : n + k] = inputs.log_base[keep]
            actual[n : n + k] = y[keep]
            o = part.origins[pair][keep]
            origin[n : n + k] = o
            target[n : n + k] = o + horizon[keep]
            n += k
        return cls(X[:n], log_base[:n], actual[:n], origin[:n], target[:n])

    def __len__(self) -> int:
        return len(self.actual)

    def mask(self, cutoff: int, train_days: int) -> np.ndarray:
        """The rows known at day index `cutoff`: targets up to it, origins within
        `train_days` before it."""
        return (self.target <= cutoff) & (self.origin >= cutoff - train_days)

    def at(self, cutoff: int, train_days: int) -> tuple[Inputs, np.ndarray]:
        """The slice known at `cutoff` as model inputs (a copy: for small data and tests)."""
        keep = self.mask(cutoff, train_days)
        X = pd.DataFrame(self.X[keep], columns=list(FEATURES))
        naive = np.full(int(keep.sum()), np.nan)
        return Inputs(X=X, log_base=self.log_base[keep], naive=naive), self.actual[keep].astype(
            np.float64
        )

    def reference(self, cutoff: int, train_days: int) -> np.ndarray:
        """Row indices the bin boundaries of every fit come from: at most REFERENCE_ROWS rows
        known at the first cut-off, so no later value shapes an earlier fold's bins."""
        rows = np.flatnonzero(self.mask(cutoff, train_days))
        step = max(1, -(-len(rows) // REFERENCE_ROWS))
        return rows[::step]


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


@dataclass
class Reference:
    """The bin boundaries every fit of a training run shares (as the rows they come from)."""

    X: np.ndarray
    actual: np.ndarray
    log_base: np.ndarray

    @classmethod
    def of(cls, rows: TrainingRows, cutoff: int, train_days: int) -> Reference:
        idx = rows.reference(cutoff, train_days)
        return cls(rows.X[idx], rows.actual[idx], rows.log_base[idx])


#: a fit says how far it is at most this often (a line each; a fit can take minutes)
ROUND_PROGRESS_SECONDS = 5.0


def _round_progress(k: int, fits: int, cutoff: int, started: float) -> Callable[[int, int], None]:
    """A LightGBM round callback logging 'fit k of n ...: round r of R' every
    ROUND_PROGRESS_SECONDS while the fit runs."""
    said = [started]

    def on_round(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - said[0] >= ROUND_PROGRESS_SECONDS:
            said[0] = now
            log.info(
                "fit %d of %d (cut-off day %d): round %d of %d, %.0f s so far",
                k + 1, fits, cutoff, done, total, now - started,
            )  # fmt: skip

    return on_round


def fit_rows(
    specs: list[ModelSpec],
    vocab: Vocabulary,
    rows: TrainingRows,
    cutoffs: list[int],
    reference: Reference,
) -> list[list[Forecaster]]:
    """For each cut-off, each spec fitted on the rows known there: LightGBM on subsets of one
    binned Dataset (bins from `reference`), linear models from normal equations accumulated
    over the rows (no copy of the matrix either way). With a LightGBM spec, `rows.X` is
    consumed: emptied once it is binned."""
    train_days = specs[0].train_days
    masks = [rows.mask(c, train_days) for c in cutoffs]
    out: list[list[Forecaster | None]] = [[None] * len(specs) for _ in cutoffs]
    linear = [i for i, s in enumerate(specs) if s.kind == "linear"]
    for i in linear:
        fitted = fit_linear(specs[i], vocab, rows, masks)
        for k, model in enumerate(fitted):
            out[k][i] = model
    boosted = [i for i, s in enumerate(specs) if s.kind == "lightgbm"]
    if boosted:
        ref = lgb_dataset(specs[boosted[0]], reference.X, reference.actual, reference.log_base)
        full = lgb_dataset(specs[boosted[0]], rows.X, rows.actual, rows.log_base, ref)
        full.construct()
        # binned now, and the linear fits are done: the float32 matrix (the largest thing a
        # training run holds) is let go here rather than after every fit
        rows.X = np.empty((0, len(FEATURES)), np.float32)
        for k, keep in enumerate(masks):
            started = time.perf_counter()
            part = full.subset(np.flatnonzero(keep).tolist())
            rounds = _round_progress(k, len(masks), cutoffs[k], started)
            for i in boosted:
                out[k][i] = fit_lightgbm(specs[i], vocab, part, on_round=rounds)
            del part
            log.info(  # one line per fit: progress where there is no terminal
                "fit %d of %d (cut-off day %d): %s rows in %.1f s",
                k + 1,
                len(masks),
                cutoffs[k],
                f"{int(keep.sum()):,}",
                time.perf_counter() - started,
            )
        del full, ref
    for i, s in enumerate(specs):
        if s.kind not in ("linear", "lightgbm"):
            for k in range(len(cutoffs)):
                out[k][i] = Forecaster(spec=s, vocab=vocab)
    return [[m for m in fits if m is not None] for fits in out]


def fit_at(
    panel: Panel,
    specs: list[ModelSpec],
    vocab: Vocabulary,
    cutoff: int,
    rows: TrainingRows | None = None,
    reference: Reference | None = None,
) -> list[Forecaster]:
    """Fit each spec on what is known at day index `cutoff`: rows of `rows` if given, else
    rows built for this cut-off alone (bins from them unless `reference` is given)."""
    rows = rows or TrainingRows.build(panel, specs[0], vocab, [cutoff])
    reference = reference or Reference.of(rows, cutoff, specs[0].train_days)
    return fit_rows(specs, vocab, rows, [cutoff], reference)[0]


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

    #: a routed champion's routes (demand class -> candidate), chosen on these predictions
    routes: dict[int, str] | None = None
    #: how the routes were chosen: per class and candidate, WAPE pooled and per fold
    selection: pd.DataFrame | None = None

    def scores(self, group: str | None = None) -> pd.DataFrame:
        """WAPE and RMSE per method (model, candidates, noise floor), optionally per group."""
        methods = [
            m for m in ("model", "lightgbm", *BASELINES, "expected") if m in self.predictions
        ]
        frame = self.predictions
        keys = [group] if group else []

        def score(part: pd.DataFrame) -> pd.Series:
            y = part["actual"].to_numpy()
            out = {}
            for m in methods:
                err = part[m].to_numpy() - y
                out[f"wape_{m}"] = wape(y, part[m].to_numpy())
                out[f"bias_{m}"] = bias(y, part[m].to_numpy())
                out[f"rmse_{m}"] = float(np.sqrt(np.mean(err**2)))
            out["rows"] = len(part)
            return pd.Series(out)

        if not keys:
            return score(frame).to_frame().T
        return frame.groupby(keys).apply(score, include_groups=False)  # type: ignore[call-overload]

    def wape(self, method: str = "model") -> float:
        return float(self.scores()[f"wape_{method}"].iloc[0])

    def score(self, method: str = "model") -> float:
        """WAPE + |bias| (what candidates are chosen on, and the gate compares)."""
        p = self.predictions
        return wape_bias(p["actual"].to_numpy(), p[method].to_numpy())

    def coverage(self) -> float:
        p = self.predictions
        if "lower" not in p:
            return float("nan")
        inside = (p["actual"] >= p["lower"]) & (p["actual"] <= p["upper"])
        return float(inside.mean())


def expected_matrix(panel: Panel, truth: pd.DataFrame, first_day: int) -> np.ndarray:
    """The generator's noise-free demand as a (series, day - first_day) matrix, NaN where
    the truth has nothing."""
    days = (pd.to_datetime(truth["date"]) - pd.Timestamp(panel.start)).dt.days.to_numpy()
    keys = panel.series[["store_id", "product_id"]].reset_index(drop=True)
    keys["row"] = np.arange(len(keys))
    rows = truth[["store_id", "product_id"]].merge(keys, how="left")["row"].to_numpy()
    matrix = np.full((len(panel.series), max(1, panel.n_days - first_day)), np.nan, np.float32)
    ok = np.isfinite(rows.astype(np.float64)) & (days >= first_day) & (days < panel.n_days)
    matrix[rows[ok].astype(np.int64), days[ok] - first_day] = truth["expected_units"].to_numpy(
        np.float32
    )[ok]
    return matrix


def score_fold(
    panel: Panel,
    vocab: Vocabulary,
    models: list[Forecaster],
    cutoff: int,
    test_days: int,
    horizon: int,
    with_baselines: bool,
) -> pd.DataFrame:
    """Out-of-sample forecasts from the origins `cutoff` .. `cutoff + test_days - 1`, every
    horizon, built block by block; one row per forecast with a known actual."""
    origins = np.arange(cutoff, cutoff + test_days)
    parts = []
    for block in series_blocks(len(panel.series)):
        req = PanelRequests.grid(block, origins, horizon)
        inputs, actual, series_rows = from_panel(panel, vocab, req)
        pair, _, h = req.expand()
        ok = np.isfinite(actual)
        mine = inputs.take(ok)
        part = {
            "series": series_rows[ok].astype(np.int32),
            "horizon": h[ok].astype(np.int16),
            "target_day": (req.origins[pair] + h)[ok].astype(np.int32),
            "actual": actual[ok],
            "model": models[0].predict_inputs(mine),
        }
        if with_baselines:
            part["lightgbm"] = part["model"]
            part["demand_class"] = mine.demand_class
            for kind in BASELINES:
                if kind == "linear":
                    part[kind] = models[1].predict_inputs(mine)
                else:
                    part[kind] = mine.candidate(kind)
            for kind in ("model", *CANDIDATES):
                part[kind] = np.asarray(part[kind], np.float32)
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


def fit_backtest(
    panel: Panel,
    specs: list[ModelSpec],
    vocab: Vocabulary,
    days: list[int],
    rows: TrainingRows | None = None,
    runner: FitRunner | None = None,
) -> list[list[Forecaster]]:
    """The fits at every cut-off in `days`: here on one shared matrix (built if not given),
    or through `runner` (e.g. Dask tasks, one per cut-off) on the same rows and bins."""
    spec = specs[0]
    if runner is not None:
        # the bins come from the first cut-off's rows, built here once and sent to every fit
        reference = Reference.of(
            TrainingRows.build(panel, spec, vocab, [days[0]]), days[0], spec.train_days
        )
        return runner(panel, specs, vocab, days, reference)
    rows = rows or TrainingRows.build(panel, spec, vocab, days)
    return fit_rows(specs, vocab, rows, days, Reference.of(rows, days[0], spec.train_days))


#: fits `specs` at each cut-off on the rows known there (see `fit_rows`), somewhere else
FitRunner = Callable[
    [Panel, list[ModelSpec], Vocabulary, list[int], Reference], list[list[Forecaster]]
]


def fit_one_cutoff(
    panel: Panel, specs: list[ModelSpec], vocab: Vocabulary, cutoff: int, reference: Reference
) -> list[Forecaster]:
    """One cut-off's fits on rows built for it alone: what a distributed task runs."""
    rows = TrainingRows.build(panel, specs[0], vocab, [cutoff])
    return fit_rows(specs, vocab, rows, [cutoff], reference)[0]


def run_backtest(
    panel: Panel,
    spec: ModelSpec,
    vocab: Vocabulary,
    config: BacktestConfig | None = None,
    truth: pd.DataFrame | None = None,
    with_baselines: bool = True,
    at: list[int] | None = None,
    rows: TrainingRows | None = None,
    fits: list[list[Forecaster]] | None = None,
    runner: FitRunner | None = None,
) -> Backtest:
    """Refit `spec` (and the baselines) at each cut-off (default: `cutoffs`, or the day
    indices `at`) on `rows` (built here if not given), or take the `fits` already made there,
    and collect out-of-sample forecasts. With baselines and `spec.select`, the model is the
    routed champion: per demand class, the candidate best on these forecasts."""
    config = config or BacktestConfig()
    days = at if at is not None else cutoffs(panel, spec, config)
    specs = [spec, spec.replace(kind="linear")] if with_baselines else [spec]
    if fits is None:
        fits = fit_backtest(panel, specs, vocab, days, rows, runner)
    expected = expected_matrix(panel, truth, days[0] + 1) if truth is not None else None
    parts = []
    for fold, (cutoff, models) in enumerate(zip(days, fits, strict=True)):
        started = time.perf_counter()
        part = score_fold(
            panel, vocab, models, cutoff, config.test_days, spec.horizon, with_baselines
        )
        part.insert(0, "fold", np.int8(fold))
        if expected is not None:
            part["expected"] = expected[part["series"], part["target_day"] - (days[0] + 1)]
            part = part[part["expected"].notna()].reset_index(drop=True)
        parts.append(part)
        log.info(  # one line per fold: progress where there is no terminal
            "backtest fold %d of %d, cut-off %s: %s test rows scored in %.1f s, WAPE %.3f",
            fold + 1,
            len(days),
            panel.start + dt.timedelta(days=int(cutoff)),
            f"{len(part):,}",
            time.perf_counter() - started,
            wape(part["actual"].to_numpy(), part["model"].to_numpy()),
        )
    frame = pd.concat(parts, ignore_index=True)
    routes, selection = None, None
    if with_baselines and spec.select:
        routes, selection = select_routes(frame)
        frame["model"] = route_predictions(frame, routes)
    series = panel.series
    frame["store_id"] = series["store_id"].to_numpy()[frame["series"]]
    frame["product_id"] = series["product_id"].to_numpy()[frame["series"]]
    frame["family"] = pd.Categorical(series["family"].astype(str).to_numpy()[frame["series"]])
    frame["target_date"] = pd.DatetimeIndex(panel.date_of(frame["target_day"].to_numpy()))
    return Backtest(
        predictions=frame,
        cutoffs=[panel.start + dt.timedelta(days=int(d)) for d in days],
        routes=routes,
        selection=selection,
    )
