"""The Superset bundle is what its generator writes, and holds together: every chart's saved
query context uses its dataset's metrics and columns, every dashboard places known charts.
(Superset imports it and every chart's data comes back in tests/e2e/test_stack.py.)"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "superset" / "bundle"


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("ss_generate", ROOT / "superset" / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def files() -> dict[str, dict[str, Any]]:
    return {
        p.relative_to(BUNDLE).as_posix(): yaml.safe_load(p.read_text())
        for p in sorted(BUNDLE.rglob("*.yaml"))
    }


def test_the_committed_bundle_is_what_the_generator_writes() -> None:
    gen = generator()
    expected = {name: gen.render(content) for name, content in gen.bundle()}
    committed = {p.relative_to(BUNDLE).as_posix() for p in BUNDLE.rglob("*.yaml")}
    assert committed == set(expected), "run `make dashboards`"
    for name, text in expected.items():
        assert (BUNDLE / name).read_text() == text, f"{name} is stale: run `make dashboards`"


def test_no_secret_and_no_real_address_in_the_bundle() -> None:
    (database,) = [c for n, c in files().items() if n.startswith("databases/")]
    assert ":XXXXXXXXXX@" in database["sqlalchemy_uri"]  # the importer injects the password
    assert "password" not in database


def test_every_chart_queries_what_its_dataset_has() -> None:
    bundle = files()
    datasets = {c["uuid"]: c for n, c in bundle.items() if n.startswith("datasets/")}
    charts = [c for n, c in bundle.items() if n.startswith("charts/")]
    assert len({c["uuid"] for c in charts}) == len(charts) >= 20
    for chart in charts:
        dataset = datasets[chart["dataset_uuid"]]
        metrics = {m["metric_name"] for m in dataset["metrics"]}
        columns = {c["column_name"] for c in dataset["columns"]}
        context = json.loads(chart["query_context"])
        (query,) = context["queries"]
        assert context["form_data"] == chart["params"], chart["slice_name"]
        assert set(query["metrics"]) <= metrics, chart["slice_name"]
        for column in query["columns"]:
            name = column["sqlExpression"] if isinstance(column, dict) else column
            assert name in columns, (chart["slice_name"], name)
        if chart["viz_type"].startswith("echarts_timeseries"):
            x = chart["params"]["x_axis"]
            temporal = next(c["is_dttm"] for c in dataset["columns"] if c["column_name"] == x)
            assert temporal == ("time_grain_sqla" in chart["params"]), chart["slice_name"]


def test_every_dashboard_places_known_charts_once_on_a_twelve_column_grid() -> None:
    bundle = files()
    charts = {c["uuid"]: c for n, c in bundle.items() if n.startswith("charts/")}
    placed: list[str] = []
    for name, board in bundle.items():
        if not name.startswith("dashboards/"):
            continue
        position = board["position"]
        for row_id in position["GRID_ID"]["children"]:
            row = position[row_id]
            assert sum(position[c]["meta"]["width"] for c in row["children"]) <= 12
            for key in row["children"]:
                meta = position[key]["meta"]
                assert charts[meta["uuid"]]["slice_name"] == meta["sliceName"]
                placed.append(meta["uuid"])
        for native in board["metadata"]["native_filter_configuration"]:
            (target,) = native["targets"]
            dataset = next(c for n, c in bundle.items() if c.get("uuid") == target["datasetUuid"])
            assert target["column"]["name"] in {c["column_name"] for c in dataset["columns"]}
    assert sorted(placed) == sorted(charts)  # every chart on exactly one dashboard
