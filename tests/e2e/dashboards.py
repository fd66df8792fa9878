"""Run every Grafana panel's queries as Grafana would, and plot them (`make dashboards-preview`).

Grafana's macros get the values Grafana would give them: `$__rate_interval` is 1m (four 15 s
scrapes), `$__timeFilter(column)` the dashboard's time range (here: everything up to now, as
the generated sales are dated in the past).
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from sqlalchemy import create_engine, text

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
STEP = 15


class Result(NamedTuple):
    board: str
    panel: str
    query: str
    rows: list[Any]  # PromQL: (legend, times, values) per series; SQL: result rows
    kind: str  # panel type
    columns: list[str]  # SQL only
    legend: str  # PromQL legendFormat


def _legend(template: str, labels: dict[str, str]) -> str:
    if template in ("", "__auto"):
        return ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__") or "value"
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template)


def _promql(url: str, target: dict[str, Any], start: float) -> list[Any]:
    expr = target["expr"].replace("$__rate_interval", "1m")
    got = httpx.get(
        f"{url}/api/v1/query_range",
        params={"query": expr, "start": start, "end": time.time(), "step": STEP},
        timeout=30,
    ).json()
    assert got["status"] == "success", (expr, got)
    series = []
    for result in got["data"]["result"]:
        points = [(float(t), float(v)) for t, v in result["values"] if math.isfinite(float(v))]
        if points:
            times, values = zip(*points, strict=True)
            legend = _legend(target.get("legendFormat", ""), result["metric"])
            series.append((legend, times, values))
    return series


def _sql(engine: Any, target: dict[str, Any]) -> tuple[list[str], list[Any]]:
    query = re.sub(
        r"\$__timeFilter\(([^)]+)\)",
        r"\1 BETWEEN '2000-01-01'::timestamptz AND now()",
        target["rawSql"],
    )
    with engine.connect() as conn:
        result = conn.execute(text(query))
        return list(result.keys()), [tuple(r) for r in result]


def evaluate_all(prometheus: str, warehouse: str, start: float) -> list[Result]:
    engine = create_engine(warehouse)
    results = []
    try:
        for path in sorted(DASHBOARDS.rglob("*.json")):
            board = json.loads(path.read_text())
            for panel in board["panels"]:
                for target in panel["targets"]:
                    if target["datasource"]["uid"] == "prometheus":
                        query, columns = target["expr"], list[str]()
                        rows = _promql(prometheus, target, start)
                    else:
                        columns, rows = _sql(engine, target)
                        query = target["rawSql"]
                    results.append(
                        Result(
                            board["title"],
                            panel["title"],
                            query,
                            rows,
                            panel["type"],
                            columns,
                            target.get("legendFormat", ""),
                        )
                    )
    finally:
        engine.dispose()
    return results


def render_previews(results: list[Result], out_dir: Path) -> list[Path]:
    """One PNG per dashboard, one subplot per panel, from the same query results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    by_board: dict[str, dict[str, list[Result]]] = {}
    for result in results:
        by_board.setdefault(result.board, {}).setdefault(result.panel, []).append(result)
    written = []
    for board, panels in by_board.items():
        cols = 2
        nrows = math.ceil(len(panels) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(16, 3.6 * nrows), squeeze=False)
        for ax, (title, parts) in zip(axes.flat, panels.items(), strict=False):
            ax.set_title(title, fontsize=10)
            for part in parts:
                _draw(ax, part)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="upper left", ncol=2)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        fig.suptitle(f"Grafana: {board} (from the stack test's data)")
        fig.tight_layout()
        path = out_dir / f"{re.sub(r'[^a-z0-9]+', '-', board.lower())}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written


def _draw(ax: Any, part: Result) -> None:
    import datetime as dt

    if not part.rows:
        ax.text(0.5, 0.5, "no data", ha="center", transform=ax.transAxes, color="red")
        return
    if part.columns and (part.kind == "table" or "time" not in part.columns):
        shown = [[str(v)[:40] for v in row] for row in part.rows[:8]]
        ax.axis("off")
        table = ax.table(cellText=shown, colLabels=part.columns, loc="center")
        table.auto_set_font_size(False)
        table.set_fontsize(6)
        return
    if part.columns:  # SQL time series: long (time, metric, value) or wide (time, a, b, ...)
        index = part.columns.index("time")
        series: dict[str, tuple[list[Any], list[float]]] = {}
        for row in part.rows:
            when = row[index]
            if isinstance(when, dt.date) and not isinstance(when, dt.datetime):
                when = dt.datetime.combine(when, dt.time())
            if "metric" in part.columns:
                name, value = row[part.columns.index("metric")], row[part.columns.index("value")]
                pairs = [(str(name), value)]
            else:
                pairs = [(c, v) for c, v in zip(part.columns, row, strict=True) if c != "time"]
            for name, value in pairs:
                if value is not None:
                    series.setdefault(name, ([], []))[0].append(when)
                    series[name][1].append(float(value))
        for name, (xs, ys) in list(series.items())[:12]:
            ax.plot(xs, ys, marker="o", markersize=2, label=name)
        return
    for legend, times, values in part.rows[:12]:
        stamps = [dt.datetime.fromtimestamp(t) for t in times]
        ax.plot(stamps, values, label=legend)
