"""The README and the docs site name only commands that exist.

Every `make X` and `fournil a b` shown in README.md and docs/**/*.md (fenced shell blocks and
inline code) must name a Makefile target and a `fournil` sub-command path; options and
arguments are not checked. The API reference cannot go stale: `make docs` generates
docs/api/openapi.json from the app on every build, and git ignores it.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S
)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
SEPARATORS = {"&&", "||", ";", "|", "then", "do", "sudo", "time", "env"}
TARGET = re.compile(r"^([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*:(?![=:])", re.M)


def commands_in(markdown: str) -> list[str]:
    """Lines of shell shown in a page: fenced shell blocks, and inline code spans."""
    found: list[str] = []
    outside = markdown
    for block in FENCE.finditer(markdown):
        outside = outside.replace(block.group(0), "")
        if block.group("lang").lower() in SHELL_LANGUAGES:
            found += [line.strip().removeprefix("$ ") for line in block.group("body").splitlines()]
    found += [span.strip() for span in INLINE.findall(outside)]
    return [line for line in found if line]


def tokens_of(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError:  # an apostrophe in a comment or in prose
        return line.split("#", maxsplit=1)[0].split()


@functools.cache
def make_targets() -> frozenset[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return frozenset(name for group in TARGET.findall(makefile) for name in group.split())


@functools.cache
def fournil_command() -> Any:
    """The root click group of `fournil` (typer may bring its own copy of click, and the root
    group may load its sub-commands lazily: only the group API is used)."""
    from fournil.cli import app

    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _is_group(command: Any) -> bool:
    return hasattr(command, "get_command") and hasattr(command, "list_commands")


def problems_in(line: str) -> list[str]:
    """What is wrong with the `make` and `fournil` commands of one line of shell."""
    tokens = tokens_of(line)
    problems: list[str] = []
    for i, token in enumerate(tokens):
        at_start = i == 0 or tokens[i - 1] in SEPARATORS or re.fullmatch(r"\w+=\S*", tokens[i - 1])
        if token == "make" and at_start:
            for arg in _arguments(tokens[i + 1 :]):
                if arg.startswith("-") or "=" in arg:
                    continue
                if arg not in make_targets():
                    problems.append(f"make {arg}: no such Makefile target")
        elif token == "fournil" or token.endswith("/bin/fournil"):
            problems += _check_fournil(_arguments(tokens[i + 1 :]))
    return problems


def _arguments(rest: list[str]) -> list[str]:
    """The tokens of one command: up to the next separator."""
    out = []
    for token in rest:
        if token in {"&&", "||", ";", "|"} or token.startswith((">", "<", "2>")):
            break
        out.append(token)
    return out


def _check_fournil(args: list[str]) -> list[str]:
    command = fournil_command()
    path = ["fournil"]
    for arg in args:
        if arg in {"...", "…"}:
            break  # "fournil ...": any command
        if arg.startswith("-"):
            continue  # options (the global -v, or a command's) are not checked
        if not _is_group(command):
            break  # the rest are arguments
        ctx = command.context_class(command, info_name=path[-1])
        sub = command.get_command(ctx, arg)
        if sub is None:
            known = ", ".join(sorted(command.list_commands(ctx)))
            return [f"{' '.join(path)} {arg}: no such command (known: {known})"]
        command, path = sub, [*path, arg]
    return []


def test_pages_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/index.md", "docs/api/index.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_command_shown_exists(page: Path) -> None:
    problems = [
        f"{page.relative_to(ROOT)}: `{line}`: {problem}"
        for line in commands_in(page.read_text(encoding="utf-8"))
        for problem in problems_in(line)
    ]
    assert not problems, "\n".join(problems)


def test_the_pages_show_commands_at_all() -> None:
    shown = [line for page in PAGES for line in commands_in(page.read_text(encoding="utf-8"))]
    assert sum("make " in line for line in shown) >= 10
    assert sum("fournil " in line for line in shown) >= 10


@pytest.mark.parametrize(
    ("line", "wrong"),
    [
        ("make no-such-target", "make no-such-target"),
        ("make lint docs-deploy", "make docs-deploy"),
        ("FOURNIL_X=1 make test2 PYTEST_ARGS=-x", "make test2"),
        ("fournil metrics serve", "fournil metrics"),
        ("uv run --frozen fournil model fly --name x", "fournil model fly"),
        ("docker compose exec api fournil apikey rotate ID", "fournil apikey rotate"),
        ("cd x && .venv/bin/fournil -v etl load --source y", "fournil etl load"),
    ],
)
def test_a_made_up_command_is_caught(line: str, wrong: str) -> None:
    problems = problems_in(line)
    assert len(problems) == 1 and problems[0].startswith(wrong), problems


@pytest.mark.parametrize(
    "line",
    [
        "make demo",
        "make restore BACKUP=20261123T020000Z",
        "make -n deploy TAG=abc",
        "uv run --frozen fournil flows run etl train forecast monitor",
        "docker compose exec api fournil apikey create --name shop --scope predict",
        "fournil -v etl run --source data/generated",
        "fournil parity URL_A URL_B --save",
        "fournil model",
        "echo make is not a command here",
    ],
)
def test_a_real_command_passes(line: str) -> None:
    assert problems_in(line) == []


def test_the_reference_keeps_placeholders_visible() -> None:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    assert spec and spec.loader
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    text = '<td>API key: fk_<id>_<secret></td><span class="x">a<br>b</span>'
    assert hooks.escape_placeholders(text) == (
        '<td>API key: fk_&lt;id&gt;_&lt;secret&gt;</td><span class="x">a<br>b</span>'
    )


def test_make_help_lines_up_every_target_s_text() -> None:
    """Long target names (test-integration, bench-accuracy) must not push their text out of
    the column the others use."""
    import os
    import re
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    done = subprocess.run(  # as a user types it, also when the tests run under `make test`
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in done.stdout.splitlines() if line]
    columns = {re.match(r"\s*\S+\s+", line).end() for line in plain}  # type: ignore[union-attr]
    assert len(columns) == 1, plain
