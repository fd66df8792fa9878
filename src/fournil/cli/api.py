"""`fournil api serve` and `fournil apikey create|revoke|list`."""

from __future__ import annotations

import os
import tempfile

import typer
from fastapi import FastAPI
from rich.table import Table

from fournil.cli.common import console, fail, warehouse

app = typer.Typer(help="The HTTP API.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (only their hash is stored).", no_args_is_help=True)


def app_factory() -> FastAPI:  # uvicorn --factory entry point, called in each worker
    from fournil.api.app import create_app
    from fournil.api.server import configure
    from fournil.settings import get_settings

    settings = get_settings()
    configure(settings)
    return create_app(settings)


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default: FOURNIL_API_HOST)."),
    port: int = typer.Option(None, help="Port (default: FOURNIL_API_PORT)."),
    workers: int = typer.Option(
        None, min=1, help="Worker processes (default: FOURNIL_API_WORKERS)."
    ),
) -> None:
    """Serve the API with uvicorn. It starts without the warehouse (or with its schema behind):
    /health answers at once, /ready says why it is not ready until the warehouse is there and
    current (`fournil db upgrade` migrates it; the API never does)."""
    import uvicorn

    from fournil.api.server import uvicorn_options
    from fournil.settings import get_settings

    settings = get_settings()
    workers = workers or settings.api.workers
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fournil-metrics-")
    uvicorn.run(
        "fournil.cli.api:app_factory",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        **uvicorn_options(settings),  # type: ignore[arg-type]
    )


@app.command()
def smoke(
    url: str = typer.Option("http://127.0.0.1:8000", help="The API to check."),
    key: str = typer.Option(
        None,
        envvar="FOURNIL_SMOKE_API_KEY",
        help="Key with forecasts:read and predict; default: a temporary key, revoked after.",
    ),
    store_id: int = typer.Option(
        None, help="Store to ask for (default: the first store with forecasts)."
    ),
    wait: float = typer.Option(120.0, help="Seconds to wait for /ready (model loading)."),
) -> None:
    """Smoke-test a deployed API (the deploy stage runs it): health, readiness with a champion,
    a store's forecasts, one prediction. Exit 1 on the first failing check."""
    from sqlalchemy import func, select

    from fournil.api.keys import create_key, revoke_key
    from fournil.api.smoke import run_smoke
    from fournil.db import warehouse_engine
    from fournil.db.schema import forecasts
    from fournil.settings import get_settings

    settings = get_settings()
    engine = warehouse_engine(settings)
    if store_id is None:
        with engine.connect() as conn:
            store_id = conn.execute(select(func.min(forecasts.c.store_id))).scalar() or 1
    temporary = key is None
    if temporary:
        key = create_key(
            engine, "smoke test (temporary)", ["forecasts:read", "predict"], settings.secret_key
        )
    try:
        checks = run_smoke(url, key, store_id, wait_seconds=wait)
    finally:
        if temporary:
            revoke_key(engine, key.split("_")[1])  # fk_<key id>_<secret>
    table = Table(title=f"smoke test of {url}")
    for column in ("check", "", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAILED[/]", check.detail)
    console.print(table)
    if len(checks) != 4 or not all(c.ok for c in checks):  # it stops at the first failure
        raise typer.Exit(1)


@keys_app.command("create")
def create(
    name: str = typer.Option(..., help="Who or what the key is for."),
    scope: list[str] = typer.Option(["forecasts:read"], help="forecasts:read, predict, admin"),
) -> None:
    """Create a key and print it once."""
    from fournil.api.keys import create_key
    from fournil.settings import get_settings

    settings = get_settings()
    engine = warehouse(settings)
    try:
        key = create_key(engine, name, scope, settings.secret_key)
    except ValueError as exc:
        raise fail(str(exc)) from None
    console.print(key, highlight=False, soft_wrap=True)


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key's id (fk_<id>_...).")) -> None:
    from fournil.api.keys import revoke_key
    from fournil.settings import get_settings

    if not revoke_key(warehouse(get_settings()), key_id):
        raise fail(f"no active key {key_id}")
    console.print(f"revoked {key_id}")


@keys_app.command("list")
def list_() -> None:
    from fournil.api.keys import list_keys
    from fournil.settings import get_settings

    engine = warehouse(get_settings())
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
