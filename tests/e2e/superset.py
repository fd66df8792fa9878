"""Superset through its REST API, as a user would reach it: log in, fetch every chart's data,
export the dashboards and compare them with the bundle in the repository, and screenshot each
dashboard in headless Chromium."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "superset" / "bundle"
CHROMIUM = "/usr/bin/chromium"


def superset_bin() -> Path:
    """Superset's own virtualenv (`make superset-venv`: built once, cached by the hash of
    services/superset/requirements.txt); its bin folder."""
    made = subprocess.run(
        ["make", "--no-print-directory", "superset-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return ROOT / ".venv-superset" / "bin"


# Keys Superset sets itself on import or export: database ids, export stamps, keys it adds
# with their defaults. Everything else must match the bundle exactly.
VOLATILE = {
    "metadata.yaml": {"timestamp", "type"},
    "databases": {"sqlalchemy_uri", "allow_csv_upload", "allow_file_upload", "ssh_tunnel"},
    "datasets": {"catalog", "currency_code_column", "folders", "data_file"},
    "charts": set(),
    "dashboards": {"theme_uuid"},
}
# inside a chart's params / query context, and a dashboard's metadata and position
VOLATILE_NESTED = {
    "datasource",
    "slice_id",
    "dashboards",
    "chartId",
    "chartsInScope",
    "tabsInScope",
    "shared_label_colors",
    "map_label_colors",
    "color_scheme_domain",
    "chart_configuration",
    "global_chart_configuration",
    "positions",
    "currency",
}


@dataclass
class Superset:
    base: str
    username: str
    password: str
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base, timeout=120)
        login = self.client.post(
            "/api/v1/security/login",
            json={
                "username": self.username,
                "password": self.password,
                "provider": "db",
                "refresh": True,
            },
        )
        login.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        # writes also need a CSRF token (bound to the session cookie the client keeps)
        token = self.client.get("/api/v1/security/csrf_token/")
        token.raise_for_status()
        self.client.headers["X-CSRFToken"] = token.json()["result"]
        self.client.headers["Referer"] = self.base

    def listing(self, kind: str) -> list[dict[str, Any]]:
        query = "(page:0,page_size:100)"
        found = self.client.get(f"/api/v1/{kind}/", params={"q": query})
        found.raise_for_status()
        return list(found.json()["result"])

    def rows_per_chart(self) -> dict[str, int]:
        """Every chart's data, by name: the charts must be the bundle's, and none may fail."""
        expected = {c["slice_name"] for p, c in bundle().items() if p.startswith("charts/")}
        charts = {c["slice_name"]: c["id"] for c in self.listing("chart")}
        assert set(charts) == expected
        rows = {}
        for name, chart_id in sorted(charts.items()):
            (result,) = self.chart_data(chart_id)["result"]
            assert not result.get("error"), (name, result["error"])
            rows[name] = int(result["rowcount"])
        return rows

    def chart_data(self, chart_id: int) -> dict[str, Any]:
        """The chart's saved query context, run: what a report or the chart itself shows."""
        answer = self.client.get(f"/api/v1/chart/{chart_id}/data/", params={"format": "json"})
        assert answer.status_code == 200, f"chart {chart_id}: {answer.status_code} {answer.text}"
        return dict(answer.json())

    def export(self) -> dict[str, Any]:
        """Every dashboard, exported (with its charts, datasets and database): path -> YAML."""
        ids = [d["id"] for d in self.listing("dashboard")]
        answer = self.client.get(
            "/api/v1/dashboard/export/", params={"q": "!(" + ",".join(map(str, ids)) + ")"}
        )
        answer.raise_for_status()
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            return {
                name.split("/", 1)[1]: yaml.safe_load(archive.read(name))
                for name in archive.namelist()
                if name.endswith(".yaml")
            }


def bundle() -> dict[str, Any]:
    return {
        path.relative_to(BUNDLE).as_posix(): yaml.safe_load(path.read_text())
        for path in sorted(BUNDLE.rglob("*.yaml"))
    }


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE_NESTED}
    if isinstance(value, list):
        names = [v.get("column_name") or v.get("metric_name") for v in value if isinstance(v, dict)]
        if value and all(names) and len(names) == len(value):  # a dataset's columns or metrics
            return {name: _strip(v) for name, v in zip(names, value, strict=True)}
        return [_strip(v) for v in value]
    return value


def _differences(a: Any, b: Any, where: str) -> Iterator[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in b:
                yield f"{where}.{key}: only in the bundle ({a[key]!r})"
            elif key not in a:
                yield f"{where}.{key}: only in Superset ({b[key]!r})"
            else:
                yield from _differences(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, f"{where}[{n}]")
    elif a != b:
        yield f"{where}: bundle {a!r} != Superset {b!r}"


def normalized(path: str, config: dict[str, Any]) -> dict[str, Any]:
    kind = path.split("/", maxsplit=1)[0]
    out = copy.deepcopy({k: v for k, v in config.items() if k not in VOLATILE.get(kind, set())})
    if kind == "charts" and out.get("query_context"):
        out["query_context"] = json.loads(out["query_context"])
    if kind == "dashboards":
        # a filter's scope names charts by id, and ids change on import: compare their uuids
        uuids = {
            node["meta"]["chartId"]: node["meta"]["uuid"]
            for node in out.get("position", {}).values()
            if isinstance(node, dict) and node.get("type") == "CHART"
        }
        for nf in out.get("metadata", {}).get("native_filter_configuration", []):
            scope = nf.get("scope", {})
            if "excluded" in scope:
                scope["excluded"] = sorted(
                    uuids.get(i, f"unknown chart {i}") for i in scope["excluded"]
                )
    return dict(_strip(out))


def by_uuid(files: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Exports name files after titles and ids; match them to the bundle's by uuid."""
    out = {}
    for path, config in files.items():
        key = config.get("uuid") or path
        out[str(key)] = (path, config)
    return out


def drift(exported: dict[str, Any], expected: dict[str, Any]) -> Iterator[str]:
    """What differs between an export and the bundle, one line per difference."""
    got, want = by_uuid(exported), by_uuid(expected)
    for key in sorted(set(want) - set(got)):
        yield f"missing from Superset: {want[key][0]}"
    for key in sorted(set(got) - set(want)):
        if got[key][0] != "metadata.yaml":
            yield f"in Superset, not in the bundle: {got[key][0]}"
    for key in sorted(set(got) & set(want)):
        path, config = want[key]
        yield from _differences(normalized(path, config), normalized(path, got[key][1]), path)


#: a dashboard drawn with its charts (a blank grid is about 30 KB), and tries to get one
RENDERED_BYTES = 50_000
RENDER_ATTEMPTS = 3


def screenshots(base: str, username: str, password: str, folder: Path) -> list[Path]:
    """Log in through the login page in headless Chromium (Debian's), open every dashboard,
    wait until every chart has rendered, and save a full-page PNG per dashboard."""
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    dashboards = [
        yaml.safe_load(p.read_text()) for p in sorted((BUNDLE / "dashboards").glob("*.yaml"))
    ]
    saved = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(f"{base}/login/")
        page.fill("#username", username)
        page.fill("#password", password)
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "/login" not in url, timeout=60_000)
        for board in dashboards:
            charts = sum(
                1
                for n in board["position"].values()
                if isinstance(n, dict) and n.get("type") == "CHART"
            )
            path = folder / f"{board['slug']}.png"
            for attempt in range(RENDER_ATTEMPTS):
                page.goto(f"{base}/superset/dashboard/{board['slug']}/?standalone=1")
                page.wait_for_function(
                    """n => document.querySelectorAll('.chart-slice').length >= n
                        && !document.querySelector('.loading')""",
                    arg=charts,
                    timeout=120_000,
                )
                page.wait_for_timeout(1500 * (attempt + 1))  # echarts animations
                page.screenshot(path=str(path), full_page=True)
                if path.stat().st_size > RENDERED_BYTES:
                    break
                # on a loaded machine the grid can still be blank when the slices exist:
                # open the dashboard again (the caller's size check fails if it never draws)
            saved.append(path)
        browser.close()
    return saved
