"""`fournil demo`: the whole job on embedded defaults, in one command."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

from fournil.cli.common import console, fail, runnable


def demo(
    stores: int = typer.Option(8, min=1, help="Stores in the generated chain."),
    products: int = typer.Option(6, min=1, help="Products per store."),
    days: int = typer.Option(400, min=30, help="Days of history."),
    seed: int = typer.Option(42, help="Random seed."),
    serve: bool = typer.Option(
        False,
        "--serve",
        help="Then create a demo API key and serve the API (an earlier demo's forecasts are "
        "served as they are: no second run).",
    ),
    port: int = typer.Option(
        None, min=1, max=65535, help="--serve: the API's port (default: FOURNIL_API_PORT)."
    ),
) -> None:
    """Generate a small chain's data, load it, train, promote, forecast and monitor; then say
    where to look."""
    from sqlalchemy import func, select

    from fournil import pipeline
    from fournil.cli.etl import results_table
    from fournil.data.generator import GeneratorConfig, generate
    from fournil.db import upgrade, warehouse_engine
    from fournil.db.migrate import current_revision
    from fournil.db.schema import forecasts, quarantine, sales
    from fournil.settings import get_settings

    settings = get_settings()
    if port:
        settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"port": port})}
        )
    home = settings.ensure_home()
    engine = warehouse_engine(settings)
    if serve:
        made_on = _earlier_demo(engine)
        if made_on is not None:
            console.print(
                f"serving the demo already in {home} (forecasts made on {made_on}); "
                "`fournil demo` without --serve runs it again",
                highlight=False,
            )
            _serve(engine, settings, made_on)
            return
    console.rule("[bold]Fournil demo")
    console.print(
        f"home: [bold]{home}[/]  warehouse: "
        f"[bold]{engine.url.render_as_string(hide_password=True)}[/]"
    )
    upgrade(engine)  # the demo sets up its own warehouse: `fournil db upgrade`, explicitly
    console.print(f"0. warehouse schema at revision {current_revision(engine)}")
    drop = home / "drops" / "demo"
    generated = generate(
        GeneratorConfig(
            stores=stores,
            products=products,
            days=days,
            seed=seed,
            bad_row_rate=0.002,
            country=settings.country,
            timezone=settings.timezone,
        ),
        drop,
    )
    console.print(
        f"1. generated {generated.rows:,} sales rows into {drop} "
        f"({generated.bad_rows} deliberately bad)"
    )
    result = pipeline.ingest(engine, settings, drop, only_new=False)
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

    with console.status("4. training (backtest, fit, MLflow)...") as status:
        try:
            trained = pipeline.train_and_gate(
                engine,
                settings,
                granularity="global",
                truth_path=generated.expected_path,
                progress=lambda message: status.update(f"4. training: {message}"),
            )
        except ValueError as exc:  # too little history for the backtest: say so, in one line
            raise fail(f"cannot train: {exc} (give the demo more --days)") from None
    for v in trained.versions:
        console.print(
            f"4. trained {v.name} v{v.version}: backtest WAPE {v.wape:.3f} "
            f"(seasonal naive {v.wape_naive:.3f}, linear {v.wape_linear:.3f}, "
            f"noise floor {v.wape_noise_floor or float('nan'):.3f})"
        )
    for decision in trained.decisions:
        console.print(f"5. gate: {decision.action} v{decision.version}")
        for reason in decision.reasons:
            console.print(f"   {reason}", highlight=False)
    made = pipeline.forecast(engine, settings)
    console.print(f"6. wrote {made.rows:,} forecasts from {made.forecast_date}")
    with engine.connect() as conn:
        sample = conn.execute(
            select(
                forecasts.c.store_id,
                forecasts.c.product_id,
                forecasts.c.target_date,
                forecasts.c.yhat,
                forecasts.c.yhat_lower,
                forecasts.c.yhat_upper,
            )
            .where(forecasts.c.forecast_date == made.forecast_date)
            .order_by(forecasts.c.store_id, forecasts.c.product_id, forecasts.c.target_date)
            .limit(5)
        ).all()
    for row in sample:
        console.print(
            f"   store {row.store_id} product {row.product_id} {row.target_date}: "
            f"{row.yhat:.1f} [{row.yhat_lower:.1f}, {row.yhat_upper:.1f}]",
            highlight=False,
        )
    with console.status("7. monitoring (accuracy, drift, run health)..."):
        watched = pipeline.monitor(engine, settings)
    console.print(
        f"7. monitoring: {len(watched.drifted)} drifted feature(s), "
        f"{len(watched.overall)} model version(s) scored on actuals, "
        f"run health: {'; '.join(watched.problems) or 'ok'}",
        highlight=False,
    )
    console.print("\nLook:", highlight=False)
    for command, what in (
        (f"mlflow ui --backend-store-uri {settings.tracking_uri}", "runs, plots, registry"),
        ("fournil status", "the warehouse, the champion, the last runs"),
        ("fournil forecasts show --store 1", "a store's forecasts"),
        ("fournil export --format xlsx", "the forecasts as a workbook, one sheet per store"),
        ("fournil demo --serve", "the API on these forecasts"),
    ):
        console.print(f"  {runnable(command)}   # {what}", highlight=False, soft_wrap=True)
    if serve:
        _serve(engine, settings, made.forecast_date)


def _earlier_demo(engine: Engine) -> dt.date | None:
    """The forecast date of an earlier demo's forecasts in this warehouse, if any."""
    from sqlalchemy import func, inspect, select

    from fournil.db.schema import forecasts

    if not inspect(engine).has_table(forecasts.name):
        return None
    with engine.connect() as conn:
        return conn.execute(select(func.max(forecasts.c.forecast_date))).scalar()


def _serve(engine, settings, origin) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from fournil.api.app import create_app
    from fournil.api.keys import create_key
    from fournil.api.server import uvicorn_options

    key = create_key(engine, "demo", ["admin"], settings.secret_key)
    base = f"http://{settings.api.host}:{settings.api.port}"
    day = origin + dt.timedelta(days=1)
    console.rule("[bold]API")
    console.print(f"demo key (admin scope, shown once): {key}", highlight=False, soft_wrap=True)
    for command in (
        f"curl -s {base}/ready",
        f"curl -s -H 'X-API-Key: {key}' '{base}/v1/forecasts?store_id=1&page_size=3'",
        f"curl -s -H 'X-API-Key: {key}' -H 'Content-Type: application/json' "
        f'-d \'{{"rows": [{{"store_id": 1, "product_id": 1, "date": "{day}", "promo": true}}]}}\' '
        f"{base}/v1/predict",
        f"curl -s -H 'X-API-Key: {key}' {base}/v1/models/current",
        f"open {base}/docs",
    ):
        console.print(command, highlight=False, soft_wrap=True)
    console.print("serving; Ctrl-C to stop", highlight=False)
    console.file.flush()  # before uvicorn takes over: the key and commands must show now
    uvicorn.run(
        create_app(settings, engine),
        host=settings.api.host,
        port=settings.api.port,
        **uvicorn_options(settings),  # type: ignore[arg-type]
    )
