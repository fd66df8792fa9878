"""`fournil model train`: features, fits, backtest, MLflow logging and registration.

For each segment (one for a global model), in parallel: a rolling-origin backtest of the model
and its baselines, intervals calibrated on the backtest's residuals, then the final fit on all
data. Then, one MLflow run per segment: params, metrics, the git commit, the data snapshot, the
seed, plots, the pyfunc model with its verification samples, registered as a new version
(no alias: promotion is `fournil model promote`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sqlalchemy import Engine

import fournil
from fournil import registry
from fournil.cluster import fit_runner
from fournil.data_report import CLASSES, DataReport, data_report
from fournil.features import PanelRequests, Vocabulary, from_panel, raw_frame
from fournil.models import plots
from fournil.models.backtest import (
    Backtest,
    BacktestConfig,
    FitRunner,
    TrainingRows,
    cutoffs,
    fit_backtest,
    pair_fraction,
    run_backtest,
)
from fournil.models.estimators import CANDIDATES, Forecaster, ModelSpec
from fournil.models.pyfunc import ForecasterModel, write_artifacts
from fournil.models.selection import SIMPLEST, candidate_table, describe, named_routes
from fournil.panel import Panel, load_panel
from fournil.scores import wape
from fournil.settings import Settings

log = logging.getLogger("fournil.train")
Progress = Callable[[str], None]


@dataclass
class SegmentFit:
    segment: str | None
    panel: Panel
    vocab: Vocabulary
    backtest: Backtest
    model: Forecaster
    fallback: Forecaster
    seconds: float
    global_wape: float | None = None  # a global model's WAPE on this segment's rows
    data_report: DataReport | None = None  # of the whole panel the run read


@dataclass
class TrainedVersion:
    name: str
    version: str
    run_id: str
    segment: str | None
    wape: float
    wape_naive: float
    wape_linear: float
    wape_noise_floor: float | None
    data_report: DataReport | None = None
    wape_simplest: float | None = None  # the best of the simplest candidates
    score: float | None = None  # WAPE + |bias|, what the champion is chosen on
    score_simplest: float | None = None
    selection: list[str] | None = None  # which candidate won where, by how much


def requirements() -> list[str]:
    """Explicit pins (MLflow would otherwise infer them, slowly)."""
    import holidays
    import pyarrow

    return [
        f"mlflow=={mlflow.__version__}",
        f"lightgbm=={lgb.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pyarrow=={pyarrow.__version__}",
        f"holidays=={holidays.__version__}",
    ]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(fournil.__file__).parent,
            timeout=10,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("GIT_COMMIT", "unknown")


def segments(panel: Panel, granularity: str) -> list[tuple[str | None, np.ndarray]]:
    if granularity == "global":
        return [(None, np.arange(len(panel.series)))]
    groups = panel.series.groupby(granularity, sort=True).indices
    return [(str(value), np.asarray(rows)) for value, rows in groups.items()]


def default_spec(settings: Settings, **overrides: object) -> ModelSpec:
    """The model recipe the settings ask for (horizon, training-row sampling), with
    `overrides` (None values ignored) on top."""
    spec = ModelSpec(
        horizon=settings.horizon,
        origin_stride=settings.train.origin_stride,
        train_days=settings.train.history_days,
    )
    return spec.replace(**{k: v for k, v in overrides.items() if v is not None})


def fit_segment(
    panel: Panel,
    spec: ModelSpec,
    settings: Settings,
    segment: str | None,
    config: BacktestConfig,
    truth: pd.DataFrame | None,
    runner: FitRunner | None = None,
) -> SegmentFit:
    start = time.perf_counter()
    vocab = Vocabulary.fit(panel, settings.country)
    final = panel.n_days - 1
    days = cutoffs(panel, spec, config)
    spec = spec.replace(
        pair_fraction=pair_fraction(panel, spec, [*days, final], settings.train.max_rows)
    )
    specs = [spec, spec.replace(kind="linear")]
    name = f"segment {segment}" if segment is not None else "global model"
    if runner is None:
        # one matrix of training rows for every backtest fold and the final fit
        rows = TrainingRows.build(panel, spec, vocab, [*days, final])
        log.info(
            "%s: %s training rows (%d series, one origin every %d days over %d days, "
            "%.1f%% of the pairs) built in %.1f s, %.0f MB",
            name,
            f"{len(rows):,}",
            len(panel.series),
            spec.origin_stride,
            spec.train_days,
            100 * spec.pair_fraction,
            time.perf_counter() - start,
            rows.X.nbytes / 1e6,
        )
        fits = fit_backtest(panel, specs, vocab, [*days, final], rows=rows)
        del rows
    else:
        fits = fit_backtest(panel, specs, vocab, [*days, final], runner=runner)
    backtest = run_backtest(panel, spec, vocab, config, truth, at=days, fits=fits[:-1])
    model, fallback = fits[-1]
    if backtest.routes is not None:
        model = champion_of(model, fallback, backtest.routes)
    p = backtest.predictions
    model.calibrate(p["model"].to_numpy(), p["actual"].to_numpy(), p["horizon"].to_numpy())
    fallback.calibrate(p["linear"].to_numpy(), p["actual"].to_numpy(), p["horizon"].to_numpy())
    interval = model.interval(p["model"].to_numpy(), p["horizon"].to_numpy())
    p["lower"], p["upper"] = interval
    return SegmentFit(segment, panel, vocab, backtest, model, fallback, time.perf_counter() - start)


def champion_of(booster: Forecaster, linear: Forecaster, routes: dict[int, str]) -> Forecaster:
    """The routed champion: the final fits of LightGBM and the linear model, and the routes."""
    model = Forecaster(
        spec=booster.spec,
        vocab=booster.vocab,
        booster_text=booster.booster_text,
        linear_coef=linear.linear_coef,
        linear_intercept=linear.linear_intercept,
        routes=dict(routes),
    )
    model._booster = booster._booster
    return model


def verification_samples(panel: Panel, horizon: int, n_series: int = 12) -> pd.DataFrame:
    """Raw inputs at the last origin for a spread of series and horizons, plus rows with nulls."""
    rows = np.unique(np.linspace(0, len(panel.series) - 1, min(n_series, len(panel.series))))
    requests = PanelRequests(
        series_rows=rows.astype(np.int64),
        origins=np.full(len(rows), panel.n_days - 1),
        horizons=np.array(sorted({1, 2, 7, horizon})),
    )
    raw = raw_frame(panel, requests)
    nulls = raw.head(4).copy()
    nulls.loc[nulls.index[0], [c for c in raw.columns if c.startswith("units_")]] = np.nan
    nulls.loc[nulls.index[1], ["price", "promo", "siblings_on_promo"]] = np.nan
    nulls.loc[nulls.index[2], [c for c in raw.columns if c.startswith("price_")]] = np.nan
    nulls.loc[nulls.index[3], ["city", "family"]] = None
    return pd.concat([raw, nulls], ignore_index=True)


def _log_segment(
    client: mlflow.MlflowClient,
    fitted: SegmentFit,
    spec: ModelSpec,
    settings: Settings,
    granularity: str,
    experiment_id: str,
    parent_run_id: str | None,
    register_fallback: bool,
) -> TrainedVersion:
    name = registry.model_name(settings, granularity, fitted.segment)
    bt = fitted.backtest
    overall = bt.scores().iloc[0]
    panel = fitted.panel
    tags = {
        "fournil.version": fournil.__version__,
        "git_commit": git_commit(),
        "granularity": granularity,
        "segment": fitted.segment or "all",
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    # named by what it is: which model, on which data
    run_name = f"{granularity}" + (f" {fitted.segment}" if fitted.segment else "")
    run_name += f", data to {panel.end}"
    # the run spans the fit too (it is opened once the fit is done: its duration would be the
    # logging's alone, seconds against train_seconds' minutes)
    started = client.create_run(
        experiment_id,
        start_time=int((time.time() - fitted.seconds) * 1000),
        tags={**tags, "mlflow.runName": run_name},
        run_name=run_name,
    )
    with mlflow.start_run(run_id=started.info.run_id) as run:
        mlflow.log_params(
            {
                **{f"model.{k}": v for k, v in spec.params().items()},
                "granularity": granularity,
                "segment": fitted.segment or "all",
                "data.rows": int(np.isfinite(panel.units).sum()),
                "data.series": len(panel.series),
                "data.start": str(panel.start),
                "data.end": str(panel.end),
                "data.hash": panel.snapshot_hash(),
                "backtest.cutoffs": ",".join(str(d) for d in bt.cutoffs),
            }
        )
        metrics = {
            "backtest_wape": float(overall["wape_model"]),
            "backtest_rmse": float(overall["rmse_model"]),
            "backtest_wape_seasonal_naive": float(overall["wape_seasonal_naive"]),
            "backtest_wape_linear": float(overall["wape_linear"]),
            "backtest_interval_coverage": bt.coverage(),
            "train_seconds": fitted.seconds,
        }
        if "wape_expected" in overall:
            metrics["backtest_wape_noise_floor"] = float(overall["wape_expected"])
            metrics["wape_vs_noise_floor"] = float(overall["wape_model"] / overall["wape_expected"])
        metrics["wape_vs_seasonal_naive"] = float(
            overall["wape_model"] / overall["wape_seasonal_naive"]
        )
        metrics["backtest_bias"] = float(overall["bias_model"])
        metrics["backtest_score"] = bt.score()
        for kind in CANDIDATES:
            if f"wape_{kind}" in overall:
                metrics[f"backtest_wape_{kind}"] = float(overall[f"wape_{kind}"])
                metrics[f"backtest_bias_{kind}"] = float(overall[f"bias_{kind}"])
                metrics[f"backtest_score_{kind}"] = bt.score(kind)
        simplest = [k for k in SIMPLEST if f"backtest_score_{k}" in metrics]
        if simplest:
            metrics["backtest_score_simplest"] = min(
                metrics[f"backtest_score_{k}"] for k in simplest
            )
            metrics["backtest_wape_simplest"] = min(metrics[f"backtest_wape_{k}"] for k in simplest)
        by_horizon = bt.scores("horizon")["wape_model"]
        for h, value in zip(by_horizon.index.tolist(), by_horizon.tolist(), strict=True):
            metrics[f"backtest_wape_h{int(h):02d}"] = float(value)
        metrics["train_rmse"] = _train_rmse(fitted)
        if fitted.global_wape is not None:
            metrics["backtest_wape_global_model"] = fitted.global_wape
        if fitted.data_report is not None:
            mlflow.log_metrics(fitted.data_report.metrics())
            mlflow.log_dict(fitted.data_report.to_dict(), "data_report.json")
        mlflow.log_metrics(metrics)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            methods = [m for m in ("model", *CANDIDATES) if m in bt.predictions]
            decisions = candidate_table(bt.predictions, methods)
            decisions["candidate"] = decisions["candidate"].replace({"model": "champion"})
            mlflow.log_table(decisions, "backtest/candidates.json")
            if bt.selection is not None:
                mlflow.log_table(bt.selection, "backtest/selection.json")
                mlflow.log_dict(
                    named_routes(bt.routes or {}),
                    "backtest/routes.json",
                )
            if len(bt.predictions) <= PREDICTIONS_ARTIFACT_ROWS:
                _predictions_frame(bt).to_parquet(folder / "predictions.parquet")
                mlflow.log_artifact(str(folder / "predictions.parquet"), "backtest")
            for file, table in (
                ("candidates_by_horizon.csv", decisions),
                ("backtest_by_horizon.csv", bt.scores("horizon")),
                ("backtest_by_family.csv", bt.scores("family")),
                ("backtest_by_store.csv", bt.scores("store_id")),
            ):
                table.to_csv(folder / file)
                mlflow.log_artifact(str(folder / file), "backtest")
            for file, figure in (
                ("error_by_horizon.png", plots.error_by_horizon(bt)),
                ("forecast_vs_actual.png", plots.forecast_vs_actual(bt)),
                ("feature_importance.png", plots.feature_importance(fitted.model)),
            ):
                mlflow.log_figure(figure, f"plots/{file}")
                plots.plt.close(figure)
            samples = verification_samples(panel, spec.horizon)
            artifacts = write_artifacts(fitted.model, samples, folder / "model")
            example = samples.head(3)
            signature = infer_signature(example, fitted.model.predict_raw(example))
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=ForecasterModel(),
                artifacts=artifacts,
                pip_requirements=requirements(),
                signature=signature,
                registered_model_name=name,
            )
            if register_fallback:
                fb_artifacts = write_artifacts(fitted.fallback, samples, folder / "fallback")
                fb = mlflow.pyfunc.log_model(
                    name="fallback",
                    python_model=ForecasterModel(),
                    artifacts=fb_artifacts,
                    pip_requirements=requirements(),
                    signature=signature,
                    registered_model_name=registry.fallback_name(settings),
                )
                client.set_model_version_tag(
                    registry.fallback_name(settings),
                    str(fb.registered_model_version),
                    "forecaster_version",
                    str(info.registered_model_version),
                )
    version = str(info.registered_model_version)
    client.set_registered_model_tag(name, "granularity", granularity)
    client.set_registered_model_tag(name, "segment", fitted.segment or "all")
    for key in (
        "backtest_wape",
        "backtest_wape_seasonal_naive",
        "backtest_wape_linear",
        "backtest_wape_simplest",
        "backtest_score",
        "backtest_score_simplest",
    ):
        if key in metrics:
            client.set_model_version_tag(name, version, key, repr(metrics[key]))
    if fitted.model.routes:
        client.set_model_version_tag(
            name,
            version,
            "routes",
            json.dumps(named_routes(fitted.model.routes)),
        )
    client.set_model_version_tag(name, version, "data_end", str(panel.end))
    client.set_model_version_tag(name, version, "data_hash", panel.snapshot_hash())
    return TrainedVersion(
        name=name,
        version=version,
        run_id=run.info.run_id,
        segment=fitted.segment,
        wape=metrics["backtest_wape"],
        wape_naive=metrics["backtest_wape_seasonal_naive"],
        wape_linear=metrics["backtest_wape_linear"],
        wape_noise_floor=metrics.get("backtest_wape_noise_floor"),
        data_report=fitted.data_report,
        wape_simplest=metrics.get("backtest_wape_simplest"),
        score=metrics["backtest_score"],
        score_simplest=metrics.get("backtest_score_simplest"),
        selection=describe(bt.routes, bt.selection)
        if bt.routes and bt.selection is not None
        else None,
    )


#: backtests up to this many rows log every forecast (`backtest/predictions.parquet`)
PREDICTIONS_ARTIFACT_ROWS = 2_000_000


def _predictions_frame(bt: Backtest) -> pd.DataFrame:
    """Every backtest forecast, by store, product, origin and horizon, with each candidate's."""
    p = bt.predictions
    out = pd.DataFrame(
        {
            "fold": p["fold"].to_numpy(),
            "store_id": p["store_id"].to_numpy(),
            "product_id": p["product_id"].to_numpy(),
            "origin_date": (p["target_date"] - pd.to_timedelta(p["horizon"], unit="D")).dt.date,
            "horizon": p["horizon"].to_numpy(),
            "target_date": p["target_date"].dt.date,
            "actual": p["actual"].to_numpy(),
            "champion": p["model"].to_numpy(),
        }
    )
    for kind in CANDIDATES:
        if kind in p:
            out[kind] = p[kind].to_numpy()
    if "demand_class" in p:
        out["demand_class"] = np.asarray(CLASSES)[
            p["demand_class"].to_numpy(np.int64).clip(0, len(CLASSES) - 1)
        ]
    if "expected" in p:
        out["expected"] = p["expected"].to_numpy()
    return out


def _train_rmse(fitted: SegmentFit, max_rows: int = 50_000) -> float:
    """In-sample RMSE of the final model on (a sample of) its last training origins."""
    panel = fitted.panel
    origins = np.arange(
        max(0, panel.n_days - 1 - 28 - fitted.model.spec.horizon),
        panel.n_days - 1 - fitted.model.spec.horizon,
        7,
    )
    some = np.unique(np.linspace(0, len(panel.series) - 1, min(len(panel.series), 500)).astype(int))
    req = PanelRequests.grid(some, origins, fitted.model.spec.horizon)
    inputs, actual, _ = from_panel(panel, fitted.vocab, req)
    yhat = fitted.model.predict_inputs(inputs)
    ok = np.isfinite(actual)
    return float(np.sqrt(np.mean((yhat[ok][:max_rows] - actual[ok][:max_rows]) ** 2)))


def train(
    engine: Engine,
    settings: Settings,
    spec: ModelSpec | None = None,
    granularity: str | None = None,
    truth_path: Path | None = None,
    config: BacktestConfig | None = None,
    end: dt.date | None = None,
    progress: Progress | None = None,
) -> list[TrainedVersion]:
    """Train, backtest, log and register one model per segment. Returns the new versions."""
    granularity = granularity or settings.granularity
    spec = spec or default_spec(settings)
    config = config or BacktestConfig()
    say = progress or (log.info)
    # MLflow's store setup (migrations on a fresh local store) overlaps with the fits
    with ThreadPoolExecutor(max_workers=1) as background:
        tracking = background.submit(_tracking, settings)
        fits = _fit_all(engine, settings, spec, granularity, truth_path, config, end, say)
        client, experiment = tracking.result()
    say("logging to MLflow and registering")
    for noisy in ("mlflow.pyfunc", "mlflow.utils.environment", "mlflow.models.model"):
        logging.getLogger(noisy).setLevel(logging.ERROR)  # pickling and pip-version notices
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
    seg_spec = fits[0].model.spec
    parent_id = None
    if granularity != "global":
        with mlflow.start_run(
            experiment_id=experiment,
            run_name=f"{granularity}: {len(fits)} segments, data to {fits[0].panel.end}",
            tags={"granularity": granularity},
        ) as parent:
            parent_id = parent.info.run_id
            mlflow.log_params({"granularity": granularity, "segments": len(fits)})
            comparison = pd.DataFrame(
                {
                    "segment": [f.segment for f in fits],
                    "wape_segment_model": [f.backtest.wape() for f in fits],
                    "wape_global_model": [f.global_wape for f in fits],
                }
            )
            mlflow.log_table(comparison, "segment_vs_global.json")
            segment_rows = sum(len(f.backtest.predictions) for f in fits)
            weighted = sum(f.backtest.wape() * len(f.backtest.predictions) for f in fits)
            mlflow.log_metric("backtest_wape_segments_mean", weighted / max(segment_rows, 1))
    return [
        _log_segment(
            client,
            fitted,
            seg_spec,
            settings,
            granularity,
            experiment,
            parent_id,
            register_fallback=granularity == "global",
        )
        for fitted in fits
    ]


def _tracking(settings: Settings) -> tuple[mlflow.MlflowClient, str]:
    client = registry.configure(settings)
    return client, registry.experiment_id(client, settings)


def _fit_all(
    engine: Engine,
    settings: Settings,
    spec: ModelSpec,
    granularity: str,
    truth_path: Path | None,
    config: BacktestConfig,
    end: dt.date | None,
    say: Progress,
) -> list[SegmentFit]:
    say("reading the warehouse")
    panel = load_panel(engine, end=end, absent_days=settings.absent_days)
    report = data_report(panel, settings.absent_days)
    for line in report.lines():
        log.info("data: %s", line)
    for warning in report.warnings():
        log.warning(warning)
    if report.leaks:
        spec = spec.replace(excluded_plan=report.leaks)
    truth = None
    if truth_path:  # only the days a backtest scores (the whole file is large at a chain's size)
        first = panel.start + dt.timedelta(days=cutoffs(panel, spec, config)[0] + 1)
        truth = pd.read_parquet(truth_path, filters=[("date", ">=", first)])
    parts = segments(panel, granularity)
    workers = max(1, min(len(parts), os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    seg_spec = spec.replace(num_threads=threads) if workers > 1 else spec
    say(
        f"fitting {len(parts)} segment(s) x {config.folds} backtest folds + final fit "
        f"({len(panel.series)} series, {panel.start}..{panel.end})"
    )

    with fit_runner(settings) as runner:

        def fit_part(part: tuple[str | None, np.ndarray]) -> SegmentFit:
            segment, rows = part
            data = panel.subset(rows) if segment is not None else panel
            return fit_segment(data, seg_spec, settings, segment, config, truth, runner)

        if workers == 1:
            fits = [fit_part(part) for part in parts]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:  # LightGBM releases the GIL
                fits = list(pool.map(fit_part, parts))
    if granularity != "global":
        say("backtesting one global model on the same cut-offs, for comparison")
        compare_with_global(panel, spec, settings, config, fits)
    for fitted in fits:
        fitted.data_report = report
    return fits


def compare_with_global(
    panel: Panel,
    spec: ModelSpec,
    settings: Settings,
    config: BacktestConfig,
    fits: list[SegmentFit],
) -> None:
    """Score a global model on each segment's backtest rows (the evidence for granularity)."""
    vocab = Vocabulary.fit(panel, settings.country)
    days = cutoffs(panel, spec, config)
    spec = spec.replace(pair_fraction=pair_fraction(panel, spec, days, settings.train.max_rows))
    with fit_runner(settings) as runner:
        overall = run_backtest(
            panel, spec, vocab, config, with_baselines=False, at=days, runner=runner
        ).predictions
    keys = ["fold", "store_id", "product_id", "horizon", "target_day"]
    for fitted in fits:
        mine = fitted.backtest.predictions[[*keys, "actual"]]
        joined = mine.merge(overall[[*keys, "model"]], on=keys, how="inner")
        fitted.global_wape = wape(joined["actual"], joined["model"])
