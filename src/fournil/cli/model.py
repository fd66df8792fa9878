"""`fournil model ...`: train, promote, rollback, status, verify."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from fournil.cli.common import console, fail, warehouse

app = typer.Typer(
    help="Train, gate, promote and roll back forecasting models.", no_args_is_help=True
)


@app.command()
def train(
    granularity: str = typer.Option(
        None, help="global, family, city or region (default: FOURNIL_GRANULARITY)."
    ),
    truth: Path = typer.Option(
        None, exists=True, dir_okay=False, help="Generator's expected_demand.parquet (noise floor)."
    ),
    horizon: int = typer.Option(None, min=1, max=28, help="Days ahead (default: FOURNIL_HORIZON)."),
    folds: int = typer.Option(3, min=1, help="Backtest cut-offs."),
    seed: int = typer.Option(42, help="Random seed of the model."),
    origin_stride: int = typer.Option(
        None,
        min=1,
        max=28,
        help="One training origin every N days (default: FOURNIL_TRAIN_ORIGIN_STRIDE).",
    ),
    history_days: int = typer.Option(
        None,
        min=28,
        help="Days of history training draws from (default: FOURNIL_TRAIN_HISTORY_DAYS).",
    ),
) -> None:
    """Build features, fit, backtest, log to MLflow and register a new version (no promotion)."""
    from fournil.models.backtest import BacktestConfig
    from fournil.models.training import default_spec
    from fournil.models.training import train as run_train
    from fournil.settings import get_settings

    settings = get_settings()
    if granularity not in (None, "global", "family", "city", "region"):
        raise fail(f"unknown granularity {granularity!r}: use global, family, city or region")
    spec = default_spec(
        settings,
        horizon=horizon,
        seed=seed,
        origin_stride=origin_stride,
        train_days=history_days,
    )
    with console.status("training...") as status:
        try:
            versions = run_train(
                warehouse(settings),  # the schema must be current: `fournil db upgrade` migrates
                settings,
                spec=spec,
                granularity=granularity,
                truth_path=truth,
                config=BacktestConfig(folds=folds),
                progress=status.update,
            )
        except ValueError as exc:
            raise fail(str(exc)) from None
    report = versions[0].data_report if versions else None
    if report is not None:
        for line in report.lines():
            console.print(f"data: {line}", highlight=False)
        for warning in report.warnings():
            console.print(f"[yellow]warning[/] {warning}", highlight=False)
    for v in versions:
        for line in v.selection or []:
            console.print(f"chosen: {line}", highlight=False)
    table = Table(title="registered (not promoted)")
    columns = ("model", "version", "backtest WAPE", "simplest", "seasonal naive", "linear")
    for column in (*columns, "noise floor"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            v.name,
            v.version,
            f"{v.wape:.4f}",
            "-" if v.wape_simplest is None else f"{v.wape_simplest:.4f}",
            f"{v.wape_naive:.4f}",
            f"{v.wape_linear:.4f}",
            "-" if v.wape_noise_floor is None else f"{v.wape_noise_floor:.4f}",
        )
    console.print(table)


@app.command()
def promote(
    name: str = typer.Option(None, help="Registered model (default: every model just trained)."),
    version: str = typer.Option(None, help="Version (default: the latest)."),
) -> None:
    """Make a version `challenger`, and `champion` if it passes the gate. Exit 1 if refused."""
    from fournil import registry
    from fournil.models.gate import GateError
    from fournil.models.gate import promote as run_promote
    from fournil.settings import get_settings

    settings = get_settings()
    client = registry.configure(settings)
    if name:
        names = [name]
    else:
        names = [
            s.name
            for s in registry.segment_models(client, settings)
            if s.granularity == settings.granularity
        ] or [settings.model_name]
    engine = warehouse(settings)
    refused = 0
    for model_name in names:
        try:
            decision = run_promote(engine, model_name, version, settings)
        except GateError as exc:
            raise fail(str(exc)) from None
        colour = "green" if decision.promoted else "red"
        console.print(
            f"[bold {colour}]{decision.action}[/] {decision.name} v{decision.version} "
            f"(champion: {decision.champion_before or '-'} -> {decision.champion_after or '-'})"
        )
        for reason in decision.reasons:
            console.print(f"  {reason}", highlight=False)
        refused += not decision.promoted
    if refused:
        raise typer.Exit(1)


@app.command()
def rollback(name: str = typer.Option(None, help="Registered model (default: global).")) -> None:
    """Move `champion` back to the previous champion (audited)."""
    from fournil.models.gate import GateError
    from fournil.models.gate import rollback as run_rollback
    from fournil.settings import get_settings

    settings = get_settings()
    try:
        decision = run_rollback(warehouse(settings), name, settings)
    except GateError as exc:
        raise fail(str(exc)) from None
    console.print(
        f"[bold]rollback[/] {decision.name}: champion v{decision.champion_before} -> "
        f"v{decision.champion_after}"
    )


@app.command()
def status() -> None:
    """Current champion and challenger of every model, and the recent decisions."""
    from fournil import registry
    from fournil.models.gate import history
    from fournil.settings import get_settings

    settings = get_settings()
    client = registry.configure(settings)
    models = registry.segment_models(client, settings)
    if not models:
        raise fail("no registered model yet: run `fournil model train`")
    table = Table(title="models")
    for column in ("model", "granularity", "segment", "champion", "challenger", "latest"):
        table.add_column(column)
    for seg in models:
        versions = client.search_model_versions(f"name = '{seg.name}'")
        table.add_row(
            seg.name,
            seg.granularity,
            seg.value or "all",
            registry.alias_version(client, seg.name, registry.CHAMPION) or "-",
            registry.alias_version(client, seg.name, registry.CHALLENGER) or "-",
            str(max(int(v.version) for v in versions)) if versions else "-",
        )
    console.print(table)
    decisions = history(warehouse(settings))
    if not decisions.empty:
        log_table = Table(title="recent decisions")
        for column in ("at", "model", "version", "action", "champion", "reasons"):
            log_table.add_column(column)
        for row in decisions.to_dict("records"):
            failed = [str(r) for r in row["reasons"] if str(r).startswith("FAILED")]
            log_table.add_row(
                str(row["decided_at"])[:19],
                str(row["model_name"]),
                str(row["model_version"]),
                str(row["action"]),
                f"{row['champion_before'] or '-'} -> {row['champion_after'] or '-'}",
                "; ".join(failed)
                or (
                    "; ".join(map(str, row["reasons"]))
                    if row["action"] == "rollback"
                    else "all checks ok"
                ),
            )
        console.print(log_table)


@app.command()
def champion(
    name: str = typer.Option(None, help="Registered model (default: global)."),
) -> None:
    """Print the champion's version alone (for scripts: the deploy stage); exit 1 if none."""
    from fournil import registry
    from fournil.settings import get_settings

    settings = get_settings()
    client = registry.configure(settings)
    version = registry.alias_version(client, name or settings.model_name, registry.CHAMPION)
    if version is None:
        raise typer.Exit(1)
    print(version)


@app.command()
def verify(
    name: str = typer.Option(None, help="Registered model (default: global)."),
    alias: str = typer.Option("champion", help="Alias to check, or use --version."),
    version: str = typer.Option(None, help="Version to check."),
) -> None:
    """Deployment test: load a registered model fresh and check its verification samples."""
    import mlflow

    from fournil import registry
    from fournil.models.pyfunc import verify as run_verify
    from fournil.settings import get_settings

    settings = get_settings()
    registry.configure(settings)
    name = name or settings.model_name
    uri = f"models:/{name}/{version}" if version else f"models:/{name}@{alias}"
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        raise fail(f"cannot load {uri}: {str(exc).splitlines()[0]}") from None
    ok, message = run_verify(model)
    console.print(f"{uri}: {message}")
    if not ok:
        raise typer.Exit(1)


@app.command()
def decisions(
    name: str = typer.Option(None, help="Only this registered model."),
    limit: int = typer.Option(20, min=1, help="How many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The promotion gate's decisions, newest first: what was promoted or refused, and why."""
    from fournil.cli.views import emit_json, table
    from fournil.models.gate import history
    from fournil.settings import get_settings

    frame = history(warehouse(get_settings()), name, limit)
    rows = [
        {str(k): v for k, v in row.items() if k != "candidates"} for row in frame.to_dict("records")
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        row["at"] = str(row["decided_at"])[:19]
        row["champion"] = f"{row['champion_before'] or '-'} -> {row['champion_after'] or '-'}"
        row["why"] = "; ".join(map(str, row["reasons"] or []))
    table(
        "gate decisions",
        rows,
        ["at", "model_name", "model_version", "action", "champion", "why"],
    )
