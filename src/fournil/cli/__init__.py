"""The `fournil` command line: one typer app with a sub-command per area; `main` runs it."""

from fournil.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """The `fournil` entry point: the typer app, with a database failure as one line and exit
    1 instead of a traceback (`fournil.cli.errors`)."""
    try:
        app()
    except Exception as exc:
        from fournil.cli.common import fail
        from fournil.cli.errors import database_error
        from fournil.settings import get_settings

        try:
            url = get_settings().warehouse_url
        except Exception:
            url = None
        line = database_error(exc, url)
        if line is None:
            raise
        raise SystemExit(fail(line).exit_code) from None
