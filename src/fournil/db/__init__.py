"""Warehouse access: schema, engines and migrations."""

from fournil.db.engine import make_engine, warehouse_engine
from fournil.db.migrate import SchemaNotCurrentError, require_current, upgrade

__all__ = ["SchemaNotCurrentError", "make_engine", "require_current", "upgrade", "warehouse_engine"]
