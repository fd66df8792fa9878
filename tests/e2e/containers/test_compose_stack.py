"""The compose stack, really run: `docker compose build` of the project's images, `up -d --wait`
of the core and the observability (without Grafana), bi and notebook profiles, the pipeline
through the worker's Prefect deployments only, the API and every UI through the proxy over TLS,
then faults (a database restart under traffic, a killed API), a down/up that must keep every
volume's data, a backup and restore drill inside the containers, and every service's memory
against its limit. `make compose-test` runs it (engine and stand-in images first:
compose/standins/prepare.sh); it prints the figures and writes them to
build/artifacts/compose-test-report.md.

Stand-ins: the third-party images (Python, uv, PostgreSQL, Caddy, Prometheus, Alertmanager, the
exporters) are built from Debian packages by compose/standins/ under the exact tags the compose
file pins, since no image registry is reachable here. Grafana and Jenkins have no package here
and stay out of the run. The project's own images are built for real from their Dockerfiles.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from fournil.data.generator import GeneratedData, GeneratorConfig, generate
from fournil.orchestration import DEPLOYMENTS
from tests.e2e.containers.compose import (
    ROOT,
    Compose,
    HealthWatch,
    MemorySampler,
    Proxy,
    clean_env,
    timeline,
)
from tests.e2e.deployments import run_deployment_command
from tests.e2e.native import free_port

# one module-scoped stack: its setup (build, up, pipeline) is counted in the first test
pytestmark = [pytest.mark.compose, pytest.mark.timeout(3600)]

END = dt.date(2026, 6, 30)
PROFILES = "observability,bi,notebook"
LEFT_OUT = {"grafana"}  # no package for it here (and jenkins: profile ci, not started)
IMAGES = {
    "fournil/app": "migrate",
    "fournil/superset": "superset-init",
    "fournil/jupyter": "jupyterlab",
}
ONE_SHOT = {"migrate", "superset-init"}
# test-only settings, passed through .env as a user would tune them (busy 2-core machine)
NEVER_NOW = (dt.datetime.now(ZoneInfo("Europe/Paris")).hour + 12) % 24
TUNING = {
    "FOURNIL_GATE_MAX_LATENCY_MS": "5000",
    # the schedules at an hour the test never reaches (it takes well under an hour): no cron
    # run may add rows between two counts
    **{
        f"FOURNIL_{flow.upper()}_CRON": f"{minute} {NEVER_NOW} * * *"
        for flow, minute in (("etl", 0), ("forecast", 10), ("monitor", 20), ("train", 30))
    },
    "FOURNIL_API_MODEL_POLL_SECONDS": "3",
    "FOURNIL_API_TABLES_POLL_SECONDS": "3",
}
ARTIFACTS = Path(os.environ.get("FOURNIL_ARTIFACTS", ROOT / "build" / "artifacts"))


def render_env(path: Path) -> dict[str, str]:
    """.env.example as `make init-env` renders it: every change-me a random secret."""
    env: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            env[key] = secrets.token_hex(16) if value == "change-me" else value
    env.update(
        FOURNIL_DOMAIN="localhost",
        COMPOSE_PROFILES=PROFILES,
        FOURNIL_VERSION="compose-test",
        FOURNIL_HTTP_PORT=str(free_port()),
        FOURNIL_HTTPS_PORT=str(free_port()),
        FOURNIL_ALERT_WEBHOOK_URL="",
        **TUNING,
    )
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


@dataclass
class Stack:
    compose: Compose
    env: dict[str, str]
    memory: MemorySampler
    report: dict[str, list[str]] = field(default_factory=dict)
    health: HealthWatch | None = None
    proxy: Proxy | None = None
    drop: GeneratedData | None = None
    states: dict[str, str] = field(default_factory=dict)
    key: str = ""
    up_services: list[str] = field(default_factory=list)
    restarts_expected: dict[str, int] = field(default_factory=dict)

    def section(self, name: str) -> list[str]:
        return self.report.setdefault(name, [])

    def deploy_run(self, flow: str, **parameters: str) -> str:
        """A flow's deployment run on the Prefect server, from inside the worker container,
        waited for; its final state."""
        started = time.monotonic()
        command = run_deployment_command("python", flow, parameters, timeout=1500)
        done = self.compose.exec("worker", *command, timeout=1600)
        state = done.stdout.strip().splitlines()[-1]
        self.section("pipeline stages (Prefect deployment runs)").append(
            f"{flow:9s} {json.dumps(parameters) if parameters else '':28s} {state:10s} "
            f"{time.monotonic() - started:6.1f} s"
        )
        return state

    def api_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


def build_images(stack: Stack) -> None:
    for image, service in IMAGES.items():
        started = time.monotonic()
        stack.compose.run("build", service, timeout=2400)
        stack.section("build time per image").append(
            f"{image:18s} {time.monotonic() - started:6.1f} s"
        )


def bring_up(stack: Stack) -> None:
    compose = stack.compose
    services = compose.run("config", "--services").stdout.split()
    stack.up_services = [s for s in services if s not in LEFT_OUT]
    assert {"db", "api", "proxy", "superset", "jupyterlab", "prometheus"} <= set(stack.up_services)
    stack.health = HealthWatch(compose, ONE_SHOT)
    stack.health.start()
    started = time.monotonic()
    up = compose.run("up", "-d", "--wait", "--wait-timeout", "900", *stack.up_services, check=False)
    took = time.monotonic() - started
    stack.health.stop()
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:] + compose.logs(tail=60)
    lines = stack.section("time to healthy per service (from `up`)")
    for service, seconds in sorted(stack.health.reached.items(), key=lambda kv: kv[1]):
        exited = stack.health.exited.get(service)
        lines.append(
            f"{service:18s} {seconds:6.1f} s"
            + (f"  (one-shot, exit {exited})" if exited is not None else "")
        )
    lines.append(f"{'up -d --wait':18s} {took:6.1f} s")
    ca = compose.env_file.parent / "caddy-root.crt"
    compose.run("cp", "proxy:/data/caddy/pki/authorities/local/root.crt", str(ca))
    stack.proxy = Proxy(int(stack.env["FOURNIL_HTTPS_PORT"]), ca)


def run_the_pipeline(stack: Stack, workdir: Path) -> None:
    """A forecast before any data (fails, recorded), then a drop lands in the `landing` volume
    and etl, train, forecast and monitor run through the worker's deployments."""
    stack.states["forecast before data"] = stack.deploy_run("forecast")
    stack.drop = generate(
        GeneratorConfig(stores=4, products=5, days=200, end_date=END, seed=7, bad_row_rate=0.002),
        workdir / "drop",
    )
    for path in (stack.drop.stores_path, stack.drop.products_path, stack.drop.sales_path):
        stack.compose.run("cp", str(path), f"worker:/landing/{path.name}")
    stack.states["etl"] = stack.deploy_run("etl")
    stack.states["train"] = stack.deploy_run("train")
    stack.states["forecast"] = stack.deploy_run("forecast", date=str(END - dt.timedelta(days=3)))
    stack.states["monitor"] = stack.deploy_run("monitor")
    parity_against_a_twin(stack)


def parity_against_a_twin(stack: Stack) -> None:
    """A preproduction twin of the warehouse on the same server, one day of sales behind, and
    `fournil parity --save` from the worker between the two (what the parity dashboard shows)."""
    env, compose = stack.env, stack.compose
    warehouse, owner = env["WAREHOUSE_DB"], env["WAREHOUSE_DB_USER"]
    twin = f"{warehouse}_twin"
    compose.exec("db", "createdb", "-U", "postgres", "-O", owner, twin)
    compose.exec(
        "db",
        "bash",
        "-c",
        f"set -o pipefail; pg_dump -U postgres --no-owner {warehouse} "
        f"| psql -q -v ON_ERROR_STOP=1 -U {owner} -d {twin}",
    )
    compose.psql(twin, "DELETE FROM sales WHERE sale_date = (SELECT max(sale_date) FROM sales)")
    compose.exec(
        "worker",
        "sh",
        "-c",
        f'fournil parity "$DATABASE_URL" "${{DATABASE_URL%/*}}/{twin}" --save '
        "--label-a production --label-b preproduction",
    )


def create_key(stack: Stack) -> None:
    done = stack.compose.exec(
        "api", "fournil", "apikey", "create", "--name", "compose-test", "--scope", "admin"
    )
    found = [w for w in done.stdout.split() if w.startswith("fk_")]
    assert found, done.stdout
    stack.key = found[0]


PREFIX = "fournil-test-"


def remove_stale_test_stacks() -> None:
    """Stacks an interrupted run left behind: their restart policy would bring them back with
    the engine, holding memory and ports."""
    listed = subprocess.run(
        ["docker", "compose", "ls", "-a", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    for project in json.loads(listed.stdout or "[]"):
        if project["Name"].startswith(PREFIX):
            subprocess.run(
                ["docker", "compose", "-p", project["Name"], "down", "-v", "--timeout", "5"],
                capture_output=True,
                check=False,
                env=clean_env(),
            )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if shutil.which("docker") is None:
        pytest.fail("no docker CLI: run `make compose-test` (it installs the engine)")
    remove_stale_test_stacks()
    workdir = tmp_path_factory.mktemp("compose")
    project = f"{PREFIX}{uuid.uuid4().hex[:6]}"
    env = render_env(workdir / ".env")
    compose = Compose(project, workdir / ".env")
    memory = MemorySampler(project)
    stack = Stack(compose, env, memory)
    memory.start()
    try:
        build_images(stack)
        bring_up(stack)
        run_the_pipeline(stack, workdir)
        create_key(stack)
        yield stack
    finally:
        try:
            memory.stop()
            write_report(stack)
        finally:
            if os.environ.get("FOURNIL_COMPOSE_KEEP"):
                print(f"\nkept: docker compose -p {project} --env-file {workdir / '.env'} ...")
            else:
                compose.run("down", "-v", "--remove-orphans", "--timeout", "20", check=False)


def write_report(stack: Stack) -> None:
    lines = [f"# compose test ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)", ""]
    for name, rows in stack.report.items():
        lines += [f"## {name}", *(f"    {row}" for row in rows), ""]
    lines += ["## docker compose calls", *(f"    {row}" for row in stack.compose.log), ""]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "compose-test-report.md").write_text("\n".join(lines))
    print("\n".join(lines))


# --- 4. the stack up ----------------------------------------------------------------------------
def test_every_service_is_healthy_and_one_shot_jobs_exit_0(stack: Stack) -> None:
    rows = {row["Service"]: row for row in stack.compose.ps()}
    assert set(rows) == set(stack.up_services), sorted(rows)
    for service, row in rows.items():
        if service in ONE_SHOT:
            assert row["State"] == "exited" and int(row["ExitCode"]) == 0, row
        else:
            assert row["State"] == "running", row
            assert row.get("Health") == "healthy", row
    assert "grafana" not in rows and "jenkins" not in rows


# --- 5. the pipeline through containers -------------------------------------------------------
def test_the_pipeline_runs_through_the_workers_deployments(stack: Stack) -> None:
    assert stack.states == {
        "forecast before data": "FAILED",  # no data yet: a failed run, recorded
        "etl": "COMPLETED",
        "train": "COMPLETED",
        "forecast": "COMPLETED",
        "monitor": "COMPLETED",
    }
    counts = dict(
        stack.compose.psql(
            stack.env["WAREHOUSE_DB"],
            "SELECT 'sales', count(*) FROM sales UNION ALL SELECT 'quarantine', count(*) FROM "
            "quarantine UNION ALL SELECT 'forecasts', count(*) FROM forecasts",
        )
    )
    assert stack.drop is not None
    assert int(counts["quarantine"]) == stack.drop.bad_rows
    assert int(counts["sales"]) > 3000 and int(counts["forecasts"]) > 0, counts


def test_the_api_serves_forecasts_and_predictions_through_the_proxy(stack: Stack) -> None:
    proxy = stack.proxy
    assert proxy is not None
    key = ("-H", f"X-API-Key: {stack.key}")
    deadline = time.monotonic() + 180
    while True:  # the API picks the champion and the new forecasts up while running
        ready_status, ready_body = proxy.curl("api", "/ready")  # 503 while not ready
        ready = json.loads(ready_body)
        status, body = proxy.curl("api", "/v1/forecasts?store_id=1", *key)
        if ready_status == 200 and status == 200 and json.loads(body)["total"]:
            break
        assert time.monotonic() < deadline, (ready, status, body[:300], stack.compose.logs("api"))
        time.sleep(3)
    page = json.loads(body)
    assert page["items"][0]["model_version"] == ready["champion"]
    rows = [
        {"store_id": 2, "product_id": 3, "date": str(END + dt.timedelta(days=d))} for d in (1, 2)
    ]
    status, body = proxy.curl(
        "api",
        "/v1/predict",
        *key,
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"rows": rows}),
    )
    assert status == 200, body
    predictions = json.loads(body)["predictions"]
    assert len(predictions) == 2 and all(p["yhat"] >= 0 for p in predictions), predictions
    assert proxy.curl("api", "/v1/forecasts?store_id=1")[0] == 401  # the API's own keys
    # /metrics is Prometheus's, on the compose network only (test_prometheus_has_every_target_up:
    # the fournil-api job is up); through the proxy it does not exist
    metrics_status, metrics_body = proxy.curl("api", "/metrics")
    assert metrics_status == 404, metrics_body[:300]
    stack.section("API through the proxy").append(
        f"champion v{ready['champion']}, {page['total']} forecast rows for store 1, "
        f"predict {predictions[0]['yhat']:.1f} units ({predictions[0]['arm']}); "
        f"/metrics {metrics_status}"
    )


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("mlflow", "/health"),
        ("prefect", "/api/health"),
        ("superset", "/health"),
        ("prometheus", "/-/healthy"),
        ("alertmanager", "/-/healthy"),
        ("jupyter", "/api/status"),
    ],
)
def test_every_ui_sits_behind_basic_auth(stack: Stack, host: str, path: str) -> None:
    proxy = stack.proxy
    assert proxy is not None
    user, password = stack.env["PROXY_USER"], stack.env["PROXY_PASSWORD"]
    if host == "jupyter":
        path += f"?token={stack.env['JUPYTER_TOKEN']}"
    assert proxy.curl(host, path)[0] == 401
    assert proxy.curl(host, path, "-u", f"{user}:{password}x")[0] == 401
    status, body = proxy.curl(host, path, "-u", f"{user}:{password}")
    assert status == 200, (host, body[:300])


def test_prometheus_has_every_target_up(stack: Stack) -> None:
    proxy = stack.proxy
    assert proxy is not None
    auth = ("-u", f"{stack.env['PROXY_USER']}:{stack.env['PROXY_PASSWORD']}")
    deadline = time.monotonic() + 120
    while True:
        targets = proxy.json("prometheus", "/api/v1/targets", *auth)["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if set(health.values()) == {"up"}:
            break
        assert time.monotonic() < deadline, targets
        time.sleep(5)
    assert set(health) == {"prometheus", "fournil-api", "alertmanager", "node", "postgres"}


def test_superset_charts_return_rows(stack: Stack) -> None:
    from tests.e2e.superset import Superset

    client = Superset(
        f"http://{stack.compose.address('superset')}:8088",
        "admin",
        stack.env["SUPERSET_ADMIN_PASSWORD"],
    )
    rows = client.rows_per_chart()
    assert [name for name, n in rows.items() if not n] == [], rows
    stack.section("Superset").append(f"{len(rows)} charts, every one with rows")


# --- 6. faults and lifecycle ------------------------------------------------------------------
def error_code(response: httpx.Response) -> str:
    """The structured error's code, or the start of a body that is not one."""
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return repr(response.text[:40])


class ClientLoop:
    """GET /v1/forecasts every 0.25 s from a thread, straight to the API's container (the
    proxy would add its own answers): the outcome of each call, timed."""

    def __init__(self, stack: Stack) -> None:
        self.api = f"http://{stack.compose.address('api')}:8000"
        self.headers = stack.api_headers()
        self.events: list[tuple[float, str]] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _loop(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set() and self.now() < 600:
                try:
                    got = client.get(
                        f"{self.api}/v1/forecasts", params={"store_id": 1}, headers=self.headers
                    )
                    outcome = str(got.status_code)
                    if got.status_code >= 400:
                        outcome += " " + error_code(got)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.events.append((self.now(), outcome))
                time.sleep(0.25)

    def wait_for_200_after(self, moment: float, seconds: float = 90) -> float:
        deadline = time.monotonic() + seconds
        while True:
            later = [t for t, o in self.events if t > moment and o == "200"]
            if later:
                return later[0]
            assert time.monotonic() < deadline, timeline(self.events)
            time.sleep(0.5)

    def stop(self) -> None:
        time.sleep(3)
        self._stop.set()
        self._thread.join()

    def readiness(self) -> str:
        """What /ready says, in a few words: '200 degraded (warehouse unreachable)'."""
        try:
            got = httpx.get(f"{self.api}/ready", timeout=10)
            body = got.json()
        except (httpx.HTTPError, ValueError) as exc:
            return type(exc).__name__
        if not isinstance(body, dict):
            return f"{got.status_code} {body!r:.40}"
        said = f"{got.status_code} {body.get('status')}"
        return said + (f" ({WAREHOUSE_DOWN})" if WAREHOUSE_DOWN in str(body.get("reason")) else "")


WAREHOUSE_DOWN = "warehouse unreachable"  # /ready's reason while the API serves from memory


def test_the_api_recovers_by_itself_from_a_database_restart_and_an_outage(stack: Stack) -> None:
    """`docker compose restart db` under traffic, then a 20 s outage (`stop`, `start`: longer
    than the API's key cache); what the API answered, and that it recovers by itself. The
    forecasts asked for are in the API's memory, and so are the keys: through the outage every
    answer is a 200, and /ready says 200 'degraded' (so the outage was real); through the restart
    too (no 503 was seen there either once the API served from memory)."""
    loop = ClientLoop(stack)
    time.sleep(3)
    restart_at = loop.now()
    stack.compose.run("restart", "db", timeout=180)
    restarted_at = loop.now()
    after_restart = loop.wait_for_200_after(restarted_at)
    time.sleep(3)
    stop_at = loop.now()
    stack.compose.run("stop", "db", timeout=180)
    down_until = time.monotonic() + 20
    ready_down: list[tuple[float, str]] = []
    while time.monotonic() < down_until:  # 20 s down; /ready asked every 2 s meanwhile
        ready_down.append((loop.now(), loop.readiness()))
        time.sleep(max(0.0, min(2.0, down_until - time.monotonic())))
    start_at = loop.now()
    stack.compose.run("start", "db", timeout=180)
    started_at = loop.now()
    after_outage = loop.wait_for_200_after(started_at)
    ready_up, deadline = [(loop.now(), loop.readiness())], time.monotonic() + 90
    while not ready_up[-1][1].startswith("200") or WAREHOUSE_DOWN in ready_up[-1][1]:
        assert time.monotonic() < deadline, timeline(ready_down + ready_up)
        time.sleep(1)
        ready_up.append((loop.now(), loop.readiness()))
    loop.stop()
    lines = stack.section("fault: the database restarted, then down for 20 s; GET /v1/forecasts")
    lines.append(f"restart db: issued at {restart_at:.1f} s, done at {restarted_at:.1f} s")
    lines.append(
        f"stop db at {stop_at:.1f} s, start db at {start_at:.1f} s, up at {started_at:.1f} s"
    )
    lines += timeline(loop.events)
    lines.append(
        f"first 200 after the restart: +{after_restart - restarted_at:.1f} s; "
        f"after the outage: +{after_outage - started_at:.1f} s"
    )
    phases = {
        "before": [o for t, o in loop.events if t < restart_at],
        "restart": [o for t, o in loop.events if restart_at <= t < stop_at],
        "outage": [o for t, o in loop.events if t >= stop_at],  # down, start, until the end
    }
    lines.append("/ready while the database is down, then after its start:")
    lines += timeline(ready_down + ready_up)
    lines.append(
        "non-200: "
        + ", ".join(
            f"{name} {sum(o != '200' for o in got)} of {len(got)}" for name, got in phases.items()
        )
    )
    assert phases["before"] and phases["restart"] and phases["outage"], phases
    assert {o for _, o in loop.events} == {"200"}, timeline(loop.events)
    assert {said for _, said in ready_down} == {f"200 degraded ({WAREHOUSE_DOWN})"}, ready_down


def wait_for_api(stack: Stack, t0: float, seen: list[tuple[float, str]]) -> None:
    deadline = time.monotonic() + 240
    while True:
        (row,) = [r for r in stack.compose.ps() if r["Service"] == "api"]
        seen.append((time.monotonic() - t0, f"{row['State']} {row.get('Health', '')}".strip()))
        if row["State"] == "running" and row.get("Health") == "healthy" and len(seen) > 1:
            return
        assert time.monotonic() < deadline, timeline(seen)
        time.sleep(1)


def test_a_crashed_api_comes_back_by_its_restart_policy(stack: Stack) -> None:
    """The API's main process killed from outside (as the kernel's OOM killer would): the restart
    policy brings it back, healthy."""
    before = stack.compose.inspect("api")
    t0 = time.monotonic()
    os.kill(int(before["State"]["Pid"]), signal.SIGKILL)
    seen: list[tuple[float, str]] = []
    wait_for_api(stack, t0, seen)
    after = stack.compose.inspect("api")["RestartCount"]
    lines = stack.section("fault: the api's main process SIGKILLed (a crash)")
    lines += timeline(seen)
    lines.append(
        f"restart count {before['RestartCount']} -> {after}; healthy after {seen[-1][0]:.1f} s"
    )
    assert after == before["RestartCount"] + 1
    stack.restarts_expected["api"] = after


def test_docker_compose_kill_stops_the_api_until_it_is_started(stack: Stack) -> None:
    """`docker compose kill` counts as a manual stop for the engine: the restart policy leaves
    the container down (Docker's documented behaviour) until `docker compose start`/`up`."""
    t0 = time.monotonic()
    stack.compose.run("kill", "api")
    time.sleep(20)
    (row,) = [r for r in stack.compose.ps() if r["Service"] == "api"]
    assert row["State"] == "exited", row
    stack.compose.run("start", "api")
    seen: list[tuple[float, str]] = [(20.0, "exited (killed, not restarted)")]
    wait_for_api(stack, t0, seen)
    lines = stack.section("fault: docker compose kill api, then docker compose start api")
    lines += timeline(seen)
    stack.restarts_expected.pop("api", None)  # a manual start resets the restart count
    assert_no_unexpected_restarts(stack)  # through every fault above


FINGERPRINT = (
    "SELECT '{t}', count(*), "
    "md5(coalesce(string_agg(md5(x::text), '' ORDER BY md5(x::text)), '')) FROM \"{t}\" x"
)


def fingerprints(stack: Stack, database: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent checksum of every table of a database."""
    tables = stack.compose.psql(
        database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
    )
    query = " UNION ALL ".join(FINGERPRINT.format(t=t) for (t,) in tables)
    return {name: (int(n), digest) for name, n, digest in stack.compose.psql(database, query)}


@dataclass(frozen=True)
class Held:
    """What the volumes hold: warehouse row counts, model versions and aliases, deployments,
    the MLflow artifact files."""

    warehouse: dict[str, int]
    models: list[list[str]]
    aliases: list[list[str]]
    deployments: list[list[str]]
    artifacts: str

    @classmethod
    def now(cls, stack: Stack) -> Held:
        env, psql = stack.env, stack.compose.psql
        return cls(
            warehouse={t: n for t, (n, _) in fingerprints(stack, env["WAREHOUSE_DB"]).items()},
            models=psql(env["MLFLOW_DB"], "SELECT name, version FROM model_versions ORDER BY 1, 2"),
            aliases=psql(
                env["MLFLOW_DB"],
                "SELECT name, alias, version FROM registered_model_aliases ORDER BY 1, 2",
            ),
            deployments=psql(env["PREFECT_DB"], "SELECT name FROM deployment ORDER BY 1"),
            artifacts=stack.compose.exec(
                "mlflow", "sh", "-c", "find /mlartifacts -type f | wc -l"
            ).stdout.strip(),
        )


def assert_no_unexpected_restarts(stack: Stack) -> None:
    """No container restarted by itself (a crash, an OOM kill) but the one the test crashed."""
    restarts = {
        s: stack.compose.inspect(s)["RestartCount"] for s in stack.up_services if s not in ONE_SHOT
    }
    assert {s: n for s, n in restarts.items() if n} == stack.restarts_expected, restarts


def test_down_then_up_keeps_every_volumes_data(stack: Stack) -> None:
    assert_no_unexpected_restarts(stack)  # through the faults above; `down` resets the counts
    before = Held.now(stack)
    assert before.models and before.aliases and len(before.deployments) == len(DEPLOYMENTS)
    t0 = time.monotonic()
    stack.compose.run("down", "--timeout", "30")
    assert stack.compose.ps() == []
    down = time.monotonic() - t0
    stack.compose.run("up", "-d", "--wait", "--wait-timeout", "600", *stack.up_services)
    up = time.monotonic() - t0 - down
    assert Held.now(stack) == before
    stack.section("lifecycle: docker compose down, then up").append(
        f"down {down:.1f} s, up --wait {up:.1f} s; kept {sum(before.warehouse.values())} "
        f"warehouse rows in {len(before.warehouse)} tables, {len(before.models)} model versions "
        f"({len(before.aliases)} aliases), {len(before.deployments)} deployments, "
        f"{before.artifacts} artifact files"
    )
    stack.restarts_expected.clear()  # new containers
    # and it serves again
    proxy = stack.proxy
    assert proxy is not None
    deadline = time.monotonic() + 120
    while proxy.curl("api", "/v1/forecasts?store_id=1", "-H", f"X-API-Key: {stack.key}")[0] != 200:
        assert time.monotonic() < deadline, stack.compose.logs("api")
        time.sleep(3)


WRITERS = ("worker", "api", "mlflow", "prefect-server", "superset", "jupyterlab")


def test_a_backup_restores_with_identical_rows_and_checksums(stack: Stack) -> None:
    """As `make restore` does, the services that write to the databases are stopped first, so
    the live databases can be compared with their restored copies checksum for checksum."""
    compose, env = stack.compose, stack.env
    compose.run("stop", *WRITERS)
    t0 = time.monotonic()
    made = compose.exec("backup", "/opt/backup/backup.sh").stdout
    backup = made.split()[1].rstrip(":")  # "backup /backups/<stamp>: <size>"
    took = time.monotonic() - t0
    compose.exec("backup", "env", "RESTORE_SUFFIX=_restored", "/opt/backup/restore.sh", backup)
    restored = time.monotonic() - t0 - took
    lines = stack.section("backup and restore drill (inside the containers)")
    lines.append(f"{made.strip()} in {took:.1f} s; restored into *_restored in {restored:.1f} s")
    for key in ("WAREHOUSE_DB", "MLFLOW_DB", "PREFECT_DB", "SUPERSET_DB"):
        original = fingerprints(stack, env[key])
        copy = fingerprints(stack, env[key] + "_restored")
        assert copy == original, key
        rows = sum(n for n, _ in original.values())
        lines.append(f"{env[key]:10s} {len(original):3d} tables, {rows:7d} rows: identical")
        assert rows > 0
    listing = compose.exec("backup", "tar", "-tzf", f"{backup}/mlflow-artifacts.tar.gz").stdout
    assert "MLmodel" in listing
    compose.run("up", "-d", "--wait", "--wait-timeout", "600", *stack.up_services)


# --- 7. memory ----------------------------------------------------------------------------------
def test_every_service_stays_under_80_percent_of_its_memory_limit(stack: Stack) -> None:
    stack.memory.poll()
    lines = stack.section(f"peak memory per service ({stack.memory.samples} docker stats samples)")
    over = []
    for service in sorted(stack.memory.peaks):
        peak, limit = stack.memory.peaks[service], stack.memory.limits[service]
        share = peak / limit
        lines.append(
            f"{service:18s} {peak / 2**20:7.0f} MiB of {limit / 2**20:5.0f} MiB  {share:4.0%}"
        )
        if share >= 0.8:
            over.append(service)
    oom = {
        s: stack.compose.inspect(s)["State"]["OOMKilled"]
        for s in stack.up_services
        if s not in ONE_SHOT
    }
    assert not any(oom.values()), oom
    assert_no_unexpected_restarts(stack)
    assert over == [], over
