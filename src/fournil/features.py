"""Model features: the one place that turns history and a request into model inputs.

A forecast is made at an *origin* (`forecast_date`, the last day whose sales are known) for a
`target_date` = origin + horizon days. Its **raw inputs** are facts only: the last `WINDOW` days
of units, promo flags, stock-out flags and prices up to the origin (`units_0` is the origin day,
`units_1` the day before...), the planned price/promo at the target day, the number of sibling
products (same store and family) planned on promotion, and the store and product attributes.
Nothing after the origin is ever read, except the plan for the target day itself.

`from_raw` (used by the MLflow model, the API and the verification samples) and `from_panel`
(used by training and backtests, fast on whole panels) share `_history_stats` and `_assemble`,
so training and serving cannot drift apart. A test checks that both give identical features.

Missing days are NaN; nulls in the plan mean "regular price, no promotion"; a series with
little history falls back to the product's typical level learnt at training time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fournil.calendar import is_holiday
from fournil.data_report import demand_classes
from fournil.panel import Panel

WINDOW = 56  #: days of history a forecast reads
MIN_HISTORY = 7  #: below this many clean days, the level comes from the product prior
HISTORY = ("units", "promo", "stock_out", "price")
PLAN = ("price", "promo", "siblings_on_promo")
ATTRIBUTES = ("store_id", "product_id", "family", "city", "region", "store_opened_on")

FEATURES = (
    "horizon",
    "dow",
    "month",
    "doy",
    "holiday",
    "festive_eve",
    "product",
    "family",
    "city",
    "store_age",
    "log_base",
    "has_history",
    "level7_ratio",
    "level28_ratio",
    "phase_ratio",
    "naive_ratio",
    "cv",
    "zero_share",
    "promo_share",
    "stockout_share",
    "price_ratio",
    "promo",
    "siblings_on_promo",
)
CATEGORICAL = ("product", "family", "city")
#: the target day's plan features, neutral when a plan column is excluded (see `neutral_plan`)
PLAN_FEATURES = {"price": ("price_ratio",), "promo": ("promo", "siblings_on_promo")}
_NEUTRAL = {"price_ratio": 1.0, "promo": 0.0, "siblings_on_promo": 0.0}
#: smoothing of the intermittent-demand methods (sizes and intervals, or probability)
CROSTON_ALPHA = 0.1
TSB_BETA = 0.1


def history_columns(name: str) -> list[str]:
    return [f"{name}_{j}" for j in range(WINDOW)]


def raw_columns() -> list[str]:
    """The columns of a raw-input frame, in order."""
    cols = [*ATTRIBUTES, "forecast_date", "target_date", *PLAN]
    for name in HISTORY:
        cols += history_columns(name)
    return cols


@dataclass
class Vocabulary:
    """What training saw: category codes and each product's typical daily level."""

    products: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    cities: list[str] = field(default_factory=list)
    product_level: dict[int, float] = field(default_factory=dict)
    global_level: float = 1.0
    country: str = "FR"

    @classmethod
    def fit(cls, panel: Panel, country: str) -> Vocabulary:
        clean = _clean(panel.units, panel.promo, panel.stock_out)
        with np.errstate(all="ignore"):
            per_series = _nanmean(clean)
        frame = pd.DataFrame({"product_id": panel.series["product_id"], "level": per_series})
        by_product = frame.groupby("product_id")["level"].median().dropna()
        return cls(
            products=sorted(int(p) for p in panel.series["product_id"].unique()),
            families=sorted(str(f) for f in panel.series["family"].dropna().unique()),
            cities=sorted(str(c) for c in panel.series["city"].dropna().unique()),
            product_level=dict(
                zip(
                    by_product.index.astype(int).tolist(),
                    by_product.to_numpy(float).tolist(),
                    strict=True,
                )
            ),
            global_level=float(np.nanmedian(per_series)) if np.isfinite(per_series).any() else 1.0,
            country=country,
        )

    @staticmethod
    def codes(values: np.ndarray, vocabulary: list[int] | list[str]) -> np.ndarray:
        """Category codes; unseen values become NaN (LightGBM's 'missing')."""
        codes = pd.Index(vocabulary).get_indexer(pd.Index(values)).astype(np.float32)
        codes[codes < 0] = np.nan
        return codes

    def categories(
        self, product_id: np.ndarray, family: np.ndarray, city: np.ndarray
    ) -> dict[str, np.ndarray]:
        return {
            "product": self.codes(product_id, self.products),
            "family": self.codes(family, self.families),
            "city": self.codes(city, self.cities),
        }

    def prior(self, product_ids: np.ndarray) -> np.ndarray:
        """Each product's typical level (the global one for products never seen)."""
        known = pd.Series(self.product_level, dtype=np.float64)
        values = known.reindex(product_ids).to_numpy(np.float64)
        return np.where(np.isnan(values), self.global_level, values)


@dataclass
class Requests:
    """One row per forecast: which history row, origin, horizon, and the plan for the day."""

    row: np.ndarray  # index into the history arrays
    origin: np.ndarray  # datetime64[D]
    horizon: np.ndarray  # int
    price: np.ndarray  # float, NaN = regular price
    promo: np.ndarray  # float, NaN = no promotion
    siblings_on_promo: np.ndarray  # float, NaN = none
    product_id: np.ndarray
    categories: dict[str, np.ndarray]  # CATEGORICAL feature -> float32 codes (NaN = unseen)
    opened_on: np.ndarray  # datetime64[D], NaT if unknown


def _nanmean(values: np.ndarray, axis: int = 1) -> np.ndarray:
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0).sum(axis=axis)
    with np.errstate(all="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _clean(units: np.ndarray, promo: np.ndarray, stock_out: np.ndarray) -> np.ndarray:
    """Units of 'normal' days: no promotion, no stock-out (censored), not missing."""
    return np.where((promo == 1) | (stock_out == 1), np.nan, units)


def _last_valid(values: np.ndarray, positions: list[int]) -> np.ndarray:
    """Per row, the value at the first of `positions` that is not NaN (NaN if none)."""
    out = np.full(values.shape[0], np.nan, dtype=np.float64)
    for position in positions:
        fill = np.isnan(out)
        if not fill.any():
            break
        out[fill] = values[fill, position]
    return out


def _history_stats(
    units: np.ndarray, promo: np.ndarray, stock_out: np.ndarray, price: np.ndarray
) -> dict[str, np.ndarray]:
    """Summaries of (n, WINDOW) history arrays whose last column is the origin day."""
    units = units.astype(np.float64)
    clean = _clean(units, promo, stock_out)
    last = WINDOW - 1
    level = _nanmean(clean)
    n_obs = np.isfinite(clean).sum(axis=1)
    phase_mean = np.stack([_nanmean(clean[:, last - p :: -7][:, ::-1]) for p in range(7)], axis=1)
    naive = np.stack([_last_valid(units, list(range(last - p, -1, -7))) for p in range(7)], axis=1)
    with np.errstate(all="ignore"):
        centred = clean - level[:, None]
        std = np.sqrt(_nanmean(centred * centred))
        zero_share = _nanmean(np.where(np.isnan(units), np.nan, (units == 0).astype(float)))
    regular = np.where(promo == 1, np.nan, price)
    regular_price = _last_valid(regular, list(range(last, -1, -1)))
    regular_price = np.where(
        np.isnan(regular_price), _last_valid(price, list(range(last, -1, -1))), regular_price
    )
    croston, tsb = _intermittent(np.where(stock_out == 1, np.nan, units))
    return {
        "level": level,
        "n_obs": n_obs.astype(np.float64),
        "croston": croston,
        "tsb": tsb,
        "last": _last_valid(units, list(range(last, -1, -1))),
        "demand_class": demand_classes(units),
        "mean7": _nanmean(units[:, -7:]),
        "mean28": _nanmean(units[:, -28:]),
        "phase_mean": phase_mean,
        "naive": naive,
        "std": std,
        "zero_share": zero_share,
        "promo_share": _nanmean(promo),
        "stockout_share": _nanmean(stock_out),
        "regular_price": regular_price,
    }


def _intermittent(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Croston's method (with the Syntetos-Boylan bias correction) and TSB over each row's
    window (oldest first; NaN days skipped), as flat forecasts: sizes and intervals (Croston)
    or sizes and the probability of a sale (TSB) smoothed exponentially, started from the
    window's own means so a short window is not dominated by the start values."""
    known = np.isfinite(units)
    sold = known & (units > 0)
    with np.errstate(all="ignore"):
        size = np.where(sold.any(axis=1), _nanmean(np.where(sold, units, np.nan)), 0.0)
        n_known = known.sum(axis=1)
        prob = np.where(n_known > 0, sold.sum(axis=1) / np.maximum(n_known, 1), 0.0)
    interval = np.where(prob > 0, 1.0 / np.maximum(prob, 1e-9), np.inf)
    c_size, c_interval = size.copy(), interval.copy()
    t_size, t_prob = size.copy(), prob.copy()
    since = np.ones(len(units))
    a, b = CROSTON_ALPHA, TSB_BETA
    with np.errstate(all="ignore"):  # inf intervals (no sale yet) are never selected
        for j in range(units.shape[1]):
            k, s = known[:, j], sold[:, j]
            y = np.where(s, units[:, j], 0.0)
            c_size = np.where(s, c_size + a * (y - c_size), c_size)
            c_interval = np.where(s, c_interval + a * (since - c_interval), c_interval)
            since = np.where(s, 1.0, np.where(k, since + 1.0, since))
            t_prob = np.where(k, t_prob + b * (s - t_prob), t_prob)
            t_size = np.where(s, t_size + a * (y - t_size), t_size)
    with np.errstate(all="ignore"):
        croston = np.where(np.isfinite(c_interval), (1 - a / 2) * c_size / c_interval, 0.0)
    return np.nan_to_num(croston), np.nan_to_num(t_prob * t_size)


def neutral_plan(X: pd.DataFrame | np.ndarray, excluded: tuple[str, ...]) -> None:
    """Set the target day's plan features of `excluded` plan columns (price, promo) to their
    neutral values, in place (a FEATURES frame or float32 matrix): a plan column that leaks
    the answer is not used, neither in training nor when serving."""
    for column in excluded:
        for feature in PLAN_FEATURES[column]:
            if isinstance(X, pd.DataFrame):
                X[feature] = np.float32(_NEUTRAL[feature])
            else:
                X[:, FEATURES.index(feature)] = _NEUTRAL[feature]


#: the simple candidates computed from the history alone (no fitting)
SIMPLE = ("zero", "last_value", "seasonal_naive", "moving_average", "croston", "tsb")


@dataclass
class Inputs:
    """Model inputs for a batch of requests."""

    X: pd.DataFrame  # the FEATURES, float32
    log_base: np.ndarray  # log of the level the model's output multiplies
    naive: np.ndarray  # seasonal-naive forecast (same weekday, last known week)
    #: the simple candidates' forecasts (SIMPLE minus zero and seasonal naive)
    simple: dict[str, np.ndarray] = field(default_factory=dict)
    #: each row's demand class at its origin (`data_report.CLASSES`, over the window)
    demand_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))

    def take(self, rows: np.ndarray) -> Inputs:
        """The inputs of some rows (integer positions or a boolean mask)."""
        return Inputs(
            X=self.X.iloc[rows].reset_index(drop=True),
            log_base=self.log_base[rows],
            naive=self.naive[rows],
            simple={k: v[rows] for k, v in self.simple.items()},
            demand_class=self.demand_class[rows],
        )

    def candidate(self, kind: str) -> np.ndarray:
        """The forecast of a simple candidate."""
        if kind == "zero":
            return np.zeros(len(self.log_base))
        if kind == "seasonal_naive":
            return self.naive
        return self.simple[kind]


def _assemble(stats: dict[str, np.ndarray], req: Requests, vocab: Vocabulary) -> Inputs:
    i = req.row
    h = req.horizon.astype(np.int64)
    target = req.origin + h.astype("timedelta64[D]")
    index = pd.DatetimeIndex(target)
    phase = (-h) % 7
    prior = vocab.prior(req.product_id)
    level = stats["level"][i]
    has_history = stats["n_obs"][i] >= MIN_HISTORY
    base = np.where(has_history & (level > 0), level, prior)
    base = np.maximum(np.nan_to_num(base, nan=vocab.global_level), 0.1)
    naive = stats["naive"][i, phase]
    naive_forecast = np.where(np.isnan(naive), np.where(has_history, level, prior), naive)
    price = np.where(np.isnan(req.price), stats["regular_price"][i], req.price)
    with np.errstate(all="ignore"):
        columns = {
            "horizon": h,
            "dow": index.day_of_week.to_numpy(),
            "month": index.month.to_numpy(),
            "doy": index.day_of_year.to_numpy(),
            "holiday": is_holiday(index, vocab.country),
            "festive_eve": ((index.month == 12) & np.isin(index.day, (24, 31))),
            "product": req.categories["product"],
            "family": req.categories["family"],
            "city": req.categories["city"],
            "store_age": (target - req.opened_on).astype("timedelta64[D]").astype(np.float64),
            "log_base": np.log(base),
            "has_history": has_history,
            "level7_ratio": stats["mean7"][i] / base,
            "level28_ratio": stats["mean28"][i] / base,
            "phase_ratio": stats["phase_mean"][i, phase] / base,
            "naive_ratio": naive / base,
            "cv": stats["std"][i] / base,
            "zero_share": stats["zero_share"][i],
            "promo_share": stats["promo_share"][i],
            "stockout_share": stats["stockout_share"][i],
            "price_ratio": price / stats["regular_price"][i],
            "promo": np.nan_to_num(req.promo, nan=0.0),
            "siblings_on_promo": np.nan_to_num(req.siblings_on_promo, nan=0.0),
        }
    frame = pd.DataFrame({k: np.asarray(v, dtype=np.float32) for k, v in columns.items()})
    frame["price_ratio"] = frame["price_ratio"].fillna(1.0)
    mean28 = stats["mean28"][i]
    moving = np.where(np.isnan(mean28), np.where(has_history, level, prior), mean28)
    return Inputs(
        X=frame[list(FEATURES)],
        log_base=np.log(base),
        naive=naive_forecast,
        simple={
            "last_value": np.where(np.isnan(stats["last"][i]), moving, stats["last"][i]),
            "moving_average": np.nan_to_num(moving),
            "croston": stats["croston"][i],
            "tsb": stats["tsb"][i],
        },
        demand_class=stats["demand_class"][i].astype(np.int8),
    )


def _dates(values: pd.Series) -> np.ndarray:
    return pd.to_datetime(values).to_numpy().astype("datetime64[D]")


def from_raw(raw: pd.DataFrame, vocab: Vocabulary) -> Inputs:
    """Model inputs from a raw-input frame (see `raw_columns`)."""
    missing = [c for c in raw_columns() if c not in raw.columns]
    if missing:
        raise ValueError(f"raw inputs lack column(s): {', '.join(missing[:5])}")
    arrays = {
        name: raw[history_columns(name)[::-1]].to_numpy(dtype=np.float64, na_value=np.nan)
        for name in HISTORY
    }
    stats = _history_stats(arrays["units"], arrays["promo"], arrays["stock_out"], arrays["price"])
    origin = _dates(raw["forecast_date"])
    horizon = (_dates(raw["target_date"]) - origin).astype(np.int64)
    if (horizon < 1).any():
        raise ValueError("target_date must be after forecast_date")

    def plan(name: str) -> np.ndarray:
        return pd.to_numeric(raw[name], errors="coerce").to_numpy(np.float64, na_value=np.nan)

    req = Requests(
        row=np.arange(len(raw)),
        origin=origin,
        horizon=horizon,
        price=plan("price"),
        promo=plan("promo"),
        siblings_on_promo=plan("siblings_on_promo"),
        product_id=raw["product_id"].to_numpy(np.int64),
        categories=vocab.categories(
            raw["product_id"].to_numpy(np.int64),
            raw["family"].astype(object).to_numpy(),
            raw["city"].astype(object).to_numpy(),
        ),
        opened_on=_dates(raw["store_opened_on"]),
    )
    return _assemble(stats, req, vocab)


def _windows(matrix: np.ndarray, rows: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """(n, WINDOW) history ending at each origin (column index), NaN before the panel starts."""
    padded = np.concatenate(
        [np.full((matrix.shape[0], WINDOW), np.nan, dtype=matrix.dtype), matrix], axis=1
    )
    cols = origins[:, None] + np.arange(1, WINDOW + 1)[None, :]
    return padded[rows[:, None], cols].astype(np.float64)


@dataclass
class PanelRequests:
    """Forecasts to make from a panel: every (series, origin) pair times every horizon."""

    series_rows: np.ndarray
    origins: np.ndarray  # day index in the panel
    horizons: np.ndarray
    #: one horizon per (series, origin) pair instead of every horizon for each
    per_pair: bool = False

    @classmethod
    def grid(cls, series_rows: np.ndarray, origins: np.ndarray, horizon: int) -> PanelRequests:
        """Every series at every origin, horizons 1..horizon."""
        return cls(
            series_rows=np.repeat(series_rows, len(origins)),
            origins=np.tile(origins, len(series_rows)),
            horizons=np.arange(1, horizon + 1),
        )

    def expand(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pair index, series row, horizon) per forecast, horizon-major."""
        pairs = np.arange(len(self.series_rows))
        if self.per_pair:
            return pairs, self.series_rows, self.horizons.astype(np.int64)
        pair = np.tile(pairs, len(self.horizons))
        horizon = np.repeat(self.horizons, len(pairs))
        return pair, self.series_rows[pair], horizon


#: series per feature batch: features are built block by block so memory stays bounded
#: whatever the chain's size, and a fixed size keeps the order of rows built for different
#: cut-offs the same
SERIES_BLOCK = 128


def series_blocks(n_series: int) -> list[np.ndarray]:
    """Series row indices in blocks of SERIES_BLOCK, in order."""
    return [np.arange(a, min(a + SERIES_BLOCK, n_series)) for a in range(0, n_series, SERIES_BLOCK)]


def _target_values(matrix: np.ndarray, rows: np.ndarray, days: np.ndarray) -> np.ndarray:
    inside = days < matrix.shape[1]
    out = np.full(len(rows), np.nan, dtype=np.float64)
    out[inside] = matrix[rows[inside], days[inside]]
    return out


def from_panel(
    panel: Panel,
    vocab: Vocabulary,
    requests: PanelRequests,
    plan_from_panel: bool = True,
) -> tuple[Inputs, np.ndarray, np.ndarray]:
    """Model inputs for every (series, origin, horizon); also the actual units at the target
    (NaN if unknown or censored by a stock-out) and each row's series index.

    With `plan_from_panel`, the target day's price, promo and sibling promos come from the
    panel (training and backtests: the promotion plan is known in advance); otherwise they are
    left null (regular price, no promotion).
    """
    stats = _history_stats(
        *(
            _windows(m, requests.series_rows, requests.origins)
            for m in (panel.units, panel.promo, panel.stock_out, panel.price)
        )
    )
    pair, rows, horizon = requests.expand()
    target_day = requests.origins[pair] + horizon
    series = panel.series
    nan = np.full(len(pair), np.nan)
    req = Requests(
        row=pair,
        origin=panel.date_of(requests.origins[pair]),
        horizon=horizon,
        price=_target_values(panel.price, rows, target_day) if plan_from_panel else nan,
        promo=_target_values(panel.promo, rows, target_day) if plan_from_panel else nan,
        siblings_on_promo=(
            _target_values(panel.siblings_on_promo, rows, target_day) if plan_from_panel else nan
        ),
        product_id=series["product_id"].to_numpy(np.int64)[rows],
        categories={  # coded once per series, then spread to the rows
            name: codes[rows]
            for name, codes in vocab.categories(
                series["product_id"].to_numpy(np.int64),
                series["family"].astype(object).to_numpy(),
                series["city"].astype(object).to_numpy(),
            ).items()
        },
        opened_on=_dates(series["opened_on"])[rows],
    )
    actual = _target_values(panel.units, rows, target_day)
    censored = _target_values(panel.stock_out, rows, target_day) == 1
    actual[censored] = np.nan
    return _assemble(stats, req, vocab), actual, rows


def raw_frame(
    panel: Panel,
    requests: PanelRequests,
    plan: pd.DataFrame | None = None,
    plan_from_panel: bool = False,
) -> pd.DataFrame:
    """Raw inputs (see `raw_columns`) for panel requests: what the API and the MLflow model
    receive. `plan` may give price/promo/siblings_on_promo per (store_id, product_id,
    target_date); otherwise the plan is null, or read from the panel with `plan_from_panel`."""
    pair, rows, horizon = requests.expand()
    origin_day = requests.origins[pair]
    target_day = origin_day + horizon
    series = panel.series.iloc[rows].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "store_id": series["store_id"].to_numpy(np.int64),
            "product_id": series["product_id"].to_numpy(np.int64),
            "family": series["family"].astype(str).to_numpy(),
            "city": series["city"].astype(str).to_numpy(),
            "region": series["region"].astype(str).to_numpy(),
            "store_opened_on": pd.to_datetime(series["opened_on"]).dt.strftime("%Y-%m-%d"),
            "forecast_date": pd.DatetimeIndex(panel.date_of(origin_day)).strftime("%Y-%m-%d"),
            "target_date": pd.DatetimeIndex(panel.date_of(target_day)).strftime("%Y-%m-%d"),
        }
    )
    for name, matrix in (
        ("price", panel.price),
        ("promo", panel.promo),
        ("siblings_on_promo", panel.siblings_on_promo),
    ):
        frame[name] = _target_values(matrix, rows, target_day) if plan_from_panel else np.nan
    if plan is not None and not plan.empty:
        keyed = plan.assign(target_date=pd.to_datetime(plan["target_date"]).dt.strftime("%Y-%m-%d"))
        merged = frame[["store_id", "product_id", "target_date"]].merge(
            keyed, on=["store_id", "product_id", "target_date"], how="left"
        )
        for name in PLAN:
            if name in merged:
                frame[name] = merged[name].to_numpy(np.float64, na_value=np.nan)
    history = {}
    matrices = (panel.units, panel.promo, panel.stock_out, panel.price)
    for name, matrix in zip(HISTORY, matrices, strict=True):
        window = _windows(matrix, rows, origin_day)[:, ::-1]  # column j = j days before origin
        for j, column in enumerate(history_columns(name)):
            history[column] = window[:, j]
    frame = pd.concat([frame, pd.DataFrame(history)], axis=1)
    return frame[raw_columns()]


def target_dates(origin: dt.date, horizons: np.ndarray) -> list[dt.date]:
    return [origin + dt.timedelta(days=int(h)) for h in horizons]
