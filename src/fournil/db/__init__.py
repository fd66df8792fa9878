"""Warehouse access: schema, engines and migrations."""

from fournil.db.engine import make_engine, warehouse_engine
from fournil.db.migrate import upgrade

__all__ = ["make_engine", "upgrade", "warehouse_engine"]
