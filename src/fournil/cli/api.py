"""`fournil api serve` and `fournil apikey create|revoke|list`."""

from __future__ import annotations

import os
import tempfile

import typer
from fastapi import FastAPI
from rich.table import Table

from fournil.cli.app import console, fail

app = typer.Typer(help="The HTTP API.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (only their hash is stored).", no_args_is_help=True)


def app_factory() -> FastAPI:  # uvicorn --factory entry point
    from fournil.api.app import create_app

    return create_app()


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default: FOURNIL_API_HOST)."),
    port: int = typer.Option(None, help="Port (default: FOURNIL_API_PORT)."),
    workers: int = typer.Option(
        None, min=1, help="Worker processes (default: FOURNIL_API_WORKERS)."
    ),
) -> None:
    """Serve the API with uvicorn (the champion is loaded before traffic is accepted)."""
    import uvicorn

    from fournil.db import upgrade, warehouse_engine
    from fournil.settings import get_settings

    settings = get_settings()
    upgrade(warehouse_engine(settings))
    workers = workers or settings.api_workers
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fournil-metrics-")
    uvicorn.run(
        "fournil.cli.api:app_factory",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers,
        log_level="warning",
        access_log=False,  # keys travel in headers; nothing about them is logged
    )


@keys_app.command("create")
def create(
    name: str = typer.Option(..., help="Who or what the key is for."),
    scope: list[str] = typer.Option(["forecasts:read"], help="forecasts:read, predict, admin"),
) -> None:
    """Create a key and print it once."""
    from fournil.api.keys import create_key
    from fournil.db import upgrade, warehouse_engine

    engine = warehouse_engine()
    upgrade(engine)
    try:
        key = create_key(engine, name, scope)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(key, highlight=False, soft_wrap=True)


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (fk_<id>_...).")) -> None:
    from fournil.api.keys import revoke_key
    from fournil.db import warehouse_engine

    if not revoke_key(warehouse_engine(), key_id):
        raise fail(f"no active key {key_id}")
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def list_() -> None:
    from fournil.api.keys import list_keys
    from fournil.db import upgrade, warehouse_engine

    engine = warehouse_engine()
    upgrade(engine)
    table = Table(title="API keys")
    for column in ("id", "name", "scopes", "created", "revoked"):
        table.add_column(column)
    for k in list_keys(engine):
        table.add_row(
            str(k["key_id"]),
            str(k["name"]),
            ", ".join(k["scopes"]),  # type: ignore[arg-type]
            str(k["created_at"])[:19],
            str(k["revoked_at"] or "")[:19],
        )
    console.print(table)
