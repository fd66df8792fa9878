"""`python -m fournil` runs the CLI."""

from fournil.cli import main

main()
