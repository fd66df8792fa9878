"""What every `fournil` sub-command shares: the consoles, one-line errors, and the warehouse
engine behind the schema check. Cheap to import: `fournil --help` loads nothing heavier."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from fournil.settings import Settings

# Piped or redirected, rich would cut tables at 80 columns: lines as wide as they need (up to
# 200), unless COLUMNS says otherwise.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def runnable(command: str) -> str:
    """`command` (a tool of this installation: fournil, mlflow...) as a user can run it from a
    shell: as is when it is on PATH, else by the full path of this environment's copy."""
    import shutil
    from pathlib import Path

    tool, _, rest = command.partition(" ")
    if shutil.which(tool):
        return command
    local = Path(sys.executable).parent / tool
    return f"{local} {rest}".strip() if local.exists() else command


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def warehouse(settings: Settings) -> Engine:
    """The warehouse engine, once its schema is known to be current; otherwise exit 1 with a
    one-line error naming `fournil db upgrade` (commands never migrate on their own)."""
    from sqlalchemy.exc import OperationalError

    from fournil.cli.errors import database_error
    from fournil.db import SchemaNotCurrentError, require_current, warehouse_engine

    engine = warehouse_engine(settings)
    try:
        require_current(engine)
    except SchemaNotCurrentError as exc:
        engine.dispose()
        raise fail(str(exc)) from None
    except OperationalError as exc:
        engine.dispose()
        raise fail(database_error(exc, settings.warehouse_url) or str(exc)) from None
    return engine
