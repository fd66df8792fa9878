"""What the Prefect flows share: run recording, alert hooks, artifacts, the task runner, and
the deployments as code (`fournil flows deploy`).

The flows themselves (`flows/*.py`) are thin: tasks call the library, nothing else.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fournil import alerts
from fournil.db import upgrade, warehouse_engine
from fournil.pipeline_runs import RunRecorder
from fournil.settings import Settings, get_settings

log = logging.getLogger("fournil.flows")


def recorder(flow: str) -> RunRecorder:
    """A run recorder keyed by the Prefect flow run id (a uuid outside Prefect)."""
    from prefect.runtime import deployment, flow_run

    engine = warehouse_engine()
    upgrade(engine)
    run_id = str(flow_run.id) if flow_run.id else None
    return RunRecorder(engine, flow, run_id, deployment.name)


def on_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect flow hook: a failed run sends a critical alert."""
    message = state.message or "failed"
    alerts.notify(
        f"flow {flow.name} failed",
        [f"run {flow_run.name} ({flow_run.id})", str(message)[:500]],
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


def task_runner(settings: Settings | None = None) -> Any:
    """The configured task runner: threads here; an existing Dask or Ray cluster past one VM
    (`FOURNIL_TASK_RUNNER=dask|ray`, `FOURNIL_TASK_RUNNER_ADDRESS=...`)."""
    settings = settings or get_settings()
    if settings.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=4)
    if settings.task_runner == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise RuntimeError(
                "FOURNIL_TASK_RUNNER=dask needs prefect-dask: uv sync --extra dask"
            ) from exc
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
    flow: str  # flows/<flow>.py:<flow>_flow
    name: str
    cron: Callable[[Settings], str]
    description: str

    @property
    def entrypoint(self) -> str:
        return f"flows/{self.flow}.py:{self.flow}_flow"

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
)


def project_root() -> Path:
    """The folder holding `flows/`: the current one, or the source checkout of this package."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (candidate / "flows").is_dir():
            return candidate
    raise RuntimeError("cannot find the flows/ folder: run from the project root")


def deploy_all(settings: Settings | None = None, source: Path | None = None) -> list[str]:
    """Register every deployment on the Prefect API, with cron schedules in the business's time
    zone, on the configured process work pool (created if missing)."""
    from prefect import flow as prefect_flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.schedules import Cron

    settings = settings or get_settings()
    root = (source or project_root()).resolve()
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=settings.work_pool, type="process"))
    names = []
    for spec in DEPLOYMENTS:
        remote = prefect_flow.from_source(source=str(root), entrypoint=spec.entrypoint)
        assert not inspect.isawaitable(remote)  # sync context: from_source returns the flow
        remote.deploy(
            name=spec.name,
            work_pool_name=settings.work_pool,
            schedules=[Cron(spec.cron(settings), timezone=settings.timezone)],
            description=spec.description,
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,
        )
        names.append(spec.full_name)
    return names
