from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from fournil.db import upgrade
from fournil.db.migrate import current_revision, head_revision
from fournil.db.schema import metadata


def test_migrations_reach_head_and_match_the_schema(warehouse: Engine) -> None:
    assert current_revision(warehouse) == head_revision()
    with warehouse.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_upgrade_is_idempotent_and_downgrade_then_upgrade_works(warehouse: Engine) -> None:
    upgrade(warehouse)  # already at head: nothing to do
    from alembic import command

    from fournil.db.migrate import alembic_config

    cfg = alembic_config(warehouse.url.render_as_string(hide_password=False))
    with warehouse.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert "sales" not in inspect(warehouse).get_table_names()
    upgrade(warehouse)
    assert {"sales", "stores", "products", "etl_runs", "quarantine", "forecasts"} <= set(
        inspect(warehouse).get_table_names()
    )
