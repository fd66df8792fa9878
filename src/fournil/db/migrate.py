"""Alembic migrations, driven from code.

Migrations run only when asked for: `fournil db upgrade` (and the compose `migrate` job that
runs it), and `fournil demo`, which sets up its own embedded warehouse. Everything else checks
the schema with :func:`require_current` and stops if it is behind.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' would be read as interpolation by configparser.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the warehouse at `engine` up to `revision`."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


class SchemaNotCurrentError(RuntimeError):
    """The warehouse has no schema yet, or an older one than this code needs."""


def require_current(engine: Engine) -> None:
    """Raise :class:`SchemaNotCurrentError` (a one-line message naming `fournil db upgrade`)
    unless the warehouse at `engine` is at the head revision. Never migrates."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        state = f"the warehouse {where} has no schema (head is {head})"
    else:
        state = f"the warehouse {where} is at schema revision {current}, not head {head}"
    raise SchemaNotCurrentError(f"{state}: run `fournil db upgrade`")
