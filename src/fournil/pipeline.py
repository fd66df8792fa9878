"""The pipeline, once: ingest, train-and-gate, forecast and monitor as plain functions.

Every input is explicit (the engine, the settings, the folder, the day...) and every step
returns a small result that says what happened (`IngestResult`, `TrainResult`,
`ForecastResult`, `MonitorResult`), with the rows, warnings and metrics a run records. The
callers add only their own concerns:

- the Prefect flows (`fournil.flows.*`) run the steps below as tasks, with retries, stages,
  run recording and artifacts (`fournil.orchestration`);
- `fournil demo` runs the composed steps in this process and prints what they did;
- the CLI commands (`fournil etl run`, `fournil forecast`) run one step.

Each phase comes as its parts (what a flow makes tasks of) and as one composed function
(`ingest`, `train_and_gate`, `forecast`, `monitor`) that runs the parts in order.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from fournil.etl.contract import Kind
    from fournil.etl.dialect import DialectOptions
    from fournil.etl.runner import FileResult, ProgressCallback
    from fournil.forecast import ForecastResult
    from fournil.models.gate import Decision
    from fournil.models.training import TrainedVersion
    from fournil.settings import Settings

__all__ = [
    "IngestResult",
    "MonitorResult",
    "ReportResult",
    "TrainResult",
    "alert_on_ingest",
    "alert_on_monitor",
    "alert_on_training",
    "drift",
    "finish_training",
    "forecast",
    "gate",
    "health",
    "ingest",
    "load_drop",
    "monitor",
    "new_drops",
    "report",
    "score",
    "train_and_gate",
    "train_models",
]


# --- ingest ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestResult:
    """The files one ingest loaded (or tried to), from `source`."""

    source: Path
    files: list[FileResult]
    batch_id: str = ""

    @property
    def read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def warnings(self) -> int:
        return sum(len(f.warnings) for f in self.files)

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.status != "success"]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def error(self) -> str | None:
        """One line naming each file that failed, or None."""
        failed = self.failed
        return "; ".join(f"{f.path.name}: {f.error}" for f in failed) if failed else None

    @property
    def metrics(self) -> dict[str, float]:
        return {"files": len(self.files), "rows_rejected": self.rejected}

    def summary(self) -> dict[str, int]:
        return {"files": len(self.files), "rows": self.read, "rejected": self.rejected}

    def file_rows(self) -> list[dict[str, object]]:
        """One row per file: status and row counts (a table for people)."""
        return [
            {
                "file": f.path.name,
                "status": f.status,
                "read": f.rows_read,
                "inserted": f.rows_inserted,
                "updated": f.rows_updated,
                "unchanged": f.rows_unchanged,
                "rejected": f.rows_rejected,
                "error": f.error,
            }
            for f in self.files
        ]


def new_drops(engine: Engine, landing: Path) -> list[tuple[Path, Kind | None]]:
    """The drop files in the landing folder not loaded successfully yet (by content digest),
    masters first; none if the folder is empty (it is created if missing)."""
    from fournil.etl.readers import file_sha256
    from fournil.etl.runner import discover, loaded_digests

    landing.mkdir(parents=True, exist_ok=True)
    if not any(landing.iterdir()):
        return []
    done = loaded_digests(engine)
    return [(p, kind) for p, kind in discover(landing) if file_sha256(p) not in done]


def load_drop(
    engine: Engine,
    settings: Settings,
    path: Path,
    kind: Kind | None,
    batch_id: str,
    on_progress: ProgressCallback | None = None,
    options: DialectOptions | None = None,
) -> FileResult:
    """Validate and load one drop file in one transaction (bad rows to the quarantine); a file
    of no kind (None) is logged as a failed run saying why."""
    from fournil.etl.runner import load_file

    return load_file(engine, path, kind, batch_id, settings, on_progress, options)


def alert_on_ingest(settings: Settings, result: IngestResult) -> None:
    """Alert when more rows were rejected than `FOURNIL_ALERT_REJECT_RATE` allows."""
    from fournil import alerts

    read, rejected = result.read, result.rejected
    if read and rejected / read > settings.alert_reject_rate:
        alerts.notify(
            "ETL quarantined many rows",
            [f"{rejected} of {read} rows rejected ({rejected / read:.1%})"],
            settings=settings,
        )


def ingest(
    engine: Engine,
    settings: Settings,
    source: Path,
    *,
    only_new: bool = True,
    kind: Kind | None = None,
    alert: bool = True,
    on_progress: ProgressCallback | None = None,
    options: DialectOptions | None = None,
) -> IngestResult:
    """Load the drops under `source` (a folder, or with `only_new=False` also a single file):
    only those not loaded yet (`only_new`, what the daily ETL does), or all of them. Never
    raises for bad data: see `IngestResult.ok` and `.error`. Raises `EtlError` when there is
    nothing to load at an explicit `source` (`only_new=False`)."""
    from fournil.etl.runner import discover

    drops = new_drops(engine, source) if only_new else discover(source, kind, options)
    batch_id = str(uuid.uuid4())
    files = [load_drop(engine, settings, p, k, batch_id, on_progress, options) for p, k in drops]
    result = IngestResult(source, files, batch_id)
    if alert:
        alert_on_ingest(settings, result)
    return result


# --- train and gate -------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainResult:
    """The versions one training registered, and the gate's decision on each."""

    versions: list[TrainedVersion]
    decisions: list[Decision]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def refused(self) -> list[Decision]:
        return [d for d in self.decisions if not d.promoted]

    @property
    def warnings(self) -> int:
        return len(self.refused)

    def summary(self) -> list[str]:
        return [f"{d.name} v{d.version}: {d.action}" for d in self.decisions]

    def decision_rows(self) -> list[dict[str, object]]:
        return [
            {
                "model": d.name,
                "version": d.version,
                "decision": d.action,
                "champion": d.champion_after,
                "backtest_wape": d.metrics.get("backtest_wape"),
                "failed": "; ".join(r for r in d.reasons if r.startswith("FAILED")),
            }
            for d in self.decisions
        ]


def train_models(
    engine: Engine,
    settings: Settings,
    *,
    granularity: str | None = None,
    truth_path: Path | None = None,
    progress: Callable[[str], Any] | None = None,
) -> list[TrainedVersion]:
    """Build features, backtest, fit, log to MLflow and register one version per segment."""
    from fournil.models.training import train

    return train(
        engine, settings, granularity=granularity, truth_path=truth_path, progress=progress
    )


def gate(engine: Engine, settings: Settings, name: str, version: str) -> Decision:
    """The promotion gate for one registered version (champion if it passes)."""
    from fournil.models.gate import promote

    return promote(engine, name, version, settings)


def alert_on_training(settings: Settings, decisions: list[Decision]) -> None:
    """Alert for every version the gate refused, with the checks it failed."""
    from fournil import alerts

    refused = [d for d in decisions if not d.promoted]
    if refused:
        alerts.notify(
            "promotion gate refused a model",
            [
                f"{d.name} v{d.version}: "
                + "; ".join(r for r in d.reasons if r.startswith("FAILED"))
                for d in refused
            ],
            settings=settings,
        )


def finish_training(
    settings: Settings, versions: list[TrainedVersion], decisions: list[Decision]
) -> TrainResult:
    """The training's metrics (the first model's training and backtest RMSE from MLflow, its
    backtest WAPE, how many were promoted), and the alert for refused versions."""
    from fournil import registry

    client = registry.configure(settings)
    first = client.get_run(versions[0].run_id).data.metrics
    metrics = {
        "train_rmse": first.get("train_rmse", math.nan),
        "backtest_rmse": first.get("backtest_rmse", math.nan),
        "backtest_wape": versions[0].wape,
        "models": len(versions),
        "promoted": sum(d.promoted for d in decisions),
    }
    alert_on_training(settings, decisions)
    return TrainResult(versions, decisions, metrics)


def train_and_gate(
    engine: Engine,
    settings: Settings,
    *,
    granularity: str | None = None,
    truth_path: Path | None = None,
    progress: Callable[[str], Any] | None = None,
) -> TrainResult:
    """Train and register, then run the promotion gate on every new version."""
    versions = train_models(
        engine, settings, granularity=granularity, truth_path=truth_path, progress=progress
    )
    decisions = [gate(engine, settings, v.name, v.version) for v in versions]
    return finish_training(settings, versions, decisions)


# --- forecast -------------------------------------------------------------------------------
def forecast(
    engine: Engine,
    settings: Settings,
    *,
    date: dt.date | None = None,
    horizon: int | None = None,
) -> ForecastResult:
    """Batch forecasts from the champion(s) for every active series, from `date` (default:
    the last day with sales); idempotent per model version and forecast date. Raises
    `ForecastError` when there is nothing to forecast from."""
    from fournil.forecast import run_forecast

    return run_forecast(engine, settings, forecast_date=date, horizon=horizon)


# --- monitor --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MonitorResult:
    """Forecast accuracy, drift per feature and the pipeline's own health, for one day."""

    scores: pd.DataFrame
    drift: pd.DataFrame
    problems: list[str]

    @property
    def overall(self) -> pd.DataFrame:
        """The accuracy rows at the `overall` level (one per model version)."""
        scores = self.scores
        return scores[scores["level"] == "overall"] if not scores.empty else scores

    @property
    def drifted(self) -> list[str]:
        report = self.drift
        return report[report["drifted"]]["feature"].tolist() if not report.empty else []

    @property
    def rows(self) -> int:
        overall = self.overall
        return int(overall["n"].sum()) if not overall.empty else 0

    @property
    def warnings(self) -> int:
        return len(self.drifted) + len(self.problems)

    @property
    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        overall = self.overall
        if not overall.empty:
            wapes = overall["wape"].dropna()
            if not wapes.empty:
                out["forecast_wape"] = float(wapes.iloc[-1])
        if not self.drift.empty:
            out["max_psi"] = float(self.drift["psi"].max())
        out["drifted_features"] = len(self.drifted)
        return out

    def summary(self) -> dict[str, object]:
        return {"drifted": self.drifted, "problems": self.problems}


def score(engine: Engine, day: dt.date | None = None) -> pd.DataFrame:
    """Accuracy of the stored forecasts against the actuals, up to `day`."""
    from fournil.monitoring import score_forecasts

    return score_forecasts(engine, day)


def drift(engine: Engine, settings: Settings, day: dt.date | None = None) -> pd.DataFrame:
    """PSI of the champion's inputs and predictions, recent window against training's."""
    from fournil.monitoring import drift_report

    return drift_report(engine, settings, day)


def health(engine: Engine) -> list[str]:
    """Problems with the pipeline's own runs (failed, stuck, late)."""
    from fournil.monitoring import run_health

    return run_health(engine)


def alert_on_monitor(settings: Settings, result: MonitorResult) -> None:
    """Alert for pipeline health problems. Drift has one sender, Alertmanager's
    FournilDriftHigh on the monitor's verdict (`fournil_drift_flagged`), so it is not sent
    from here too."""
    from fournil import alerts

    if result.problems:
        alerts.notify("pipeline health", result.problems, settings=settings)


def monitor(engine: Engine, settings: Settings, day: dt.date | None = None) -> MonitorResult:
    """Accuracy, drift and health (one after the other), then the alerts."""
    result = MonitorResult(score(engine, day), drift(engine, settings, day), health(engine))
    alert_on_monitor(settings, result)
    return result


# --- report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportResult:
    """The workbook written (None: no forecasts yet) and who it was sent to."""

    workbook: Path | None
    rows: int
    stores: int
    sent_to: list[str]


def report(engine: Engine, settings: Settings, send: bool = True) -> ReportResult:
    """Write the forecast workbook of the next `FOURNIL_REPORT_DAYS` days under
    FOURNIL_HOME/reports and, with `send` and recipients in `FOURNIL_REPORT_TO`, e-mail it.
    Raises `fournil.report.ReportError` when the mail cannot be sent."""
    from fournil import export
    from fournil.report import message, recipients
    from fournil.report import send as send_mail

    data = export.upcoming(engine, days=settings.report.days)
    if data.forecast_date is None or data.frame.empty:
        return ReportResult(None, 0, 0, [])
    path = settings.home_dir / "reports" / f"fournil-forecasts-{data.forecast_date}.xlsx"
    export.write_workbook(data, path)
    to = recipients(settings.report) if send else []
    if to:
        send_mail(settings.report, message(settings.report, data, path))
    return ReportResult(path, len(data.frame), int(data.frame["store_id"].nunique()), to)
