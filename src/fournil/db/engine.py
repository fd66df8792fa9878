"""Engines for the warehouse, configured the same way everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from fournil.settings import Settings


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`, with pre-ping on servers and sane SQLite pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def warehouse_engine(settings: Settings) -> Engine:
    if not settings.database_url:
        settings.ensure_home()
    return make_engine(settings.warehouse_url)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"
