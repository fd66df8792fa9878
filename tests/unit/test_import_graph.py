"""The package's import graph (read by grimp from the source, nothing imported): no module
reaches itself through its imports, and the library under the entry points imports none of
them (the CLI, the API and the flows sit on top; nothing below calls up)."""

from __future__ import annotations

import sys
from pathlib import Path

import grimp
import pytest

ENTRY_POINTS = {
    "fournil.cli": {"fournil.__main__"},
    "fournil.api": {"fournil.cli.api", "fournil.cli.demo"},  # `fournil api serve`, `demo --serve`
    "fournil.flows": set(),  # loaded by entrypoint name (orchestration.DEPLOYMENTS), never imported
}


def import_cycles(package: str) -> list[tuple[str, ...]]:
    """Every module that imports, directly, a module that leads back to it: the cycle as the
    shortest chain from the module back to itself (imports inside functions count)."""
    graph = grimp.build_graph(package, cache_dir=None)
    found = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                found.append((module, *chain))
    return found


def test_fournil_has_no_import_cycle() -> None:
    assert import_cycles("fournil") == []


def test_the_check_finds_a_cycle_through_a_function_level_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclic import b\n")
    (pkg / "b.py").write_text("def later():\n    from cyclic import c\n")
    (pkg / "c.py").write_text("import cyclic.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cycles = import_cycles("cyclic")
    assert ("cyclic.a", "cyclic.b", "cyclic.c", "cyclic.a") in cycles
    assert "cyclic" not in sys.modules  # read from the source, not imported


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_only_the_entry_points_import_the_entry_points(entry: str) -> None:
    graph = grimp.build_graph("fournil", cache_dir=None)
    importers = {
        m for m in graph.find_downstream_modules(entry, as_package=True) if not m.startswith(entry)
    }
    assert importers == ENTRY_POINTS[entry]
