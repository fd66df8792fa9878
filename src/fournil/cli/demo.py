"""`fournil demo`: the whole job on embedded defaults, in one command."""

from __future__ import annotations

import typer

from fournil.cli.app import console


def demo(
    stores: int = typer.Option(8, min=1, help="Stores in the generated chain."),
    products: int = typer.Option(6, min=1, help="Products per store."),
    days: int = typer.Option(400, min=30, help="Days of history."),
    seed: int = typer.Option(42, help="Random seed."),
) -> None:
    """Generate a small chain's data and load it into the warehouse, then summarise."""
    from sqlalchemy import func, select

    from fournil.cli.etl import results_table
    from fournil.data.generator import GeneratorConfig, generate
    from fournil.db import upgrade, warehouse_engine
    from fournil.db.schema import quarantine, sales
    from fournil.etl.runner import run_etl
    from fournil.settings import get_settings

    settings = get_settings()
    home = settings.ensure_home()
    engine = warehouse_engine(settings)
    console.rule("[bold]Fournil demo")
    console.print(
        f"home: [bold]{home}[/]  warehouse: "
        f"[bold]{engine.url.render_as_string(hide_password=True)}[/]"
    )
    upgrade(engine)
    drop = home / "drops" / "demo"
    generated = generate(
        GeneratorConfig(stores=stores, products=products, days=days, seed=seed, bad_row_rate=0.002),
        drop,
    )
    console.print(
        f"1. generated {generated.rows:,} sales rows into {drop} "
        f"({generated.bad_rows} deliberately bad)"
    )
    result = run_etl(drop, engine)
    console.print("2. loaded them:")
    console.print(results_table(result.files))
    with engine.connect() as conn:
        total, first, last = conn.execute(
            select(func.count(), func.min(sales.c.sale_date), func.max(sales.c.sale_date))
        ).one()
        reasons = conn.execute(
            select(quarantine.c.reason, func.count().label("n"))
            .where(quarantine.c.etl_run_id.in_([f.run_id for f in result.files]))
            .group_by(quarantine.c.reason)
            .order_by(func.count().desc())
            .limit(5)
        ).all()
    console.print(f"3. warehouse: {total:,} sales rows from {first} to {last}")
    if reasons:
        console.print("   quarantined rows by reason (top 5):")
        for reason, n in reasons:
            console.print(f"   {n:>5}  {reason}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
