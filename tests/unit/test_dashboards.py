"""The Grafana dashboards hold what Grafana needs to load them, and match their generator.
(Their queries run against real data in tests/e2e/test_stack.py.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "grafana" / "dashboards").rglob("*.json"))


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "grafana" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def datasource_uids() -> dict[str, str]:
    provisioned = yaml.safe_load(
        (ROOT / "grafana/provisioning/datasources/datasources.yml").read_text()
    )
    return {d["uid"]: d["type"] for d in provisioned["datasources"]}


def test_the_committed_json_is_what_the_generator_writes() -> None:
    gen = generator()
    expected = {path: gen.render(board) for path, board in gen.dashboards()}
    assert sorted(expected) == FILES, "run `make dashboards`"
    for path, text in expected.items():
        assert path.read_text() == text, f"{path.name} is stale: run `make dashboards`"


def test_the_four_dashboards_exist() -> None:
    uids = {json.loads(p.read_text())["uid"] for p in FILES}
    assert uids == {"fournil-api", "fournil-pipelines", "fournil-models", "fournil-infra"}


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_grafana_can_load_it(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and len(board["uid"]) <= 40 and board["title"]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) for i in ids)
    sources = datasource_uids()
    occupied: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            uid = target["datasource"]["uid"]
            assert sources.get(uid) == target["datasource"]["type"], (panel["title"], uid)
            assert target["refId"]
            query = target.get("expr") or target.get("rawSql")
            assert query, panel["title"]
            if uid == "warehouse":
                assert "$__timeFilter(" in query or panel["type"] == "stat", panel["title"]


def test_grafana_provisions_the_folder_compose_mounts() -> None:
    provider = yaml.safe_load(
        (ROOT / "grafana/provisioning/dashboards/dashboards.yml").read_text()
    )["providers"][0]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
