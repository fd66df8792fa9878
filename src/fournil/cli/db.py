"""`fournil db`: the warehouse schema."""

from __future__ import annotations

import typer

from fournil.cli.common import console

app = typer.Typer(help="Warehouse schema: migrations.", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Create or migrate the warehouse schema (idempotent). A database failure is one line
    (`fournil.cli.main`)."""
    from fournil.db import upgrade as run_upgrade
    from fournil.db import warehouse_engine
    from fournil.db.migrate import current_revision
    from fournil.settings import get_settings

    engine = warehouse_engine(get_settings())
    run_upgrade(engine, revision)
    console.print(
        f"warehouse [bold]{engine.url.render_as_string(hide_password=True)}[/] "
        f"at revision [bold]{current_revision(engine)}[/]"
    )


@app.command()
def current() -> None:
    """Show the warehouse's schema revision."""
    from fournil.db import warehouse_engine
    from fournil.db.migrate import current_revision, head_revision
    from fournil.settings import get_settings

    engine = warehouse_engine(get_settings())
    rev = current_revision(engine)
    console.print(f"current: {rev or 'none'} (head: {head_revision()})")
    if rev != head_revision():
        raise typer.Exit(1)
