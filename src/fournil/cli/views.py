"""What happened, without SQL: `fournil runs`, `fournil quarantine`, `fournil forecasts show`
and `fournil status`, each a table on a terminal or `--json` for scripts (`fournil model
decisions` lives with the model commands)."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import typer

from fournil.cli.common import console, fail, warehouse

if TYPE_CHECKING:
    from sqlalchemy import Engine

JSON_HELP = "Print JSON instead of tables."
ETL_COLUMNS = [
    *("run_id", "started", "file", "kind", "status", "rows_read", "rows_inserted"),
    *("rows_updated", "rows_rejected", "error"),
]
FLOW_COLUMNS = [
    *("started", "flow", "deployment", "status", "seconds", "rows_processed", "warnings"),
    "error",
]
forecasts_app = typer.Typer(help="Batch forecasts in the warehouse.", no_args_is_help=True)


def emit_json(payload: object) -> None:
    """JSON on stdout, dates and decimals as text."""
    import orjson

    text = orjson.dumps(payload, default=str, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    typer.echo(text.decode())


def table(title: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    from rich.table import Table

    columns = columns or (list(rows[0]) if rows else [])
    out = Table(title=title, title_justify="left")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    if not rows:
        console.print(f"{title}: none yet", highlight=False)
        return
    console.print(out)


def _when(value: object) -> str | None:
    return str(value)[:19] if value is not None else None


# --- runs --------------------------------------------------------------------------------------
def etl_runs(engine: Engine, limit: int) -> list[dict[str, Any]]:
    from pathlib import Path

    from sqlalchemy import select

    from fournil.db.schema import etl_runs as runs

    query = select(runs).order_by(runs.c.run_id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        row["file"] = Path(row.pop("source")).name
    return rows


def pipeline_runs(engine: Engine, limit: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from fournil.db.schema import pipeline_runs as runs

    query = select(runs).order_by(runs.c.started_at.desc()).limit(limit)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    for row in rows:
        done = row["finished_at"]
        row["seconds"] = round((done - row["started_at"]).total_seconds(), 1) if done else None
    return rows


def runs(
    limit: int = typer.Option(20, min=1, help="How many of each, newest first."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The ETL runs (one per file loaded) and the pipeline runs (flows), newest first."""
    from fournil.settings import get_settings

    engine = warehouse(get_settings())
    etl, flows = etl_runs(engine, limit), pipeline_runs(engine, limit)
    if as_json:
        emit_json({"etl_runs": etl, "pipeline_runs": flows})
        return
    for row in etl:
        row["started"] = _when(row["started_at"])
    table(
        "ETL runs",
        etl,
        ETL_COLUMNS,
    )
    for row in flows:
        row["started"] = _when(row["started_at"])
    table(
        "pipeline runs",
        flows,
        FLOW_COLUMNS,
    )


# --- quarantine ----------------------------------------------------------------------------
def reason_kind(reason: str) -> str:
    """A reason without its row's values: `units_sold: 'abc' is not a whole number` and
    `units_sold: 'x1' is not a whole number` are one kind."""
    text = re.sub(r"'[^']*'", "'...'", reason)  # a quoted value
    text = re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", text)  # a date
    text = re.sub(r"(?<=: )[-+]?\d[\d.]*", "N", text)  # the field's value
    return re.sub(r"\bline \d+", "line N", text)


def quarantine_view(engine: Engine, run: int | None, samples: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from fournil.db.schema import quarantine

    where = [quarantine.c.etl_run_id == run] if run is not None else []
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(quarantine).where(*where)).scalar()
        reasons = conn.execute(select(quarantine.c.reason).where(*where)).scalars().all()
        sample = conn.execute(
            select(
                quarantine.c.etl_run_id,
                quarantine.c.source,
                quarantine.c.line,
                quarantine.c.raw,
                quarantine.c.reason,
            )
            .where(*where)
            .order_by(quarantine.c.quarantine_id.desc())
            .limit(samples)
        ).mappings()
        sample_rows = [dict(r) for r in sample]
    kinds = Counter(reason_kind(part) for reason in reasons for part in reason.split("; "))
    grouped = [{"reason": kind, "rows": n} for kind, n in kinds.most_common()]
    return {"run": run, "rows": total, "reasons": grouped, "samples": sample_rows}


def quarantine(
    run: int = typer.Option(None, help="Only this ETL run (see `fournil runs`)."),
    samples: int = typer.Option(5, min=0, help="Sample rows to show, newest first."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Rows the ETL refused: how many for each reason, and sample rows as they came."""
    from fournil.settings import get_settings

    view = quarantine_view(warehouse(get_settings()), run, samples)
    if as_json:
        emit_json(view)
        return
    scope = f"ETL run {run}" if run is not None else "every run"
    console.print(f"{view['rows']:,} quarantined rows ({scope})", highlight=False)
    table("reasons", view["reasons"], ["rows", "reason"])
    for row in view["samples"]:
        row["file"] = str(row["source"]).rsplit("/", 1)[-1]
        row["row"] = ", ".join(f"{k}={v}" for k, v in row["raw"].items())
    table("sample rows", view["samples"], ["etl_run_id", "file", "line", "row", "reason"])


# --- forecasts -----------------------------------------------------------------------------
@forecasts_app.command("show")
def show(
    store: int = typer.Option(..., help="The store."),
    product: int = typer.Option(None, help="Only this product."),
    days: int = typer.Option(7, min=1, max=28, help="Days ahead."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The newest forecasts of a store (one product, or all) for the next days, with their
    intervals and the model that made them."""
    from fournil.export import upcoming
    from fournil.settings import get_settings

    data = upcoming(warehouse(get_settings()), days, [store])
    frame = data.frame
    if product is not None and not frame.empty:
        frame = frame[frame["product_id"] == product]
    if frame.empty:
        raise fail(f"no forecasts for store {store}" + (f", product {product}" if product else ""))
    rows = [
        {
            "date": r["target_date"],
            "day": r["weekday"][:3],
            "product_id": int(r["product_id"]),
            "product": r["product"],
            "forecast": round(float(r["yhat"]), 1),
            "low": None if r["yhat_lower"] is None else round(float(r["yhat_lower"]), 1),
            "high": None if r["yhat_upper"] is None else round(float(r["yhat_upper"]), 1),
            "model": f"{r['model_name']} v{r['model_version']}",
        }
        for r in frame.to_dict("records")
    ]
    if as_json:
        emit_json({"store_id": store, "forecast_date": data.forecast_date, "forecasts": rows})
        return
    table(f"store {store}: forecasts made on {data.forecast_date}", rows)


# --- status --------------------------------------------------------------------------------
def status_view(engine: Engine, settings: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from fournil import registry
    from fournil.db.schema import etl_runs as runs
    from fournil.db.schema import forecasts, pipeline_runs, sales

    with engine.connect() as conn:
        last_sale, n_sales = conn.execute(select(func.max(sales.c.sale_date), func.count())).one()
        last_load = conn.execute(
            select(func.max(runs.c.finished_at)).where(runs.c.status == "success")
        ).scalar()
        made = conn.execute(select(func.max(forecasts.c.forecast_date))).scalar()
        latest = conn.execute(
            select(pipeline_runs.c.flow, func.max(pipeline_runs.c.started_at).label("at")).group_by(
                pipeline_runs.c.flow
            )
        ).all()
        last_runs = []
        for flow, at in latest:
            row = conn.execute(
                select(pipeline_runs.c.status, pipeline_runs.c.error).where(
                    pipeline_runs.c.flow == flow, pipeline_runs.c.started_at == at
                )
            ).first()
            status, error = (row.status, row.error) if row else (None, None)
            last_runs.append({"flow": flow, "started": _when(at), "status": status, "error": error})
    try:
        client = registry.configure(settings)
        champion = registry.alias_version(client, settings.model_name, registry.CHAMPION)
        challenger = registry.alias_version(client, settings.model_name, registry.CHALLENGER)
        if challenger == champion:  # a promoted challenger is just the champion
            challenger = None
        registry_error = None
    except Exception as exc:  # the registry's absence is part of the status, not a failure
        champion = challenger = None
        registry_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    today = dt.date.today()
    return {
        "warehouse": {
            "sales_rows": n_sales,
            "last_sales_day": last_sale,
            "days_behind": (today - last_sale).days if last_sale else None,
            "last_successful_load": _when(last_load),
        },
        "models": {
            "name": settings.model_name,
            "champion": champion,
            "challenger": challenger,
            "registry_error": registry_error,
        },
        "forecasts": {"newest_forecast_date": made},
        "last_runs": sorted(last_runs, key=lambda r: str(r["flow"])),
        "alerts": alerts_firing(settings),
    }


def alerts_firing(settings: Any) -> dict[str, Any]:
    """Alertmanager's active alerts, when FOURNIL_ALERTMANAGER_URL names it."""
    url = settings.alertmanager_url
    if not url:
        return {"source": None, "firing": [], "note": "set FOURNIL_ALERTMANAGER_URL to list them"}
    import httpx

    try:
        got = httpx.get(f"{url.rstrip('/')}/api/v2/alerts", params={"active": "true"}, timeout=5)
        got.raise_for_status()
    except httpx.HTTPError as exc:
        return {"source": url, "firing": [], "note": f"Alertmanager unreachable: {exc}"}
    firing = [
        {"alert": a["labels"].get("alertname"), "severity": a["labels"].get("severity")}
        for a in got.json()
        if a.get("status", {}).get("state") == "active"
    ]
    return {"source": url, "firing": firing, "note": None}


def status(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """One screen: how fresh the warehouse is, the champion, the last run of each flow, and
    the alerts firing."""
    from fournil.settings import get_settings

    settings = get_settings()
    view = status_view(warehouse(settings), settings)
    if as_json:
        emit_json(view)
        return
    w, m = view["warehouse"], view["models"]
    behind = f" ({w['days_behind']} days ago)" if w["days_behind"] is not None else ""
    console.print(
        f"[bold]warehouse[/] {w['sales_rows']:,} sales rows, last sales day "
        f"{w['last_sales_day'] or '-'}{behind}; last load {w['last_successful_load'] or 'never'}",
        highlight=False,
    )
    models = f"champion v{m['champion']}" if m["champion"] else "[yellow]no champion[/]"
    if m["challenger"]:
        models += f", challenger v{m['challenger']}"
    if m["registry_error"]:
        models = f"[red]registry unreachable[/] ({m['registry_error']})"
    console.print(f"[bold]models[/] {m['name']}: {models}", highlight=False)
    made = view["forecasts"]["newest_forecast_date"]
    console.print(f"[bold]forecasts[/] newest made on {made or 'never'}", highlight=False)
    table("last run of each flow", view["last_runs"], ["flow", "started", "status", "error"])
    alerts = view["alerts"]
    if alerts["note"]:
        console.print(f"[bold]alerts[/] {alerts['note']}", highlight=False)
    else:
        names = ", ".join(f"{a['alert']} ({a['severity']})" for a in alerts["firing"])
        console.print(f"[bold]alerts[/] {names or 'none firing'}", highlight=False)
