"""Shared fixtures: isolated settings, generated drops, and real warehouses.

Integration tests run against a real PostgreSQL server (the one `TEST_DATABASE_URL` names;
default: the local one) and against SQLite. Each test gets its own database, cloned from a
migrated template, and drops it afterwards.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.db import make_engine, upgrade
from fournil.settings import reset_settings_cache

DEFAULT_TEST_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
#: A fixed, past end date keeps generated data identical whatever day the tests run.
END_DATE = dt.date(2026, 6, 30)


def test_server_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_SERVER)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test: its own FOURNIL_HOME, no .env from the developer's folder, fresh settings."""
    home = tmp_path / "fournil-home"
    for var in (
        "DATABASE_URL",
        "FOURNIL_DATABASE_URL",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",  # mlflow.set_registry_uri writes it into os.environ
        "PREFECT_API_URL",
        "FOURNIL_MODE",
        "FOURNIL_SECRET_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FOURNIL_HOME", str(home))
    # `fournil` points PREFECT_HOME at its home when unset (cli.app): recorded here as unset, so
    # what a command run in-process (CliRunner) set is removed after the test, not inherited
    # by the next one (or by the processes it starts)
    monkeypatch.setenv("PREFECT_HOME", "")
    monkeypatch.delenv("PREFECT_HOME")
    monkeypatch.chdir(tmp_path)
    reset_settings_cache()
    yield home
    reset_settings_cache()


def clean_environ() -> dict[str, str]:
    """This process's environment without anything that points Fournil, MLflow or Prefect
    elsewhere: for fixtures wider than a test, which are set up before `isolated_settings`
    runs (and MLflow writes its URIs into os.environ as it goes)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FOURNIL_", "MLFLOW_", "PREFECT_")) and k != "DATABASE_URL"
    }


def _admin_engine() -> Engine:
    url = make_url(test_server_url())
    return make_engine(url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated database to clone test databases from (CREATE DATABASE ... TEMPLATE)."""
    name = f"fournil_test_tmpl_{uuid.uuid4().hex[:8]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(test_server_url()).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"fournil_test_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield make_url(test_server_url()).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, migrated warehouse: once on SQLite, once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def warehouse(warehouse_url: str) -> Iterator[Engine]:
    engine = make_engine(warehouse_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def small_drop(tmp_path_factory: pytest.TempPathFactory) -> GeneratedData:
    """A small generated chain (clean data), shared read-only by the tests."""
    return generate(
        GeneratorConfig(stores=4, products=5, days=120, end_date=END_DATE, seed=11),
        tmp_path_factory.mktemp("drop"),
    )
