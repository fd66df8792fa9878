"""Driving the real compose stack: `docker compose` with the repository's docker-compose.yml and a
test .env, what its containers report (`ps`, `stats`), and the proxy as a client reaches it.

Nothing here re-enacts a service: every call goes to the Docker engine or through the proxy's
published ports (on 127.0.0.1), except the Superset REST client and the fault-loop client, which
talk to their container's address on the compose network (the proxy's basic auth takes the
Authorization header that Superset's API tokens need).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
QUIET = {"ps", "logs"}  # polled: not logged
UNITS = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "kB": 10**3, "MB": 10**6, "GB": 10**9}


def to_bytes(text: str) -> int:
    """`docker stats` sizes: 12.5MiB, 1GiB, 0B."""
    found = re.fullmatch(r"([\d.]+)\s*([A-Za-z]+)", text.strip())
    assert found, text
    return int(float(found.group(1)) * UNITS[found.group(2)])


def clean_env() -> dict[str, str]:
    """The compose CLI's environment: the .env file decides, not this test process's variables
    (compose lets the shell override .env)."""
    keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR", "LANG")
    return {k: v for k, v in os.environ.items() if k in keep}


@dataclass
class Compose:
    project: str
    env_file: Path
    log: list[str] = field(default_factory=list)

    def command(self, *args: str) -> list[str]:
        base = ["docker", "compose", "-p", self.project, "--env-file", str(self.env_file)]
        return [*base, "-f", str(ROOT / "docker-compose.yml"), *args]

    def run(
        self, *args: str, timeout: float = 900, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        done = subprocess.run(
            self.command(*args),
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=clean_env(),
            cwd=ROOT,
        )
        if args[0] not in QUIET:
            said = " ".join(args).replace("\n", " ")[:120]
            line = f"{time.monotonic() - started:7.1f} s  docker compose {said}"
            self.log.append(line)
            print(f"compose-test: {line}", flush=True)  # progress (make compose-test: pytest -s)
        if check:
            assert done.returncode == 0, (
                f"docker compose {' '.join(args)} exited {done.returncode}\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done

    def exec(self, service: str, *command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "-T", service, *command, **kwargs)

    def ps(self) -> list[dict[str, Any]]:
        out = self.run("ps", "-a", "--format", "json", timeout=60).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service, timeout=60).stdout.strip()

    def address(self, service: str) -> str:
        """The service's address on the compose network."""
        networks = self.inspect(service)["NetworkSettings"]["Networks"].values()
        return "".join(network["IPAddress"] for network in networks)

    def inspect(self, service: str) -> dict[str, Any]:
        done = subprocess.run(
            ["docker", "inspect", self.container(service)],
            capture_output=True,
            text=True,
            check=True,
        )
        return dict(json.loads(done.stdout)[0])

    def psql(self, database: str, sql: str) -> list[list[str]]:
        out = self.exec("db", "psql", "-U", "postgres", "-d", database, "-AtF", "\t", "-c", sql)
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def logs(self, *services: str, tail: int = 80) -> str:
        return self.run("logs", "--no-color", "--tail", str(tail), *services, check=False).stdout


def service_of(container_name: str, project: str) -> str:
    """fournil-ci-api-1 -> api"""
    return re.sub(r"-\d+$", "", container_name.removeprefix(f"{project}-"))


class Poller:
    """Calls `poll()` every `every` seconds in a thread between `start()` and `stop()`;
    containers come and go (restarts, down/up), so a failed poll is skipped."""

    every = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = 0.0

    def poll(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        with contextlib.suppress(subprocess.SubprocessError, ValueError, AssertionError):
            self.poll()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(subprocess.SubprocessError, ValueError, AssertionError):
                self.poll()
            self._stop.wait(self.every)


class MemorySampler(Poller):
    """`docker stats` of the project's containers: the peak and the limit per service."""

    every = 3.0

    def __init__(self, project: str) -> None:
        super().__init__()
        self.project = project
        self.peaks: dict[str, int] = {}
        self.limits: dict[str, int] = {}
        self.samples = 0

    def poll(self) -> None:
        ids = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={self.project}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
        if not ids:
            return
        out = subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{json .}}", *ids],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        ).stdout
        for line in out.splitlines():
            row = json.loads(line)
            used, _, limit = row["MemUsage"].partition(" / ")
            service = service_of(row["Name"], self.project)
            if not to_bytes(limit):  # stopping or starting: no figures
                continue
            self.peaks[service] = max(self.peaks.get(service, 0), to_bytes(used))
            self.limits[service] = to_bytes(limit)
        self.samples += 1


class HealthWatch(Poller):
    """When each service first became healthy (or running, without a health check) or, for a
    one-shot job, exited; seconds from `start()`."""

    def __init__(self, compose: Compose, one_shot: set[str]) -> None:
        super().__init__()
        self.compose = compose
        self.one_shot = one_shot
        self.reached: dict[str, float] = {}
        self.exited: dict[str, int] = {}

    def poll(self) -> None:
        now = time.monotonic() - self.t0
        for row in self.compose.ps():
            service, state, health = row["Service"], row["State"], row.get("Health", "")
            if service in self.reached:
                continue
            if service in self.one_shot:
                if state == "exited":
                    self.exited[service] = int(row.get("ExitCode", -1))
                    self.reached[service] = now
            elif health == "healthy" or (state == "running" and not health):
                self.reached[service] = now
            elif state == "exited":
                self.exited[service] = int(row.get("ExitCode", -1))
                self.reached[service] = now


@dataclass
class Proxy:
    """The proxy as a client on the VM reaches it: https://<name>.localhost:<published port>,
    trusting Caddy's internal CA."""

    https_port: int
    ca: Path

    def curl(self, host: str, path: str, *args: str, timeout: float = 60) -> tuple[int, str]:
        name = f"{host}.localhost"
        done = subprocess.run(
            [
                *("curl", "-sS", "--max-time", str(int(timeout)), "--cacert", str(self.ca)),
                *("--resolve", f"{name}:{self.https_port}:127.0.0.1", "-w", "\n%{http_code}"),
                *args,
                f"https://{name}:{self.https_port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout + 10,
            check=False,
        )
        assert done.returncode == 0, f"curl {name}{path}: {done.stderr}"
        body, _, status = done.stdout.rpartition("\n")
        return int(status), body

    def json(self, host: str, path: str, *args: str) -> Any:
        status, body = self.curl(host, path, *args)
        assert status == 200, (host, path, status, body[:500])
        return json.loads(body)


def timeline(events: Iterable[tuple[float, str]]) -> list[str]:
    """Consecutive equal outcomes folded: '0.0-4.1 s  200 x17'."""
    lines: list[str] = []
    run: list[tuple[float, str]] = []
    for event in [*events, (float("inf"), "")]:
        if run and event[1] != run[0][1]:
            lines.append(f"{run[0][0]:6.1f}-{run[-1][0]:6.1f} s  {run[0][1]} x{len(run)}")
            run = []
        run.append(event)
    return lines
