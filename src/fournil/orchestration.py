"""What the Prefect flows share: run recording, alert hooks, artifacts, the task runner, and
the deployments as code (`fournil flows deploy`).

The flows themselves (`fournil.flows.*`) are thin: their tasks call `fournil.pipeline`, and
they add only what is here.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fournil import alerts
from fournil.db import require_current, warehouse_engine
from fournil.pipeline_runs import RunRecorder
from fournil.settings import Settings

log = logging.getLogger("fournil.flows")


def recorder(flow: str, settings: Settings) -> RunRecorder:
    """A run recorder keyed by the Prefect flow run id (a uuid outside Prefect). Fails the
    run when the warehouse schema is not current: flows never migrate (`fournil db upgrade`
    does, the compose `migrate` job runs it)."""
    from prefect.runtime import deployment, flow_run

    engine = warehouse_engine(settings)
    require_current(engine)
    run_id = str(flow_run.id) if flow_run.id else None
    return RunRecorder(engine, flow, run_id, deployment.name)


def record(
    run: RunRecorder,
    *,
    rows: int | None = None,
    warnings: int | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Put a pipeline step's figures (its result's rows, warnings, metrics) on the run."""
    if rows is not None:
        run.rows_processed = rows
    if warnings is not None:
        run.warnings = warnings
    run.metrics.update(metrics or {})


def on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect flow hook: a failed run sends a critical alert."""
    from fournil.settings import get_settings  # a hook is an entry point: it reads the settings

    message = state.message or "failed"
    alerts.notify(
        f"flow {flow.name} failed",
        [f"run {flow_run.name} ({flow_run.id})", str(message)[:500]],
        settings=get_settings(),
        severity="critical",
    )


def transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only what may pass on a second try (a database or
    network hiccup), never bad data or a missing champion."""
    import httpx
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        state.result()
    except (OperationalError, InterfaceError, ConnectionError, TimeoutError, httpx.TransportError):
        return True
    except Exception:
        return False
    return False


def table_artifact(key: str, frame: pd.DataFrame, description: str) -> None:
    from prefect.artifacts import create_table_artifact

    def cell(value: object) -> object:
        if value is None or isinstance(value, bool | int | float | str):
            return value
        return str(value)  # dates, numpy scalars...: artifacts are JSON

    clean = frame.astype(object).where(frame.notna(), None)
    records = [{str(k): cell(v) for k, v in row.items()} for row in clean.to_dict("records")]
    create_table_artifact(key=key, table=records, description=description)


def markdown_artifact(key: str, markdown: str, description: str) -> None:
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(key=key, markdown=markdown, description=description)


def task_runner(settings: Settings) -> Any:
    """The configured task runner: threads here; an existing Dask or Ray cluster past one VM
    (`FOURNIL_TASK_RUNNER=dask|ray`, `FOURNIL_TASK_RUNNER_ADDRESS=...`)."""
    if settings.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=4)
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        address = settings.task_runner_address
        return DaskTaskRunner(address=address) if address else DaskTaskRunner()
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise RuntimeError(
            "FOURNIL_TASK_RUNNER=ray needs prefect-ray: pip install prefect-ray"
        ) from exc
    address = settings.task_runner_address
    return RayTaskRunner(address=address) if address else RayTaskRunner()


@dataclass(frozen=True)
class DeploymentSpec:
    flow: str  # the module fournil.flows.<flow>, its function <flow>_flow
    name: str
    cron: Callable[[Settings], str]
    description: str

    @property
    def entrypoint(self) -> str:
        """A module path in the installed package (Prefect's MODULE_PATH entrypoint: dots, no
        colon), so a worker imports the flow from any folder, with no code to pull."""
        return f"fournil.flows.{self.flow}.{self.flow}_flow"

    @property
    def full_name(self) -> str:
        return f"{self.flow}/{self.name}"


DEPLOYMENTS = (
    DeploymentSpec("etl", "daily", lambda s: s.etl_cron, "Load new drops from the landing folder"),
    DeploymentSpec(
        "forecast", "daily", lambda s: s.forecast_cron, "Batch forecasts from the champion(s)"
    ),
    DeploymentSpec(
        "monitor", "daily", lambda s: s.monitor_cron, "Forecast accuracy, drift, run health"
    ),
    DeploymentSpec("train", "weekly", lambda s: s.train_cron, "Train, register, gate"),
    DeploymentSpec(
        "report", "daily", lambda s: s.report_cron, "E-mail the forecast workbook (xlsx)"
    ),
)


@contextlib.contextmanager
def temporary_prefect(settings: Settings) -> Iterator[str | None]:
    """With no PREFECT_API_URL and FOURNIL_PREFECT_PORT set: Prefect's temporary server on that
    port for the block (its URL yielded), else nothing (None: Prefect's own choice, or the
    server PREFECT_API_URL names)."""
    if settings.prefect_api_url or os.environ.get("PREFECT_API_URL") or not settings.prefect_port:
        yield None
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer(port=settings.prefect_port)
    server.start(timeout=120)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
            _drain_prefect_workers()  # their logs and events, while the server still answers
    finally:
        server.stop()


def _drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=30)
    EventsWorker.drain_all(timeout=30)


def load_flow(spec: DeploymentSpec) -> Any:
    """The flow object of a deployment, imported from the installed package."""
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(spec.entrypoint, use_placeholder_flow=False)


def deploy_all(settings: Settings) -> list[str]:
    """Register every deployment on the Prefect API, with cron schedules in the business's time
    zone, on the configured process work pool (created if missing). The entrypoints are module
    paths: the worker runs the flows from the installed package, nothing is pulled."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=settings.work_pool, type="process"))
    names = []
    for spec in DEPLOYMENTS:
        load_flow(spec).deploy(
            name=spec.name,
            work_pool_name=settings.work_pool,
            schedules=[Cron(spec.cron(settings), timezone=settings.timezone)],
            description=spec.description,
            entrypoint_type=EntrypointType.MODULE_PATH,
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,
        )
        names.append(spec.full_name)
    return names
