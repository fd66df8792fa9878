"""The `fournil` typer app: the root callback (settings, logging) and the sub-commands.

Sub-commands are registered by name and loaded on first use (`_LazyGroup`): `fournil --help`
imports typer and rich only, never pandas, SQLAlchemy, MLflow or Prefect. Their shared plumbing
(consoles, one-line errors) lives in `fournil.cli.common`, which every sub-command imports.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from typer.core import TyperCommand, TyperGroup

from fournil.cli.common import err_console, fail

if TYPE_CHECKING:  # typer's own copy of click (importing click itself costs 0.15 s)
    from typer._click import Command, Context, HelpFormatter

__all__ = ["COMMANDS", "app"]


@dataclass(frozen=True)
class LazyCommand:
    """A sub-command: `fournil <name>` is `<module>.<attribute>` (a typer.Typer for a group
    of commands, a function for a single one); `help` is what `fournil --help` lists without
    importing the module (tests/unit/test_cli_imports.py checks it matches)."""

    name: str
    module: str
    attribute: str
    help: str

    def load(self, parent: typer.Typer) -> Command:
        target = getattr(importlib.import_module(self.module), self.attribute)
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)
            group.name = self.name
            return group
        return typer.main.get_command_from_info(
            typer.models.CommandInfo(name=self.name, callback=target),
            pretty_exceptions_short=parent.pretty_exceptions_short,
            rich_markup_mode=parent.rich_markup_mode,
        )


COMMANDS = (
    LazyCommand(
        "forecast",
        "fournil.cli.forecast",
        "forecast",
        "Forecast every active store x product for the next days; idempotent per model "
        "version and forecast date.",
    ),
    LazyCommand(
        "worker",
        "fournil.cli.flows",
        "worker",
        "Start a Prefect process worker on the work pool (runs the deployments' flow runs).",
    ),
    LazyCommand(
        "demo",
        "fournil.cli.demo",
        "demo",
        "Generate a small chain's data, load it, train, promote, forecast and monitor; then "
        "say where to look.",
    ),
    LazyCommand(
        "parity",
        "fournil.cli.parity",
        "parity",
        "Row counts, NULL counts per column, and SUM/AVG/MIN/MAX of key columns of the "
        "important tables, for two warehouses (seed 000's environment parity check).",
    ),
    LazyCommand(
        "export",
        "fournil.cli.export",
        "export",
        "Write the next days' forecasts with their intervals, for people: an Excel workbook "
        "with one sheet per store, or one CSV.",
    ),
    LazyCommand(
        "report",
        "fournil.cli.export",
        "report",
        "Write the forecast workbook under FOURNIL_HOME/reports and e-mail it to "
        "FOURNIL_REPORT_TO now (what the daily report deployment does).",
    ),
    LazyCommand(
        "status",
        "fournil.cli.views",
        "status",
        "One screen: how fresh the warehouse is, the champion, the last run of each flow, and "
        "the alerts firing.",
    ),
    LazyCommand(
        "runs",
        "fournil.cli.views",
        "runs",
        "The ETL runs (one per file loaded) and the pipeline runs (flows), newest first.",
    ),
    LazyCommand(
        "quarantine",
        "fournil.cli.views",
        "quarantine",
        "Rows the ETL refused: how many for each reason, and sample rows as they came.",
    ),
    LazyCommand(
        "forecasts", "fournil.cli.views", "forecasts_app", "Batch forecasts in the warehouse."
    ),
    LazyCommand("db", "fournil.cli.db", "app", "Warehouse schema: migrations."),
    LazyCommand("data", "fournil.cli.data", "app", "Synthetic bakery data."),
    LazyCommand("etl", "fournil.cli.etl", "app", "Load sales, stores and products drops."),
    LazyCommand(
        "model",
        "fournil.cli.model",
        "app",
        "Train, gate, promote and roll back forecasting models.",
    ),
    LazyCommand(
        "flows",
        "fournil.cli.flows",
        "app",
        "Prefect flows: deploy them with schedules, or run one now.",
    ),
    LazyCommand("api", "fournil.cli.api", "app", "The HTTP API."),
    LazyCommand("apikey", "fournil.cli.api", "keys_app", "API keys (only their hash is stored)."),
)
_BY_NAME = {c.name: c for c in COMMANDS}


class _LazyGroup(TyperGroup):
    """The root group: lists the sub-commands from `COMMANDS` and imports one only when it
    runs (or shows its own help)."""

    _listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        eager = super().list_commands(ctx)
        return [*eager, *(c.name for c in COMMANDS if c.name not in eager)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name in self.commands or cmd_name not in _BY_NAME:
            return super().get_command(ctx, cmd_name)
        lazy = _BY_NAME[cmd_name]
        if self._listing:  # the root's help: name and help only, no import
            return TyperCommand(name=lazy.name, help=lazy.help)
        command = lazy.load(app)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="fournil",
    cls=_LazyGroup,
    help="Fournil: demand forecasting for a bakery chain, from drops to forecasts.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logs."),
) -> None:
    from pydantic import ValidationError
    from rich.logging import RichHandler

    from fournil.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except (ValidationError, SettingsError) as exc:
        raise fail(f"invalid settings: {exc}".replace("\n", " "), code=2) from None
    # Prefect's ephemeral API (local mode) gets 20 s to start by default; on a loaded 2-core
    # machine it took longer and every flow run failed with "Timed out while attempting to
    # connect to ephemeral Prefect API server". Set before Prefect is first imported (the
    # sub-command modules import Prefect inside their functions only).
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # Every process a command starts (Prefect's temporary server, a worker's flow runs, a
    # notebook kernel) sees the same, absolute home; Prefect's own state lives under it, not
    # in ~/.prefect.
    os.environ["FOURNIL_HOME"] = str(settings.home_dir)
    if not os.environ.get("PREFECT_HOME"):
        prefect_home = settings.home_dir / "prefect"
        prefect_home.mkdir(parents=True, exist_ok=True)  # Prefect makes only the last folder
        os.environ["PREFECT_HOME"] = str(prefect_home)
    level = logging.DEBUG if verbose else getattr(logging, settings.log_level.upper(), 20)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    logging.getLogger("fournil").setLevel(level)
