"""`python -m fournil` runs the CLI."""

from fournil.cli import app

app()
