"""Database failures as one line: what went wrong, where (the URL with its password masked),
and the fix. Every command runs through `fournil.cli.main`, which prints this line and exits 1
instead of a traceback; anything else still raises (a bug deserves its traceback)."""

from __future__ import annotations

import re

_DRIVER_FIX = (
    "write postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE (or sqlite:///PATH) in "
    "DATABASE_URL"
)
_DRIVER_MODULES = ("psycopg2", "MySQLdb", "pymysql", "asyncpg", "pg8000", "cx_Oracle", "pyodbc")


def mask(url: str | None) -> str:
    """The URL with its password replaced by ***."""
    if not url:
        return "(unset)"
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def database_error(exc: BaseException, url: str | None) -> str | None:
    """The one-line message for a database failure reaching the command line, or None when
    `exc` is no database failure."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

    where = mask(url)
    if isinstance(exc, NoSuchModuleError | ArgumentError):
        return f"DATABASE_URL {where} is not a URL Fournil can use: {_DRIVER_FIX}"
    if isinstance(exc, ModuleNotFoundError) and exc.name in _DRIVER_MODULES:
        return f"DATABASE_URL {where} needs the {exc.name} driver, not installed: {_DRIVER_FIX}"
    if isinstance(exc, OperationalError):
        reason = _first_line(exc)
        missing = re.search(r'database "([^"]+)" does not exist', reason)
        if missing:
            return (
                f"the database {missing.group(1)} does not exist on {where}: create it "
                f"(createdb {missing.group(1)}, or CREATE DATABASE), then fournil db upgrade"
            )
        if "password authentication failed" in reason or "no password supplied" in reason:
            return f"the warehouse at {where} refused the login: check the user and password"
        if "unable to open database file" in reason:
            return (
                f"cannot open the SQLite warehouse {where}: check the folder exists and is writable"
            )
        return (
            f"cannot reach the warehouse at {where} ({reason}): start the server, or fix "
            "DATABASE_URL"
        )
    if isinstance(exc, ProgrammingError) and "does not exist" in _first_line(exc):
        return f"the warehouse at {where} has no Fournil schema yet: run fournil db upgrade"
    return None
