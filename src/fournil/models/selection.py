"""The champion is chosen, not assumed: per demand class, the candidate best on the backtest.

Every candidate (`estimators.CANDIDATES`: zero, the last value, seasonal naive, a moving
average, Croston, TSB, the linear model, LightGBM) forecasts the same backtest rows. Rows
are grouped by their series' demand class *at the origin* (Syntetos-Boylan over the window
the forecast reads: smooth, erratic, intermittent, lumpy, no sales), which the served model
can compute from its raw inputs alone, so routing needs no lookup table and a series moves
class as its demand does. Why classes and not segments: the real-data failures were about
the kind of demand (a model losing to zero on intermittent series, to a moving average on a
dense one), and a class pools every series of that kind, so each choice rests on many rows.

Candidates are judged on WAPE + |bias| (`scores.wape_bias`) over every fold pooled: WAPE
alone is smallest for the median forecast, zero on intermittent series, so a candidate that
never forecasts a sale would win; the bias term makes running short cost what it costs a
shop. In each class with at least `MIN_ROWS` rows, the candidate with the best score wins (a
tie goes to the simpler one); smaller classes take the candidate best over all rows. If one
candidate alone scores better over all rows than the routed combination (biases of classes
can cancel), it answers every row: so the champion's score is never worse than any single
candidate's, its simplest ones included. The per-fold scores show how stable each choice is
(`selection` table: the spread, and in how many folds the winner was best).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fournil.data_report import CLASSES
from fournil.models.estimators import CANDIDATES

MIN_ROWS = 200  #: backtest rows a class needs for a choice of its own
#: the candidates that need no fitting, compared with the champion by the gate
SIMPLEST = ("zero", "last_value", "seasonal_naive", "moving_average")


def _best(errors: dict[str, float]) -> str:
    """The candidate with the smallest error; ties to the simpler (CANDIDATES' order)."""
    best = None
    for kind in CANDIDATES:
        if kind in errors and (best is None or errors[kind] < errors[best]):
            best = kind
    assert best is not None
    return best


def select_routes(frame: pd.DataFrame) -> tuple[dict[int, str], pd.DataFrame]:
    """Routes (demand class index -> candidate; -1: the default for classes without enough
    rows) chosen on backtest predictions with every candidate's column, and the table of
    the choice: per class and candidate, the score, WAPE and bias pooled, and per fold.

    Everything is decided on sums per (class, fold): one pass over each candidate's column,
    so a chain-sized backtest costs one column of temporary memory at a time."""
    kinds = [k for k in CANDIDATES if k in frame]
    actual = frame["actual"].to_numpy(np.float64)
    n_classes = len(CLASSES)
    classes = frame["demand_class"].to_numpy(np.int64).clip(0, n_classes - 1)
    folds = frame["fold"].to_numpy(np.int64)
    n_folds = int(folds.max()) + 1 if len(folds) else 0
    key = classes * max(n_folds, 1) + folds
    size = n_classes * max(n_folds, 1)
    total = np.bincount(key, weights=actual, minlength=size).reshape(n_classes, -1)
    rows_in = np.bincount(classes, minlength=n_classes)
    absolute, signed = {}, {}
    for k in kinds:
        e = frame[k].to_numpy(np.float64) - actual
        absolute[k] = np.bincount(key, weights=np.abs(e), minlength=size).reshape(n_classes, -1)
        signed[k] = np.bincount(key, weights=e, minlength=size).reshape(n_classes, -1)
        del e

    def score(k: str, which: np.ndarray, fold: int | None = None) -> tuple[float, float, float]:
        """(WAPE + |bias|, WAPE, bias) of candidate `k` on the classes `which` (bool per
        class), over every fold or one."""
        cols = slice(None) if fold is None else slice(fold, fold + 1)
        scale = max(float(total[which, cols].sum()), 1e-9)
        w = float(absolute[k][which, cols].sum()) / scale
        b = float(signed[k][which, cols].sum()) / scale
        return w + abs(b), w, b

    records: list[dict[str, object]] = []

    def choose(which: np.ndarray, label: str) -> str:
        pooled = {k: score(k, which) for k in kinds}
        winner = _best({k: v[0] for k, v in pooled.items()})
        per_fold = [{k: score(k, which, f)[0] for k in kinds} for f in range(n_folds)]
        wins = sum(1 for fold in per_fold if _best(fold) == winner)
        for k in kinds:
            fold_scores = [fold[k] for fold in per_fold]
            records.append(
                {
                    "demand_class": label,
                    "candidate": k,
                    "chosen": k == winner,
                    "rows": int(rows_in[which].sum()),
                    "score": pooled[k][0],
                    "wape": pooled[k][1],
                    "bias": pooled[k][2],
                    "score_fold_min": min(fold_scores, default=np.nan),
                    "score_fold_max": max(fold_scores, default=np.nan),
                    "folds_won_by_chosen": wins,
                    **{f"score_fold{f}": v for f, v in enumerate(fold_scores)},
                }
            )
        return winner

    every = np.ones(n_classes, bool)
    routes = {-1: choose(every, "all")}
    for index, name in enumerate(CLASSES):
        if rows_in[index] >= MIN_ROWS:
            routes[index] = choose(np.arange(n_classes) == index, name)
    # one candidate alone may beat the combination over all rows (class biases can cancel)
    answering = [routes.get(c, routes[-1]) for c in range(n_classes)]
    routed_abs = sum(float(absolute[k][c].sum()) for c, k in enumerate(answering))
    routed_err = sum(float(signed[k][c].sum()) for c, k in enumerate(answering))
    routed = (routed_abs + abs(routed_err)) / max(float(total.sum()), 1e-9)
    if score(routes[-1], every)[0] < routed - 1e-12:
        routes = {-1: routes[-1]}
    return routes, pd.DataFrame(records)


def named_routes(routes: dict[int, str]) -> dict[str, str]:
    """Routes by class name ("default": classes without a route of their own)."""
    return {CLASSES[k] if k >= 0 else "default": v for k, v in routes.items()}


def route_predictions(frame: pd.DataFrame, routes: dict[int, str]) -> np.ndarray:
    """The routed champion's forecast of each backtest row, from the candidates' columns."""
    out = frame[routes[-1]].to_numpy(np.float64).copy()
    classes = frame["demand_class"].to_numpy(np.int64)
    for index, kind in routes.items():
        if index >= 0:
            rows = classes == index
            out[rows] = frame[kind].to_numpy(np.float64)[rows]
    return out


def describe(routes: dict[int, str], selection: pd.DataFrame) -> list[str]:
    """Which candidate answers what, and per class: the winner, by how much over the
    runner-up and over the best of the simplest candidates, how stable across folds."""
    if len(routes) == 1:
        lines = [f"{routes[-1]} answers every row (best over all rows)"]
    else:
        named = ", ".join(f"{CLASSES[c]}: {k}" for c, k in sorted(routes.items()) if c >= 0)
        lines = [f"by demand class at the origin: {named}; other classes: {routes[-1]}"]
    every = int(selection["rows"].max()) if len(selection) else 0
    for label, part in selection.groupby("demand_class", sort=False):
        if label != "all" and int(part["rows"].iloc[0]) == every:
            continue  # the one class there is: the same choice as over all rows
        chosen = part[part["chosen"]].iloc[0]
        others = part[~part["chosen"]].sort_values("score")
        simplest = part[part["candidate"].isin(SIMPLEST)]["score"].min()
        n_folds = sum(1 for c in part.columns if c.startswith("score_fold") and c[10:].isdigit())
        text = (
            f"{label} ({int(chosen['rows']):,} rows): {chosen['candidate']} WAPE+|bias| "
            f"{chosen['score']:.3f} (WAPE {chosen['wape']:.3f}, bias {chosen['bias']:+.1%}; "
            f"folds {chosen['score_fold_min']:.3f}-{chosen['score_fold_max']:.3f}, best in "
            f"{int(chosen['folds_won_by_chosen'])} of {n_folds})"
        )
        if len(others):
            text += f", next {others.iloc[0]['candidate']} {others.iloc[0]['score']:.3f}"
        lines.append(text + f", simplest {simplest:.3f}")
    return lines


def candidate_table(predictions: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Every method's WAPE and bias (sum of forecast minus actual over sum of actual) per
    horizon and over all horizons: the decision table (one column at a time in memory)."""
    actual = predictions["actual"].to_numpy(np.float64)
    horizons, index = np.unique(predictions["horizon"].to_numpy(np.int64), return_inverse=True)
    total = np.bincount(index, weights=actual, minlength=len(horizons))
    counts = np.bincount(index, minlength=len(horizons))
    records = []
    for m in methods:
        e = predictions[m].to_numpy(np.float64) - actual
        absolute = np.bincount(index, weights=np.abs(e), minlength=len(horizons))
        signed = np.bincount(index, weights=e, minlength=len(horizons))
        groups = [(int(h), i) for i, h in enumerate(horizons)] + [("all", None)]
        for label, i in groups:
            pick = slice(None) if i is None else slice(i, i + 1)
            scale = max(float(total[pick].sum()), 1e-9)
            records.append(
                {
                    "candidate": m,
                    "horizon": label,
                    "wape": float(absolute[pick].sum()) / scale,
                    "bias": float(signed[pick].sum()) / scale,
                    "rows": int(counts[pick].sum()),
                }
            )
    return pd.DataFrame(records)
