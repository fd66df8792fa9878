"""The forecasters: a global LightGBM model, a linear model (also the fallback), and the simple
candidates read off the history (zero, the last value, seasonal naive, a 28-day moving
average, Croston, TSB).

All take `fournil.features.Inputs`. A champion is *routed*: `routes` names, per demand class of
a row at its origin (smooth, erratic, intermittent, lumpy, no sales: see `data_report`), the
candidate that answers it, chosen on the backtest (`models.selection`). LightGBM fits a
Poisson model whose output multiplies the series' level (`log_base` is its offset), so one
model serves series of any size. Intervals come from the backtest's residuals, scaled like
count noise (sqrt of the forecast), per horizon.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd

from fournil.data_report import CLASSES
from fournil.features import (
    CATEGORICAL,
    FEATURES,
    SIMPLE,
    Inputs,
    Vocabulary,
    from_raw,
    neutral_plan,
)

Kind = Literal[
    "lightgbm",
    "linear",
    "seasonal_naive",
    "moving_average",
    "croston",
    "tsb",
    "zero",
    "last_value",
]
#: every candidate, simplest first (a tie goes to the simpler)
CANDIDATES: tuple[str, ...] = (*SIMPLE, "linear", "lightgbm")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines how a model is trained (logged as MLflow params)."""

    kind: Kind = "lightgbm"
    horizon: int = 14
    seed: int = 42
    num_boost_round: int = 250
    learning_rate: float = 0.06
    num_leaves: int = 63
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.9
    lambda_l2: float = 1.0
    num_threads: int = 2
    train_days: int = 730  # history used for fitting, before the cut-off
    origin_stride: int = 2  # one training origin every N days (all horizons each)
    pair_fraction: float = 1.0  # share of (series, origin) pairs kept (a hash: see backtest)
    ridge_alpha: float = 1.0
    interval: float = 0.8  # central interval coverage
    #: choose the champion among every candidate by demand class (False: LightGBM alone)
    select: bool = True
    #: target-day plan columns not used (they leak the answer: see `data_report.leaks`)
    excluded_plan: tuple[str, ...] = ()

    def params(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def replace(self, **changes: object) -> ModelSpec:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_LINEAR_FEATURES = (
    "holiday",
    "festive_eve",
    "promo",
    "siblings_on_promo",
    "horizon",
    "phase_ratio",
    "naive_ratio",
    "level7_ratio",
)


def _linear_design(X: pd.DataFrame) -> np.ndarray:
    dow = np.eye(7, dtype=np.float64)[X["dow"].to_numpy(np.int64).clip(0, 6)]
    cols = [X[c].to_numpy(np.float64) for c in _LINEAR_FEATURES]
    price = np.log(np.clip(X["price_ratio"].to_numpy(np.float64), 0.2, 5.0))
    design = np.column_stack([dow, *cols, price])
    design = np.nan_to_num(design, nan=1.0, posinf=1.0, neginf=1.0)
    return np.clip(design, -20.0, 20.0)


@dataclass
class Forecaster:
    """A fitted model with what it needs to predict from raw inputs."""

    spec: ModelSpec
    vocab: Vocabulary
    booster_text: str | None = None
    linear_coef: np.ndarray | None = None
    linear_intercept: float = 0.0
    #: per horizon (1-based index): standardised residual quantiles (low, high)
    interval_quantiles: dict[int, tuple[float, float]] = field(default_factory=dict)
    #: a routed champion: demand class (index) -> the candidate kind answering its rows
    routes: dict[int, str] | None = None
    _booster: lgb.Booster | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_booster"] = None
        return state

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            if self.booster_text is None:
                raise ValueError("not a LightGBM model")
            self._booster = lgb.Booster(model_str=self.booster_text)
        return self._booster

    def predict_inputs(self, inputs: Inputs) -> np.ndarray:
        if self.spec.excluded_plan:
            X = inputs.X.copy()
            neutral_plan(X, self.spec.excluded_plan)
            inputs = dataclasses.replace(inputs, X=X)
        if self.routes is None:
            return self._predict(self.spec.kind, inputs)
        chosen = self.route(inputs.demand_class)
        kinds = np.unique(chosen)
        if len(kinds) == 1:
            return self._predict(str(kinds[0]), inputs)
        out = np.zeros(len(inputs.log_base))
        for kind in kinds:
            rows = np.flatnonzero(chosen == kind)
            out[rows] = self._predict(str(kind), inputs.take(rows))
        return out

    def route(self, demand_class: np.ndarray) -> np.ndarray:
        """The candidate kind answering each row (routes[-1]: classes without a route)."""
        assert self.routes is not None
        table = np.array([self.routes.get(c, self.routes[-1]) for c in range(-1, len(CLASSES))])
        return table[np.clip(demand_class.astype(np.int64), -1, len(CLASSES) - 1) + 1]

    def _predict(self, kind: str, inputs: Inputs) -> np.ndarray:
        if kind in SIMPLE:
            out = inputs.candidate(kind)
        elif kind == "linear":
            assert self.linear_coef is not None
            z = _linear_design(inputs.X) @ self.linear_coef + self.linear_intercept
            base = np.exp(inputs.log_base)
            out = (base + 1) * np.exp(np.clip(z, -10, 10)) - 1
        else:
            raw = self.booster.predict(inputs.X, raw_score=True, num_threads=self.spec.num_threads)
            out = np.exp(np.clip(np.asarray(raw) + inputs.log_base, -20, 20))
        return np.clip(np.nan_to_num(np.asarray(out, np.float64), nan=0.0), 0.0, None)

    def interval(self, yhat: np.ndarray, horizon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.interval_quantiles:
            return np.full(len(yhat), np.nan), np.full(len(yhat), np.nan)
        default = self.interval_quantiles[max(self.interval_quantiles)]
        low = np.array([self.interval_quantiles.get(int(h), default)[0] for h in horizon])
        high = np.array([self.interval_quantiles.get(int(h), default)[1] for h in horizon])
        scale = np.sqrt(yhat + 1.0)
        return np.clip(yhat + low * scale, 0, None), yhat + high * scale

    def predict_raw(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Forecasts (yhat, yhat_lower, yhat_upper) from raw inputs."""
        inputs = from_raw(raw, self.vocab)
        yhat = self.predict_inputs(inputs)
        lower, upper = self.interval(yhat, inputs.X["horizon"].to_numpy())
        return pd.DataFrame({"yhat": yhat, "yhat_lower": lower, "yhat_upper": upper})

    def calibrate(self, yhat: np.ndarray, actual: np.ndarray, horizon: np.ndarray) -> None:
        """Set the interval from out-of-sample forecasts (the backtest's)."""
        ok = np.isfinite(actual)
        r = (actual[ok] - yhat[ok]) / np.sqrt(yhat[ok] + 1.0)
        alpha = (1 - self.spec.interval) / 2
        self.interval_quantiles = {}
        for h in np.unique(horizon[ok]):
            rh = r[horizon[ok] == h]
            if len(rh) >= 20:
                self.interval_quantiles[int(h)] = (
                    float(np.quantile(rh, alpha)),
                    float(np.quantile(rh, 1 - alpha)),
                )


def lgb_params(spec: ModelSpec) -> dict[str, object]:
    return {
        "objective": "poisson",
        "learning_rate": spec.learning_rate,
        "num_leaves": spec.num_leaves,
        "min_data_in_leaf": spec.min_data_in_leaf,
        "feature_fraction": spec.feature_fraction,
        "lambda_l2": spec.lambda_l2,
        "seed": spec.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": spec.num_threads,
        "verbosity": -1,
    }


def lgb_dataset(
    spec: ModelSpec,
    X: np.ndarray | pd.DataFrame,
    y: np.ndarray,
    offset: np.ndarray,
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    """A LightGBM Dataset of float32 FEATURES (bins from `reference` if given); the raw
    matrix is not kept once it is binned."""
    values = X.to_numpy(np.float32) if isinstance(X, pd.DataFrame) else X
    return lgb.Dataset(
        values,
        label=np.asarray(y, np.float32),
        init_score=np.asarray(offset, np.float64),
        categorical_feature=list(CATEGORICAL),
        feature_name=list(FEATURES),
        reference=reference,
        params=lgb_params(spec),
        free_raw_data=True,
    )


def fit_lightgbm(
    spec: ModelSpec,
    vocab: Vocabulary,
    data: lgb.Dataset,
    on_round: Callable[[int, int], None] | None = None,
) -> Forecaster:
    """LightGBM on `data`; `on_round(done, total)` after each boosting round (progress)."""
    callbacks = []
    if on_round is not None:
        callbacks.append(lambda env: on_round(env.iteration + 1, env.end_iteration))
    booster = lgb.train(
        lgb_params(spec), data, num_boost_round=spec.num_boost_round, callbacks=callbacks
    )
    model = Forecaster(spec=spec, vocab=vocab, booster_text=booster.model_to_string())
    model._booster = booster
    return model


class _Rows(Protocol):
    X: np.ndarray
    log_base: np.ndarray
    actual: np.ndarray


def fit_linear(
    spec: ModelSpec,
    vocab: Vocabulary,
    rows: _Rows,
    masks: list[np.ndarray],
    chunk: int = 500_000,
) -> list[Forecaster]:
    """One ridge fit (the linear model on log((y + 1) / (base + 1))) per mask of `rows`, from
    the normal equations accumulated chunk by chunk: the same solution as scikit-learn's
    `Ridge` (intercept not penalised), without a copy of the design matrix."""
    names = list(FEATURES)
    width = 7 + len(_LINEAR_FEATURES) + 1
    n = np.zeros(len(masks))
    sum_d = np.zeros((len(masks), width))
    sum_z = np.zeros(len(masks))
    dtd = np.zeros((len(masks), width, width))
    dtz = np.zeros((len(masks), width))
    for a in range(0, len(rows.actual), chunk):
        part = slice(a, a + chunk)
        design = _linear_design(pd.DataFrame(rows.X[part], columns=names))
        y = rows.actual[part].astype(np.float64)
        z = np.log((y + 1.0) / (np.exp(rows.log_base[part]) + 1.0))
        for k, mask in enumerate(masks):
            m = mask[part]
            d, zz = design[m], z[m]
            n[k] += len(zz)
            sum_d[k] += d.sum(axis=0)
            sum_z[k] += zz.sum()
            dtd[k] += d.T @ d
            dtz[k] += d.T @ zz
    out = []
    for k in range(len(masks)):
        if n[k] == 0:
            raise ValueError("no training rows with a known actual")
        mean_d, mean_z = sum_d[k] / n[k], sum_z[k] / n[k]
        gram = dtd[k] - n[k] * np.outer(mean_d, mean_d) + spec.ridge_alpha * np.eye(width)
        coef = np.linalg.solve(gram, dtz[k] - n[k] * mean_d * mean_z)
        model = Forecaster(spec=spec, vocab=vocab)
        model.linear_coef = coef
        model.linear_intercept = float(mean_z - mean_d @ coef)
        out.append(model)
    return out


@dataclass
class _Frame:
    X: np.ndarray
    log_base: np.ndarray
    actual: np.ndarray


def fit(spec: ModelSpec, vocab: Vocabulary, inputs: Inputs, actual: np.ndarray) -> Forecaster:
    """Fit one model on the rows with a known actual."""
    ok = np.isfinite(actual)
    X = inputs.X[ok].to_numpy(np.float32)
    y, offset = actual[ok], inputs.log_base[ok]
    if spec.kind == "lightgbm":
        return fit_lightgbm(spec, vocab, lgb_dataset(spec, X, y, offset))
    if spec.kind == "linear":
        return fit_linear(spec, vocab, _Frame(X, offset, y), [np.ones(len(y), bool)])[0]
    return Forecaster(spec=spec, vocab=vocab)
