"""Fixtures for the model tests: a generated chain as an in-memory panel (no database)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.panel import Panel, panel_from_frame


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
