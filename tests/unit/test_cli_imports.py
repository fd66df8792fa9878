"""`fournil --help` stays fast: the CLI's top level imports typer and rich, nothing heavy; the
sub-commands load on first use, and `cli/app.py` imports none of them (no import cycle)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from fournil.cli.app import COMMANDS, app

CLI_DIR = Path(__file__).resolve().parents[2] / "src" / "fournil" / "cli"
HEAVY = ("pandas", "numpy", "sqlalchemy", "mlflow", "prefect", "lightgbm", "pyarrow", "sklearn")
# still heavy at their top level (FastAPI, SQLAlchemy): loaded only for their own commands
HEAVY_MODULES = {"fournil.cli.api", "fournil.cli.model"}


def _loaded_after(code: str) -> set[str]:
    """The top-level packages imported by `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return {name.split(".")[0] for name in json.loads(done.stdout.strip().splitlines()[-1])}


def test_importing_the_cli_imports_nothing_heavy() -> None:
    loaded = _loaded_after("import fournil.cli")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_fournil_help_imports_nothing_heavy() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fournil", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    for command in COMMANDS:  # every sub-command is listed, with its help
        assert command.name in done.stdout


@pytest.mark.parametrize(
    "module", sorted({c.module for c in COMMANDS} - HEAVY_MODULES), ids=lambda m: m
)
def test_a_sub_command_module_imports_nothing_heavy(module: str) -> None:
    """Heavy libraries are imported inside the command functions, when they run."""
    loaded = _loaded_after(f"import {module}")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_the_listed_help_is_the_command_s_own(command: object) -> None:
    """`fournil --help` lists each sub-command from `COMMANDS` without importing it: that
    help must be the first paragraph of the command's real help."""
    from fournil.cli.app import LazyCommand

    assert isinstance(command, LazyCommand)
    real = command.load(app)
    assert real.name == command.name
    first = (real.help or "").split("\n\n")[0]
    assert " ".join(first.split()) == command.help


def test_the_app_imports_no_sub_command() -> None:
    """cli/app.py and cli/common.py import no other CLI module at their top level: the
    sub-commands import common.py, app.py finds them by name (no cycle)."""
    for name in ("app.py", "common.py"):
        tree = ast.parse((CLI_DIR / name).read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("fournil")
        }
        assert imported <= ({"fournil.cli.common"} if name == "app.py" else set()), imported


def test_every_command_runs_through_the_lazy_group() -> None:
    from typer.testing import CliRunner

    for command in COMMANDS:
        done = CliRunner().invoke(app, [command.name, "--help"], terminal_width=200)
        assert done.exit_code == 0, (command.name, done.output)
        assert command.help.split()[0] in done.output
    unknown = CliRunner().invoke(app, ["no-such-command"])
    assert unknown.exit_code == 2 and "No such command" in unknown.output
    assert isinstance(app, typer.Typer)
