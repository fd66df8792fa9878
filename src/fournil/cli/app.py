"""The `fournil` typer app and its shared plumbing (logging, one-line errors)."""

from __future__ import annotations

import logging
import os

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from fournil.settings import SettingsError, get_settings

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="fournil",
    help="Fournil: demand forecasting for a bakery chain, from drops to forecasts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs."),
) -> None:
    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as exc:
        raise fail(f"invalid settings: {exc}".replace("\n", " "), code=2) from None
    # Prefect's ephemeral API (local mode) gets 20 s to start by default; on a loaded 2-core
    # machine it took longer and every flow run failed with "Timed out while attempting to
    # connect to ephemeral Prefect API server". Set before Prefect is first imported.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper(), 20)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    logging.getLogger("fournil").setLevel(level)


def _register() -> None:
    from fournil.cli import api, data, db, demo, etl, flows, forecast, model, parity

    app.add_typer(db.app, name="db")
    app.add_typer(data.app, name="data")
    app.add_typer(etl.app, name="etl")
    app.add_typer(model.app, name="model")
    app.command("forecast")(forecast.forecast)
    app.add_typer(flows.app, name="flows")
    app.command("worker")(flows.worker)
    app.add_typer(api.app, name="api")
    app.add_typer(api.keys_app, name="apikey")
    app.command("demo")(demo.demo)
    app.command("parity")(parity.parity)


_register()
