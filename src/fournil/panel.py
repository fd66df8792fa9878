"""The warehouse's sales as a dense panel: one row per store x product series, one column per day.

Training, backtests, batch forecasts and the API all read history through this module, and
turn it into model inputs with `fournil.features` only: there is no other copy of that logic.
Missing days are NaN; stock-out days keep their (censored) units and are flagged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Engine, select

from fournil.db.schema import products, sales, stores


@dataclass
class Panel:
    """Dense daily matrices, shape (n_series, n_days), float32 with NaN for missing days."""

    series: pd.DataFrame  # store_id, product_id, family, city, region, opened_on (one row each)
    start: dt.date
    units: np.ndarray
    promo: np.ndarray
    stock_out: np.ndarray  # 1, 0, or NaN (not reported / missing day)
    price: np.ndarray
    siblings_on_promo: np.ndarray = field(init=False)
    #: days without a row taken as zero sales when loaded (settings.absent_days = "zero")
    filled_days: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self.siblings_on_promo = siblings_on_promo(self.series, self.promo)

    @property
    def n_days(self) -> int:
        return int(self.units.shape[1])

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.n_days - 1)

    def series_rows(self) -> dict[tuple[int, int], int]:
        """(store_id, product_id) -> the series' row in the matrices."""
        pairs = zip(self.series["store_id"], self.series["product_id"], strict=True)
        return {(int(s), int(p)): row for row, (s, p) in enumerate(pairs)}

    def day_index(self, day: dt.date) -> int:
        return (day - self.start).days

    def date_of(self, index: int | np.ndarray) -> np.ndarray:
        return np.datetime64(self.start, "D") + np.asarray(index, dtype="timedelta64[D]")

    def subset(self, rows: np.ndarray) -> Panel:
        """The panel restricted to some series (e.g. one segment)."""
        return Panel(
            series=self.series.iloc[rows].reset_index(drop=True),
            start=self.start,
            units=self.units[rows],
            promo=self.promo[rows],
            stock_out=self.stock_out[rows],
            price=self.price[rows],
        )

    def snapshot_hash(self) -> str:
        """A hash of the data the panel holds (for MLflow's data snapshot)."""
        import hashlib

        digest = hashlib.sha256()
        digest.update(str(self.start).encode())
        digest.update(self.series[["store_id", "product_id"]].to_numpy().tobytes())
        for matrix in (self.units, self.promo, self.stock_out, self.price):
            digest.update(np.nan_to_num(matrix, nan=-1.0).tobytes())
        return digest.hexdigest()[:16]


def siblings_on_promo(series: pd.DataFrame, promo: np.ndarray) -> np.ndarray:
    """For each series and day: how many other products of the same family and store are on
    promotion (the cannibalisation driver)."""
    on = np.nan_to_num(promo, nan=0.0)
    groups = series.groupby(["store_id", "family"], sort=False).indices
    out = np.zeros_like(on)
    for rows in groups.values():
        total = on[rows].sum(axis=0)
        out[rows] = total[None, :] - on[rows]
    return out


def series_attributes(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Store and product attributes the features use."""
    with engine.connect() as conn:
        store_frame = pd.DataFrame(
            conn.execute(
                select(
                    stores.c.store_id,
                    stores.c.city,
                    stores.c.region,
                    stores.c.opened_on,
                    stores.c.closed_on,
                )
            ).all(),
            columns=["store_id", "city", "region", "opened_on", "closed_on"],
        )
        product_frame = pd.DataFrame(
            conn.execute(select(products.c.product_id, products.c.family)).all(),
            columns=["product_id", "family"],
        )
    return store_frame, product_frame


def load_panel(
    engine: Engine,
    start: dt.date | None = None,
    end: dt.date | None = None,
    store_ids: list[int] | None = None,
    absent_days: str | None = None,
) -> Panel:
    """Read sales between `start` and `end` (inclusive; default: all) into a dense panel.
    With `absent_days="zero"` (settings.absent_days), a day without a row from a series'
    first recorded day on is a day without sales (`fill_absent`)."""
    if engine.dialect.name == "postgresql":
        panel = _load_panel_copy(engine, start, end, store_ids)
    else:
        panel = _load_panel_rows(engine, start, end, store_ids)
    if absent_days == "zero":
        fill_absent(panel)
    return panel


def absent(units: np.ndarray) -> np.ndarray:
    """Days without a row from each series' first recorded day to the panel's last day."""
    recorded = np.isfinite(units)
    first = np.where(recorded.any(axis=1), recorded.argmax(axis=1), units.shape[1])
    return (np.arange(units.shape[1])[None, :] >= first[:, None]) & ~recorded


def fill_absent(panel: Panel) -> int:
    """Take absent days (`absent`) as zero sales, in place: units 0; price, promo and stock-out
    stay unknown. In a window (the API's, a forecast's), a series' life starts at its first
    row in the window. Returns how many days were filled."""
    mask = absent(panel.units)
    panel.units[mask] = 0.0
    filled = int(mask.sum())
    panel.filled_days += filled
    return filled


#: Bytes of COPY output parsed at a time: bounds the text held while reading.
_COPY_BLOCK = 64 << 20
_COPY_TYPES = {
    "store_id": pa.int32(),
    "product_id": pa.int32(),
    "day": pa.int32(),  # days since 1970-01-01
    "units": pa.float32(),
    "price": pa.float32(),
    "promo": pa.int8(),
    "stock": pa.int8(),
}


def _load_panel_copy(
    engine: Engine, start: dt.date | None, end: dt.date | None, store_ids: list[int] | None
) -> Panel:
    """PostgreSQL: `COPY ... TO STDOUT` parsed by Arrow block by block into compact columns
    (22 bytes a row instead of a Python tuple's ~470), then scattered into the matrices."""
    where: list[str] = []
    params: list[object] = []
    if start is not None:
        where.append("sale_date >= %s")
        params.append(start)
    if end is not None:
        where.append("sale_date <= %s")
        params.append(end)
    if store_ids is not None:
        where.append("store_id = ANY(%s)")
        params.append(list(store_ids))
    sql = (
        "COPY (SELECT store_id, product_id, sale_date - DATE '1970-01-01', units_sold, price, "
        "promo::int, stock_out::int FROM sales"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + ") TO STDOUT (FORMAT csv)"
    )
    options = pacsv.ConvertOptions(column_types=_COPY_TYPES)
    read = pacsv.ReadOptions(column_names=list(_COPY_TYPES))
    parts: list[pa.Table] = []
    pending = bytearray()

    def parse(block: bytes | bytearray) -> None:
        if block:
            parts.append(pacsv.read_csv(pa.py_buffer(block), read, convert_options=options))

    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(sql, params) as copy:
            for data in copy:
                pending += data
                if len(pending) >= _COPY_BLOCK:
                    cut = pending.rindex(b"\n") + 1
                    parse(pending[:cut])
                    del pending[:cut]
        parse(pending)
        raw.commit()
    finally:
        raw.close()
    if not parts:
        raise ValueError("no sales in the requested window: load some data first")
    table = pa.concat_tables(parts)
    parts.clear()
    store_frame, product_frame = series_attributes(engine)

    def column(name: str, dtype: type) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), dtype=dtype)

    store = column("store_id", np.int64)
    product = column("product_id", np.int64)
    day = column("day", np.int64)
    keys, code = np.unique((store << 32) | product, return_inverse=True)  # by store, product
    del store, product
    epoch = dt.date(1970, 1, 1)
    first = start or epoch + dt.timedelta(days=int(day.min()))
    last = end or epoch + dt.timedelta(days=int(day.max()))
    day -= (first - epoch).days
    n_days = (last - first).days + 1
    series = _series(
        pd.DataFrame({"store_id": keys >> 32, "product_id": keys & 0xFFFFFFFF}),
        store_frame,
        product_frame,
    )

    def matrix(name: str) -> np.ndarray:
        values = table.column(name).to_numpy(zero_copy_only=False)  # nulls: NaN
        return _scatter((len(keys), n_days), code, day, values)

    return Panel(
        series=series,
        start=first,
        units=matrix("units"),
        promo=matrix("promo"),
        stock_out=matrix("stock"),
        price=matrix("price"),
    )


def _scatter(
    shape: tuple[int, int], series: np.ndarray, day: np.ndarray, values: np.ndarray
) -> np.ndarray:
    """A float32 (series x day) matrix holding `values` at their cells, NaN elsewhere."""
    out = np.full(shape, np.nan, dtype=np.float32)
    out[series, day] = np.asarray(values, dtype=np.float32)
    return out


def _series(
    keys: pd.DataFrame, store_frame: pd.DataFrame, product_frame: pd.DataFrame
) -> pd.DataFrame:
    """The series' attributes, one row per (store_id, product_id) of `keys`, in its order."""
    return keys.merge(product_frame, on="product_id", how="left").merge(
        store_frame[["store_id", "city", "region", "opened_on"]], on="store_id", how="left"
    )


def _load_panel_rows(
    engine: Engine, start: dt.date | None, end: dt.date | None, store_ids: list[int] | None
) -> Panel:
    """Any database (SQLite in local mode): rows through SQLAlchemy, pivoted by pandas."""
    query = select(
        sales.c.store_id,
        sales.c.product_id,
        sales.c.sale_date,
        sales.c.units_sold,
        sales.c.price,
        sales.c.promo,
        sales.c.stock_out,
    )
    if start is not None:
        query = query.where(sales.c.sale_date >= start)
    if end is not None:
        query = query.where(sales.c.sale_date <= end)
    if store_ids is not None:
        query = query.where(sales.c.store_id.in_(store_ids))
    with engine.connect() as conn:
        cursor = conn.execute(query).cursor  # plain DB-API tuples: much faster than Rows
        frame = pd.DataFrame.from_records(
            cursor.fetchall() if cursor is not None else [],
            columns=["store_id", "product_id", "sale_date", "units", "price", "promo", "stock"],
        )
    store_frame, product_frame = series_attributes(engine)
    return panel_from_frame(frame, store_frame, product_frame, start, end)


def panel_from_frame(
    frame: pd.DataFrame,
    store_frame: pd.DataFrame,
    product_frame: pd.DataFrame,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> Panel:
    """Pivot long sales rows (store_id, product_id, sale_date, units, price, promo, stock) into
    a panel. Series are sorted by (store_id, product_id)."""
    if frame.empty:
        raise ValueError("no sales in the requested window: load some data first")
    days = pd.to_datetime(frame["sale_date"]).dt.date
    first = start or min(days)
    last = end or max(days)
    n_days = (last - first).days + 1
    keys = (
        frame[["store_id", "product_id"]].drop_duplicates().sort_values(["store_id", "product_id"])
    )
    keys = keys.reset_index(drop=True)
    series = _series(keys, store_frame, product_frame)
    code = pd.MultiIndex.from_frame(keys).get_indexer(
        pd.MultiIndex.from_frame(frame[["store_id", "product_id"]])
    )
    day = np.fromiter(((d - first).days for d in days), dtype=np.int64, count=len(days))

    def matrix(values: pd.Series) -> np.ndarray:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float32, na_value=np.nan)
        return _scatter((len(keys), n_days), code, day, numbers)

    return Panel(
        series=series,
        start=first,
        units=matrix(frame["units"]),
        promo=matrix(frame["promo"].astype("float")),
        stock_out=matrix(frame["stock"].astype("float")),
        price=matrix(frame["price"]),
    )
