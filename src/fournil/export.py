"""Forecasts for the people who bake: the next days' batch forecasts with their intervals, as a
workbook formatted for reading (one sheet per store, an overview first) or as one CSV.

Seed 000's first delivery was exactly this, an Excel file by e-mail each morning, before any
API. `fournil export` writes it; the `report` deployment e-mails it (`fournil.report`).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select

from fournil.db.schema import forecasts, products, stores

COLUMNS = {  # frame column -> heading
    "target_date": "Date",
    "weekday": "Day",
    "product_id": "Product id",
    "product": "Product",
    "yhat": "Forecast",
    "yhat_lower": "Low (80%)",
    "yhat_upper": "High (80%)",
}


@dataclass(frozen=True)
class Upcoming:
    """The newest batch forecasts from `forecast_date` on, one row per store, product and
    day, with store and product names."""

    forecast_date: dt.date | None
    frame: pd.DataFrame

    @property
    def models(self) -> list[str]:
        pairs = self.frame[["model_name", "model_version"]].drop_duplicates()
        return [f"{n} v{v}" for n, v in pairs.itertuples(index=False)]


def upcoming(engine: Engine, days: int = 7, store_ids: list[int] | None = None) -> Upcoming:
    """The forecasts of the newest forecast date for its next `days` target days: per store,
    product and day the newest row written (the champion of that day)."""
    with engine.connect() as conn:
        newest = conn.execute(select(func.max(forecasts.c.forecast_date))).scalar()
        if newest is None:
            return Upcoming(None, pd.DataFrame(columns=[*COLUMNS, "store_id", "store"]))
        query = (
            select(
                forecasts.c.store_id,
                stores.c.name.label("store"),
                stores.c.city,
                forecasts.c.product_id,
                products.c.name.label("product"),
                forecasts.c.target_date,
                forecasts.c.yhat,
                forecasts.c.yhat_lower,
                forecasts.c.yhat_upper,
                forecasts.c.model_name,
                forecasts.c.model_version,
                forecasts.c.created_at,
            )
            .join(stores, stores.c.store_id == forecasts.c.store_id)
            .join(products, products.c.product_id == forecasts.c.product_id)
            .where(
                forecasts.c.forecast_date == newest,
                forecasts.c.target_date > newest,
                forecasts.c.target_date <= newest + dt.timedelta(days=days),
            )
        )
        if store_ids:
            query = query.where(forecasts.c.store_id.in_(store_ids))
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    if frame.empty:
        return Upcoming(newest, pd.DataFrame(columns=[*COLUMNS, "store_id", "store"]))
    frame = (
        frame.sort_values("created_at")
        .drop_duplicates(["store_id", "product_id", "target_date"], keep="last")
        .sort_values(["store_id", "target_date", "product_id"])
        .drop(columns="created_at")
        .reset_index(drop=True)
    )
    frame["target_date"] = pd.to_datetime(frame["target_date"]).dt.date
    frame["weekday"] = [d.strftime("%A") for d in frame["target_date"]]
    return Upcoming(newest, frame)


def write_csv(data: Upcoming, path: Path) -> Path:
    """One CSV, every store: what a spreadsheet or a script reads back."""
    columns = ["store_id", "store", *COLUMNS, "model_name", "model_version"]
    out = data.frame[columns].copy()
    for column in ("yhat", "yhat_lower", "yhat_upper"):
        out[column] = out[column].round(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def _units(value: float | None) -> int | None:
    """A forecast as whole units (None for a missing interval)."""
    return None if value is None or math.isnan(value) else round(value)


def _sheet_title(store_id: int, name: str, taken: set[str]) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\, unique."""
    title = re.sub(r"[\[\]:*?/\\]", " ", f"{store_id} {name}")[:31].strip()
    while title in taken:
        title = title[:28] + f"~{len(taken)}"
    taken.add(title)
    return title


def write_workbook(data: Upcoming, path: Path) -> Path:
    """An overview sheet (when, which models, one line per store) and one sheet per store: a
    table of days and products with the forecast and its interval, rounded to whole units,
    headings frozen, dates as dates, widths to fit."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    bold, heading_fill = Font(bold=True), PatternFill("solid", fgColor="F3E3C3")
    book = Workbook()
    overview = book.active
    assert overview is not None
    overview.title = "Overview"
    made = data.forecast_date.isoformat() if data.forecast_date else "no forecasts yet"
    overview.append(["Fournil forecasts"])
    overview["A1"].font = Font(bold=True, size=14)
    overview.append(["Forecast made on", made])
    overview.append(["Models", ", ".join(data.models) or "-"])
    overview.append(["Generated at", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")])
    overview.append([])
    overview.append(["Store", "City", "Sheet", "Units forecast (all days)"])
    for cell in overview[6]:
        cell.font, cell.fill = bold, heading_fill
    taken: set[str] = {"Overview"}
    for store_id in sorted(data.frame["store_id"].unique()):
        rows = data.frame[data.frame["store_id"] == store_id]
        store = str(rows["store"].iloc[0])
        title = _sheet_title(int(store_id), store, taken)
        overview.append([str(store), str(rows["city"].iloc[0]), title, round(rows["yhat"].sum())])
        sheet = book.create_sheet(title)
        sheet.append([f"{store} - forecasts made on {made}"])
        sheet["A1"].font = Font(bold=True, size=12)
        sheet.append(list(COLUMNS.values()))
        for cell in sheet[2]:
            cell.font, cell.fill = bold, heading_fill
            cell.alignment = Alignment(horizontal="center")
        for row in rows.to_dict("records"):
            units = [_units(row[c]) for c in ("yhat", "yhat_lower", "yhat_upper")]
            sheet.append(
                [row["target_date"], row["weekday"], int(row["product_id"]), row["product"], *units]
            )
        for cell in sheet["A"][2:]:
            cell.number_format = "yyyy-mm-dd"
        sheet.freeze_panes = "A3"
        for index, width in enumerate((12, 11, 11, 24, 10, 10, 10), start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
    for index, width in enumerate((28, 16, 24, 24), start=1):
        overview.column_dimensions[get_column_letter(index)].width = width
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path
