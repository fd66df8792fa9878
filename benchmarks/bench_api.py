"""API benchmark with wrk (a separate load generator process), 64 connections, 2 threads:

- GET /v1/forecasts (one page, through key auth, the serving table and query validation) vs a
  bare FastAPI route returning a constant, both under uvicorn with one worker (target >= 0.7x),
  for both flavours of bare route (`def`, `async def`);
- POST /v1/predict, one row, vs `mlflow models serve` of the same registered model answering
  /invocations with the same row's raw inputs (target >= 3x).

Needs `wrk` (Debian: apt-get install wrk).
Run with `make bench` or `python -m benchmarks.bench_api`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.common import throwaway_postgres
from fournil.api.keys import create_key
from fournil.data.generator import GeneratorConfig, generate
from fournil.db import make_engine, upgrade
from fournil.etl.runner import run_etl
from fournil.forecast import run_forecast
from fournil.models.backtest import BacktestConfig
from fournil.models.estimators import ModelSpec
from fournil.models.gate import promote
from fournil.models.training import train
from fournil.settings import get_settings, reset_settings_cache

console = Console()
DURATION = "10s"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(cmd: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"{cmd[:4]} did not start: see {log}")


def _wrk(url: str, headers: dict[str, str], body: str | None = None) -> tuple[float, float, float]:
    """req/s, p50 ms, p99 ms."""
    # a generous timeout: a slow server's requests are counted, not dropped as socket errors
    args = ["wrk", "-t2", "-c64", "-d", DURATION, "--timeout", "30s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    if body is not None:
        script = Path(tempfile.mkdtemp()) / "post.lua"
        script.write_text(
            f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    for problem in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: (.*)"):
        found = re.search(problem, out)
        if found:
            console.print(f"[red]{url}: {found.group(0)}[/]")
    return rps, pct(" 50"), pct(" 99")


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench_api needs wrk: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres() as url:
        home = Path(tmp) / "home"
        env = {
            **os.environ,
            "FOURNIL_HOME": str(home),
            "DATABASE_URL": url,
            "FOURNIL_API_RATE_PER_MINUTE": "100000000",
            "FOURNIL_API_CHALLENGER_SHARE": "0",
            "FOURNIL_HORIZON": "7",
            # mlflow models serve runs `uvicorn` from PATH: this interpreter's
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("MLFLOW_TRACKING_URI", None)
        os.environ.update({k: env[k] for k in ("FOURNIL_HOME", "DATABASE_URL", "FOURNIL_HORIZON")})
        reset_settings_cache()
        settings = get_settings()
        console.print("[bold]api benchmark[/]: preparing a warehouse and a champion...")
        gen = generate(
            GeneratorConfig(stores=10, products=8, days=300, seed=5, end_date=dt.date(2026, 6, 30)),
            Path(tmp) / "drop",
        )
        engine = make_engine(url)
        upgrade(engine)
        assert run_etl(gen.out_dir, engine, settings).ok
        spec = ModelSpec(num_boost_round=100, horizon=7)
        (version,) = train(engine, settings, spec=spec, config=BacktestConfig(folds=1))
        assert promote(
            engine,
            version.name,
            version.version,
            settings.model_copy(
                update={"gate": settings.gate.model_copy(update={"max_latency_ms": 10_000})}
            ),
        ).promoted
        run_forecast(engine, settings)
        key = create_key(engine, "bench", ["admin"], settings.secret_key)
        engine.dispose()

        py = sys.executable
        ports = {name: _free_port() for name in ("api", "bare", "mlflow")}
        logs = Path(tmp)
        api = _start(
            [py, "-m", "fournil", "api", "serve", "--port", str(ports["api"]), "--workers", "1"],
            env,
            f"http://127.0.0.1:{ports['api']}/ready",
            logs / "api.log",
        )
        bare = _start(
            [
                py,
                "-m",
                "uvicorn",
                "benchmarks.bare_app:app",
                "--port",
                str(ports["bare"]),
                "--workers",
                "1",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env,
            f"http://127.0.0.1:{ports['bare']}/constant",
            logs / "bare.log",
        )
        serve = _start(
            [
                py,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                f"models:/{settings.model_name}/{version.version}",
                "--env-manager",
                "local",
                "-p",
                str(ports["mlflow"]),
                "-h",
                "127.0.0.1",
                "-w",
                "1",
            ],
            {**env, "MLFLOW_TRACKING_URI": settings.tracking_uri},
            f"http://127.0.0.1:{ports['mlflow']}/ping",
            logs / "mlflow.log",
        )
        try:
            base = f"http://127.0.0.1:{ports['api']}"
            day = str(gen.end + dt.timedelta(days=1))
            row = {"store_id": 1, "product_id": 1, "date": day}
            check = httpx.post(
                f"{base}/v1/predict", json={"rows": [row]}, headers={"X-API-Key": key}
            )
            assert check.status_code == 200, check.text
            from fournil.api.inputs import Row, raw_inputs
            from fournil.api.tables import ServingTables

            engine = make_engine(url)
            tables = ServingTables(engine, settings)
            tables.refresh()
            raw = raw_inputs(
                engine, tables.snapshot, [Row(1, 1, dt.date.fromisoformat(day), None, None, None)]
            )
            engine.dispose()
            invocation = json.dumps(
                {"dataframe_split": json.loads(raw.to_json(orient="split", index=False))}
            )
            probe = httpx.post(
                f"http://127.0.0.1:{ports['mlflow']}/invocations",
                content=invocation,
                headers={"Content-Type": "application/json"},
                timeout=30,
            )
            assert probe.status_code == 200, probe.text[:500]
            results = {
                "GET /v1/forecasts": _wrk(
                    f"{base}/v1/forecasts?store_id=1&product_id=1", {"X-API-Key": key}
                ),
                "bare FastAPI constant (def)": _wrk(
                    f"http://127.0.0.1:{ports['bare']}/constant", {}
                ),
                "bare FastAPI constant (async def)": _wrk(
                    f"http://127.0.0.1:{ports['bare']}/constant-async", {}
                ),
                "POST /v1/predict (1 row)": _wrk(
                    f"{base}/v1/predict", {"X-API-Key": key}, json.dumps({"rows": [row]})
                ),
                "mlflow models serve (1 row)": _wrk(
                    f"http://127.0.0.1:{ports['mlflow']}/invocations", {}, invocation
                ),
            }
        finally:
            for proc in (api, bare, serve):
                proc.terminate()
                proc.wait(timeout=30)

    table = Table(
        title=f"API under wrk -t2 -c64 -d{DURATION} (1 uvicorn worker each, same 2 cores)"
    )
    for column in ("endpoint", "req/s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for name, (rps, p50, p99) in results.items():
        table.add_row(name, f"{rps:,.0f}", f"{p50:.1f}", f"{p99:.1f}")
    console.print(table)
    forecasts = results["GET /v1/forecasts"][0]
    predict = results["POST /v1/predict (1 row)"][0] / results["mlflow models serve (1 row)"][0]
    for label, value, target in (
        (
            "/v1/forecasts vs bare `def` route",
            forecasts / results["bare FastAPI constant (def)"][0],
            0.7,
        ),
        (
            "/v1/forecasts vs bare `async def` route",
            forecasts / results["bare FastAPI constant (async def)"][0],
            0.7,
        ),
        ("/v1/predict vs mlflow models serve", predict, 3.0),
    ):
        verdict = "[green]meets[/]" if value >= target else "[red]misses[/]"
        console.print(f"{label}: {value:.2f}x (target >= {target}x) {verdict}")


if __name__ == "__main__":
    main()
