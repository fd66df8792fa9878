"""`fournil parity URL_A URL_B`: the same figures on two warehouses, side by side."""

from __future__ import annotations

import typer
from rich.table import Table

from fournil.cli.common import console, fail, warehouse


def parity(
    url_a: str = typer.Argument(..., help="First warehouse (SQLAlchemy URL), e.g. production."),
    url_b: str = typer.Argument(..., help="Second warehouse, e.g. preproduction."),
    label_a: str = typer.Option(None, help="Name of the first (default: its URL, no password)."),
    label_b: str = typer.Option(None, help="Name of the second (default: its URL, no password)."),
    show_all: bool = typer.Option(False, "--all", help="Show equal figures too."),
    save: bool = typer.Option(
        False, help="Store the comparison in parity_checks of the warehouse (DATABASE_URL)."
    ),
    strict: bool = typer.Option(False, help="Exit with status 1 when any figure differs."),
) -> None:
    """Row counts, NULL counts per column, and SUM/AVG/MIN/MAX of key columns of the important
    tables, for two warehouses (seed 000's environment parity check)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from fournil.db import make_engine
    from fournil.parity import compare
    from fournil.parity import save as save_checks

    label_a = label_a or make_url(url_a).render_as_string(hide_password=True)
    label_b = label_b or make_url(url_b).render_as_string(hide_password=True)
    engines = make_engine(url_a), make_engine(url_b)
    try:
        checks = compare(*engines)
    except SQLAlchemyError as exc:
        raise fail(f"cannot read a warehouse: {str(exc).splitlines()[0]}") from None
    finally:
        for engine in engines:
            engine.dispose()
    differ = [c for c in checks if not c.equal]
    table = Table(title=f"{label_a} vs {label_b}")
    for column in ("table", "column", "stat", label_a, label_b, ""):
        table.add_column(column, justify="right" if column in (label_a, label_b) else "left")

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:,.6g}"

    for check in checks if show_all else differ:
        mark = "" if check.equal else "[red]differs[/]"
        table.add_row(check.table, check.column, check.stat, show(check.a), show(check.b), mark)
    if show_all or differ:
        console.print(table)
    console.print(f"{len(checks)} figures compared, {len(differ)} differ")
    if save:
        from fournil.settings import get_settings

        engine = warehouse(get_settings())
        at = save_checks(engine, checks, label_a, label_b)
        console.print(f"saved to parity_checks at {at:%Y-%m-%d %H:%M:%S} UTC")
    if strict and differ:
        raise typer.Exit(1)
