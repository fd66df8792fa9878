"""The `fournil` command line: one typer app with a sub-command per area."""

from fournil.cli.app import app

__all__ = ["app"]
