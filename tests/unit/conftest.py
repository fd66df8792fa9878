"""Fixtures for the model tests: a generated chain as an in-memory panel (no database)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.panel import Panel, panel_from_frame


def units_panel(
    units: np.ndarray, price: np.ndarray | None = None, start: dt.date = dt.date(2026, 1, 1)
) -> Panel:
    """A panel of one store's products from a (series, days) units matrix: no promotion, no
    stock-out, a price of `price` (default 1 everywhere)."""
    n = units.shape[0]
    series = pd.DataFrame(
        {
            "store_id": np.ones(n, int),
            "product_id": np.arange(1, n + 1),
            "family": "viennoiserie",
            "city": "Lyon",
            "region": "ARA",
            "opened_on": dt.date(2020, 1, 1),
        }
    )
    zeros = np.zeros_like(units)
    price = zeros + 1 if price is None else price
    return Panel(series, start, units.copy(), zeros.copy(), zeros.copy(), price)


def panel_of(gen: GeneratedData) -> Panel:
    frame = pd.read_csv(gen.sales_path).rename(
        columns={"date": "sale_date", "units_sold": "units", "stock_out": "stock"}
    )
    frame["stock"] = frame["stock"].map({True: 1.0, False: 0.0, "true": 1.0, "false": 0.0})
    stores = pd.read_csv(gen.stores_path)
    products = pd.read_csv(gen.products_path)
    stores["opened_on"] = pd.to_datetime(stores["opened_on"]).dt.date
    return panel_from_frame(frame, stores, products)


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    return generate(
        GeneratorConfig(stores=5, products=6, days=300, end_date=dt.date(2026, 6, 30), seed=5),
        tmp_path_factory.mktemp("chain"),
    )


@pytest.fixture(scope="session")
def panel(chain: GeneratedData) -> Panel:
    return panel_of(chain)
