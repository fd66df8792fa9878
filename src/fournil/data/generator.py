"""A realistic, seeded generator of a bakery chain's daily sales.

Demand for store s, product p, day d is

    lambda = base_demand[p] * store_scale[s] * trend[s, d] * ramp_up[s, d]
             * weekly[family(p), weekday(d)] * yearly[p, d] * summer[s, d]
             * holiday[family(p), d] * (price[s, p, d] / reference_price[s, p]) ** elasticity[p]
             * promo_uplift[s, p, d] * cannibalisation[s, p, d]

and units demanded follow a negative binomial (gamma-Poisson) with mean lambda and shape
`noise_shape` (variance lambda + lambda**2 / noise_shape). The bakery bakes a batch a little
larger than expected demand, and sometimes a short one: sales are demand censored at the batch
size, with a `stock_out` flag (NULL for stores that do not report it). Stores open mid-period,
close on Christmas and New Year's Day, and miss a few days of data. The noise-free `lambda` is
written beside the drop (`truth/expected_demand.parquet`) so forecast errors can be compared
with the noise floor.

The output streams store by store, so memory stays flat at any size: each store draws from its
own random stream (`seed`, store id), which also makes the output independent of batching.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fournil.calendar import business_today, holiday_names
from fournil.data.catalogue import CATALOGUE, CITIES, HOLIDAY_EFFECT, VARIANTS, WEEKLY_PROFILE
from fournil.settings import DEFAULT_COUNTRY, DEFAULT_TIMEZONE

FAMILIES = tuple(WEEKLY_PROFILE)
SALES_FILE = "sales"
STORES_FILE = "stores.csv"
PRODUCTS_FILE = "products.csv"
EXPECTED_FILE = Path("truth") / "expected_demand.parquet"
BIG_CITIES_AUGUST_DIP = {"Paris", "Lyon", "Boulogne-Billancourt", "Versailles", "Lille"}
SEASIDE_CITIES = {"Nice", "Marseille", "Montpellier", "Bordeaux", "Nantes"}
CLOSED_DAYS = ((12, 25), (1, 1))  # (month, day) the shops are closed
FESTIVE_EVES = ((12, 24), (12, 31))  # patisserie sells double

SALES_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("store_id", pa.int32()),
        ("product_id", pa.int32()),
        ("units_sold", pa.int32()),
        ("price", pa.float64()),
        ("promo", pa.bool_()),
        ("stock_out", pa.bool_()),
    ]
)
EXPECTED_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("store_id", pa.int32()),
        ("product_id", pa.int32()),
        ("expected_units", pa.float64()),
    ]
)


@dataclass(frozen=True)
class GeneratorConfig:
    stores: int = 20
    products: int = 10
    days: int = 730
    end_date: dt.date | None = None  # default: yesterday in the business's time zone
    seed: int = 42
    country: str = DEFAULT_COUNTRY
    timezone: str = DEFAULT_TIMEZONE  # whose "yesterday" end_date defaults to
    fmt: Literal["csv", "parquet"] = "csv"
    new_store_share: float = 0.15
    missing_day_rate: float = 0.01
    stock_out_report_share: float = 0.7
    local_promos_per_year: float = 3.0
    chain_promos_per_year: float = 4.0
    noise_shape: float = 20.0
    bad_row_rate: float = 0.0  # CSV only: share of rows corrupted to exercise the quarantine

    def __post_init__(self) -> None:
        if self.stores < 1 or self.products < 1 or self.days < 14:
            raise ValueError("need at least 1 store, 1 product and 14 days")
        if not 0 <= self.bad_row_rate < 0.5:
            raise ValueError("bad_row_rate must be in [0, 0.5)")
        if self.bad_row_rate and self.fmt != "csv":
            raise ValueError("bad rows can only be injected into CSV output")

    @property
    def last_day(self) -> dt.date:
        return self.end_date or business_today(self.timezone) - dt.timedelta(days=1)

    @property
    def first_day(self) -> dt.date:
        return self.last_day - dt.timedelta(days=self.days - 1)


@dataclass
class GeneratedData:
    out_dir: Path
    stores_path: Path
    products_path: Path
    sales_path: Path
    expected_path: Path
    start: dt.date
    end: dt.date
    rows: int = 0
    bad_rows: int = 0
    stores: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    products: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)


# --- the chain ---------------------------------------------------------------------------------


def make_products(cfg: GeneratorConfig) -> pd.DataFrame:
    """The catalogue: public columns plus the demand parameters (prefixed `_`)."""
    rng = np.random.default_rng([cfg.seed, 0])
    rows = []
    for i in range(cfg.products):
        spec = CATALOGUE[i % len(CATALOGUE)]
        round_ = i // len(CATALOGUE)
        name = spec.name if round_ == 0 else f"{spec.name} {VARIANTS[(round_ - 1) % len(VARIANTS)]}"
        if round_ > len(VARIANTS):
            name = f"{name} #{round_}"
        scale = 1.0 if round_ == 0 else float(rng.uniform(0.15, 0.5))
        rows.append(
            {
                "product_id": i + 1,
                "name": name,
                "family": spec.family,
                "base_price": round(spec.base_price * (1 + 0.15 * round_ * rng.random()), 2),
                "launched_on": None,
                "_base_demand": spec.base_demand * scale,
                "_elasticity": spec.elasticity,
                "_amplitude": spec.season_amplitude,
                "_peak_doy": spec.season_peak_doy,
                # a chain-wide price rise (inflation) at some point of the period
                "_price_step_day": int(rng.integers(cfg.days // 4, 3 * cfg.days // 4 + 1)),
                "_price_step": float(rng.uniform(0.0, 0.08)),
            }
        )
    return pd.DataFrame(rows)


def make_stores(cfg: GeneratorConfig) -> pd.DataFrame:
    """The stores: public columns plus the demand parameters (prefixed `_`)."""
    weights = np.array([w for _, _, w in CITIES])
    first = cfg.first_day
    rows = []
    per_city: dict[str, int] = {}
    for i in range(cfg.stores):
        rng = np.random.default_rng([cfg.seed, 1, i])  # one stream per store: N-independent
        city, region, _ = CITIES[rng.choice(len(CITIES), p=weights / weights.sum())]
        per_city[city] = per_city.get(city, 0) + 1
        is_new = i > 0 and rng.random() < cfg.new_store_share
        if is_new:
            opened = first + dt.timedelta(days=int(rng.integers(30, max(31, cfg.days - 60))))
        else:
            opened = first - dt.timedelta(days=int(rng.integers(200, 5000)))
        rows.append(
            {
                "store_id": i + 1,
                "name": f"Fournil {city} {per_city[city]}",
                "city": city,
                "region": region,
                "opened_on": opened,
                "closed_on": None,
                "size_m2": round(float(rng.uniform(40, 220)), 1),
                "_scale": float(rng.lognormal(0.0, 0.35)),
                "_trend": float(rng.normal(0.02, 0.04)),  # yearly growth
                "_price_index": 1.08 if region == "Ile-de-France" else 1.0,
                "_reports_stock_out": bool(rng.random() < cfg.stock_out_report_share),
            }
        )
    return pd.DataFrame(rows)


def _chain_promos(cfg: GeneratorConfig, n_products: int, n_days: int) -> np.ndarray:
    """Chain-wide promotion discounts, shape (products, days); 0 where no promo."""
    rng = np.random.default_rng([cfg.seed, 2])
    discount = np.zeros((n_products, n_days))
    for p in range(n_products):
        n = rng.poisson(cfg.chain_promos_per_year * n_days / 365)
        for start in rng.integers(0, n_days, size=n):
            discount[p, start : start + int(rng.integers(3, 8))] = rng.choice([0.15, 0.2, 0.3])
    return discount


SHORT_BATCH_RATE = 0.02  # days the bakery bakes too little (oven down, staff missing)


def batch_size(lam: np.ndarray, shape: float) -> np.ndarray:
    """What the bakery bakes: expected demand plus 1.65 sd (a 95% service level), plus one."""
    return np.ceil(lam + 1.65 * np.sqrt(lam + lam**2 / shape)) + 1


# --- demand ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Calendar:
    dates: np.ndarray  # datetime64[D], shape (days,)
    weekday: np.ndarray
    doy: np.ndarray
    holiday: np.ndarray  # bool
    closed: np.ndarray  # bool
    festive_eve: np.ndarray  # bool
    august: np.ndarray  # bool, 1-25 August
    summer: np.ndarray  # bool, July and August


def _calendar(cfg: GeneratorConfig) -> _Calendar:
    index = pd.date_range(cfg.first_day, cfg.last_day, freq="D")
    month, day = index.month.to_numpy(), index.day.to_numpy()
    hol = holiday_names(cfg.country, cfg.first_day, cfg.last_day)

    def on(days: tuple[tuple[int, int], ...]) -> np.ndarray:
        return np.logical_or.reduce([(month == m) & (day == d) for m, d in days])

    return _Calendar(
        dates=index.to_numpy().astype("datetime64[D]"),
        weekday=index.day_of_week.to_numpy(),
        doy=index.day_of_year.to_numpy(),
        holiday=np.asarray(index.isin(pd.DatetimeIndex(list(hol))), dtype=bool),
        closed=on(CLOSED_DAYS),
        festive_eve=on(FESTIVE_EVES),
        august=(month == 8) & (day <= 25),
        summer=(month == 7) | (month == 8),
    )


def _store_block(
    cfg: GeneratorConfig,
    store: pd.Series,
    products: pd.DataFrame,
    cal: _Calendar,
    chain_discount: np.ndarray,
) -> tuple[pa.Table, pa.Table]:
    """Sales and expected demand of one store, as Arrow tables (product-major, then date)."""
    rng = np.random.default_rng([cfg.seed, 1000, int(store.store_id)])
    n_p, n_d = len(products), len(cal.dates)
    fam = products.family.map({f: i for i, f in enumerate(FAMILIES)}).to_numpy()
    weekly = np.array([WEEKLY_PROFILE[f] for f in FAMILIES])[fam][:, cal.weekday]
    amplitude = products._amplitude.to_numpy()[:, None]
    peak = products._peak_doy.to_numpy()[:, None]
    yearly = 1 + amplitude * np.cos(2 * np.pi * (cal.doy[None, :] - peak) / 365.25)
    holiday_effect = np.array([HOLIDAY_EFFECT[f] for f in FAMILIES])[fam][:, None]
    holiday = np.where(cal.holiday[None, :], holiday_effect, 1.0)
    is_patisserie = (products.family == "patisserie").to_numpy()[:, None]
    holiday = holiday * np.where(is_patisserie & cal.festive_eve[None, :], 2.2, 1.0)

    if store.city in BIG_CITIES_AUGUST_DIP:
        summer = np.where(cal.august, 0.72, 1.0)
    elif store.city in SEASIDE_CITIES:
        summer = np.where(cal.summer, 1.18, 1.0)
    else:
        summer = np.ones(n_d)

    # prices: regular price (with the chain's price rise), then promotions
    day_idx = np.arange(n_d)[None, :]
    reference = products.base_price.to_numpy()[:, None] * store["_price_index"]
    step = products._price_step.to_numpy()[:, None]
    step_day = products._price_step_day.to_numpy()[:, None]
    regular = reference * (1 + step * (day_idx >= step_day))
    discount = chain_discount.copy()
    n_local = rng.poisson(cfg.local_promos_per_year * n_d / 365, size=n_p)
    for p in range(n_p):
        for start in rng.integers(0, n_d, size=n_local[p]):
            discount[p, start : start + int(rng.integers(2, 6))] = rng.choice([0.2, 0.25, 0.3])
    promo = discount > 0
    price = np.round(regular * (1 - discount) * 20) / 20  # to 5 cents
    price_effect = (price / reference) ** products._elasticity.to_numpy()[:, None]
    uplift = np.where(promo, 1.15, 1.0)
    # cannibalisation: each sibling (same family) on promotion takes 8% of this product's demand
    same_family = (fam[:, None] == fam[None, :]) & ~np.eye(n_p, dtype=bool)
    siblings_on_promo = same_family.astype(float) @ promo.astype(float)
    cannibal = np.maximum(0.92**siblings_on_promo, 0.6)

    years = (cal.dates - cal.dates[0]).astype(float) / 365.25
    trend = (1 + store["_trend"]) ** years
    opened = np.datetime64(store.opened_on, "D")
    age = (cal.dates - opened).astype(float)
    ramp = np.clip(0.6 + 0.4 * age / 90, 0.6, 1.0)

    lam = (
        products._base_demand.to_numpy()[:, None]
        * store["_scale"]
        * (trend * ramp * summer)[None, :]
        * weekly
        * yearly
        * holiday
        * price_effect
        * uplift
        * cannibal
    )
    k = cfg.noise_shape
    demand = rng.poisson(lam * rng.gamma(k, 1 / k, size=lam.shape))
    short_batch = rng.random(lam.shape) < SHORT_BATCH_RATE
    batch = np.where(
        short_batch,
        np.floor(lam * rng.uniform(0.4, 0.8, size=lam.shape)),
        batch_size(lam, k),
    )
    units = np.minimum(demand, batch).astype(np.int32)
    stock_out = demand > batch

    open_days = (cal.dates >= opened) & ~cal.closed & (rng.random(n_d) >= cfg.missing_day_rate)
    keep = np.broadcast_to(open_days[None, :], (n_p, n_d)).ravel()
    dates = np.broadcast_to(cal.dates[None, :], (n_p, n_d)).ravel()[keep]
    store_ids = np.full(len(dates), int(store.store_id), dtype=np.int32)
    product_ids = np.repeat(products.product_id.to_numpy(np.int32), n_d)[keep]
    stock_col = (
        pa.array(stock_out.ravel()[keep])
        if store["_reports_stock_out"]
        else pa.nulls(len(dates), pa.bool_())
    )
    sales = pa.table(
        [
            pa.array(dates, pa.date32()),
            pa.array(store_ids),
            pa.array(product_ids),
            pa.array(units.ravel()[keep]),
            pa.array(price.ravel()[keep]),
            pa.array(promo.ravel()[keep]),
            stock_col,
        ],
        schema=SALES_SCHEMA,
    )
    expected = pa.table(
        [
            pa.array(dates, pa.date32()),
            pa.array(store_ids),
            pa.array(product_ids),
            pa.array(lam.ravel()[keep]),
        ],
        schema=EXPECTED_SCHEMA,
    )
    return sales, expected


# --- corrupting rows, for demos and tests of the quarantine -------------------------------------


def _corrupt(
    table: pa.Table, rate: float, rng: np.random.Generator, last_day: dt.date
) -> tuple[pa.Table, int]:
    """Cast to text and spoil about `rate` of the rows, in the ways real drops go wrong.

    Returns the table and how many of its rows are bad (a duplicate counts once: its copy).
    """
    frame = table.cast(pa.schema([(f.name, pa.string()) for f in table.schema])).to_pandas()
    n_bad = int(rng.binomial(len(frame), rate))
    if n_bad == 0:
        return pa.Table.from_pandas(frame, preserve_index=False), 0
    rows = rng.choice(len(frame), size=n_bad, replace=False)
    future = (last_day + dt.timedelta(days=400)).isoformat()
    spoilers: list[tuple[str, str]] = [
        ("units_sold", "n/a"),
        ("units_sold", "-4"),
        ("store_id", "99999"),
        ("date", future),
        ("price", "0"),
        ("promo", "maybe"),
    ]
    duplicates = []
    for i, row in enumerate(rows):
        kind = i % (len(spoilers) + 1)
        if kind == len(spoilers):
            duplicates.append(row)
        else:
            column, value = spoilers[kind]
            frame.iat[row, frame.columns.get_loc(column)] = value
    frame = pd.concat([frame, frame.iloc[duplicates]], ignore_index=True)
    return pa.Table.from_pandas(frame, preserve_index=False), n_bad


# --- writing -----------------------------------------------------------------------------------


def generate(
    cfg: GeneratorConfig,
    out_dir: Path,
    on_store_done: Callable[[int], None] | None = None,
) -> GeneratedData:
    """Write stores, products, sales and the expected demand under `out_dir`."""
    out_dir = Path(out_dir)
    (out_dir / EXPECTED_FILE).parent.mkdir(parents=True, exist_ok=True)
    products = make_products(cfg)
    stores = make_stores(cfg)
    public = [c for c in products.columns if not c.startswith("_")]
    products[public].to_csv(out_dir / PRODUCTS_FILE, index=False)
    public = [c for c in stores.columns if not c.startswith("_")]
    stores[public].to_csv(out_dir / STORES_FILE, index=False)

    cal = _calendar(cfg)
    chain_discount = _chain_promos(cfg, len(products), len(cal.dates))
    sales_path = out_dir / f"{SALES_FILE}.{cfg.fmt}"
    result = GeneratedData(
        out_dir=out_dir,
        stores_path=out_dir / STORES_FILE,
        products_path=out_dir / PRODUCTS_FILE,
        sales_path=sales_path,
        expected_path=out_dir / EXPECTED_FILE,
        start=cfg.first_day,
        end=cfg.last_day,
        stores=stores,
        products=products,
    )
    corrupt_rng = np.random.default_rng([cfg.seed, 3])
    text_schema = pa.schema([(f.name, pa.string()) for f in SALES_SCHEMA])
    sales_writer: pacsv.CSVWriter | pq.ParquetWriter
    if cfg.fmt == "csv":
        schema = text_schema if cfg.bad_row_rate else SALES_SCHEMA
        sales_writer = pacsv.CSVWriter(str(sales_path), schema)
    else:
        sales_writer = pq.ParquetWriter(str(sales_path), SALES_SCHEMA, compression="zstd")
    with (
        sales_writer,
        pq.ParquetWriter(
            str(result.expected_path), EXPECTED_SCHEMA, compression="zstd"
        ) as expected_writer,
    ):
        pending: list[pa.Table] = []
        pending_rows = 0
        for i, (_, store) in enumerate(stores.iterrows()):
            sales, expected = _store_block(cfg, store, products, cal, chain_discount)
            pending.append(sales)
            pending_rows += sales.num_rows
            expected_writer.write_table(expected)
            if pending_rows >= 1_000_000 or i == len(stores) - 1:
                batch = pa.concat_tables(pending)
                if cfg.bad_row_rate:
                    batch, n_bad = _corrupt(batch, cfg.bad_row_rate, corrupt_rng, cfg.last_day)
                    result.bad_rows += n_bad
                sales_writer.write_table(batch)
                result.rows += batch.num_rows
                pending, pending_rows = [], 0
            if on_store_done:
                on_store_done(i + 1)
    return result
