"""`fournil flows ...` and `fournil worker`: Prefect deployments, local runs and a worker."""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from fournil.cli.common import console, fail, warehouse

app = typer.Typer(
    help="Prefect flows: deploy them with schedules, or run one now.", no_args_is_help=True
)

FLOW_NAMES = ("etl", "train", "forecast", "monitor", "report")


@app.command()
def deploy() -> None:
    """Register the deployments (cron in FOURNIL_TIMEZONE) on the Prefect API (PREFECT_API_URL)
    and create the process work pool if missing."""
    from fournil.orchestration import DEPLOYMENTS, deploy_all
    from fournil.settings import get_settings

    settings = get_settings()
    if not os.environ.get("PREFECT_API_URL") and not settings.prefect_api_url:
        raise fail("set PREFECT_API_URL to the Prefect server to deploy to")
    try:
        names = deploy_all(settings)
    except Exception as exc:
        raise fail(
            f"deploy failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    for spec in DEPLOYMENTS:
        console.print(
            f"deployed [bold]{spec.full_name}[/]: cron '{spec.cron(settings)}' "
            f"({settings.timezone}), pool {settings.work_pool}"
        )
    console.print(f"{len(names)} deployments; start a worker with `fournil worker`")


@app.command()
def run(
    names: list[str] = typer.Argument(
        ..., help="Flows to run in order: etl, train, forecast, monitor, report"
    ),
    date: str = typer.Option(None, help="forecast: the origin day (YYYY-MM-DD)."),
    monitor_date: str = typer.Option(None, help="monitor: the day evaluated (YYYY-MM-DD)."),
    source: str = typer.Option(
        None, help="etl: the landing folder (default: FOURNIL_LANDING_DIR)."
    ),
) -> None:
    """Run flows now, in this process, in order (one Prefect ephemeral API for all of them
    unless PREFECT_API_URL is set); stop at the first that fails."""
    unknown = [n for n in names if n not in FLOW_NAMES]
    if unknown:
        raise fail(f"unknown flow {unknown[0]!r}: use {', '.join(FLOW_NAMES)}")
    from fournil.settings import get_settings

    warehouse(
        get_settings()
    ).dispose()  # the schema is current, or a one-line error now (flows never migrate)

    from fournil.orchestration import DEPLOYMENTS, load_flow, temporary_prefect

    specs = {spec.flow: spec for spec in DEPLOYMENTS}
    with temporary_prefect(get_settings()) as api_url:
        if api_url:
            console.print(f"Prefect API: {api_url} (temporary)", highlight=False)
        _run_flows(names, specs, load_flow, date, monitor_date, source)


def _run_flows(names, specs, load_flow, date, monitor_date, source) -> None:  # type: ignore[no-untyped-def]
    for name in names:
        flow: Any = load_flow(specs[name])
        params: dict[str, str] = {}
        if date and name == "forecast":
            params["date"] = date
        if monitor_date and name == "monitor":
            params["date"] = monitor_date
        if source and name == "etl":
            params["source"] = source
        try:
            state: Any = flow(**params, return_state=True)
        except Exception as exc:
            raise fail(f"flow {name} could not run: {type(exc).__name__}: {exc}") from None
        if not state.is_completed():
            raise fail(f"flow {name} ended {state.name}: {state.message}")
        console.print(f"flow {name}: {state.name}")


def worker(
    pool: str = typer.Option(None, help="Work pool (default: FOURNIL_WORK_POOL)."),
    deploy_first: bool = typer.Option(
        False, "--deploy", help="Register the deployments first (what the compose worker does)."
    ),
    healthcheck: bool = typer.Option(
        False,
        "--healthcheck",
        help="Serve GET /health on PREFECT_WORKER_WEBSERVER_PORT (default 8080) for probes.",
    ),
) -> None:
    """Start a Prefect process worker on the work pool (runs the deployments' flow runs)."""
    from fournil.settings import get_settings

    if deploy_first:
        deploy()
    pool = pool or get_settings().work_pool
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool]
    command += ["--type", "process", *(["--with-healthcheck"] if healthcheck else [])]
    os.execv(sys.executable, command)
