"""Run docker-compose.yml's services natively, with the commands the compose file gives them.

No Docker engine here, so the stack test reads each service's `entrypoint`, `command`,
`environment`, `volumes` and `healthcheck` from the compose file (the one source of truth) and
translates what only makes sense inside the compose network:

- `${VAR}` interpolation, as compose does it, from a test `.env`;
- `<service>:<container port>` becomes `127.0.0.1:<free port>` (the db service: the test server);
  a service's own listening port and `0.0.0.0` binds likewise; a value that is only a service
  name (`PGHOST: db`) becomes its host, and libpq's `PGPORT` the server's port;
- container paths become host paths: named volumes are folders under a temp dir, bind mounts
  are copies of the repository files with the same translation applied to their text;
- an image's executable (`/bin/prometheus`) is looked up on PATH by name; an image with its own
  virtualenv (Superset's) gets that virtualenv's bin folder first on PATH (`bin_dirs`).

Nothing else is changed; the translation is listed in `Native.translations` for the test log.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)(?:(:?[-?])([^}]*))?\}")
HEALTH_PORT = re.compile(r"127\.0\.0\.1:(\d+)")
DEBIAN_NAMES = {
    "node_exporter": "prometheus-node-exporter",
    "postgres_exporter": "prometheus-postgres-exporter",
    "alertmanager": "prometheus-alertmanager",
}


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A free port, never one this process handed out before: the OS may offer a just-closed
    port again, and two services (the proxy's HTTP and HTTPS ports) must not share one."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable syntax: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, $$."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        value = env.get(name)
        unset = value is None or (operator in (":-", ":?") and value == "")
        if operator in (":-", "-") and unset:
            return argument
        if operator in (":?", "?") and unset:
            raise KeyError(f"{name} is required: {argument}")
        return value or ""

    return VARIABLE.sub(one, text)


@dataclass
class Native:
    root: Path
    workdir: Path
    env: dict[str, str]  # the .env the compose file is interpolated with
    db_host: str
    db_port: int
    extra_env: dict[str, str] = field(default_factory=dict)  # test-only, listed in the log
    # an image's own virtualenv (service -> its bin folder here), first on the service's PATH
    bin_dirs: dict[str, Path] = field(default_factory=dict)
    compose: dict[str, Any] = field(init=False)
    ports: dict[str, tuple[int, int]] = field(init=False)  # service -> (container, host)
    translations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.compose = yaml.safe_load((self.root / "docker-compose.yml").read_text())
        self.ports = {"db": (5432, self.db_port)}
        for name, service in self.compose["services"].items():
            test = " ".join(service.get("healthcheck", {}).get("test", []))
            found = HEALTH_PORT.search(test)
            if found:
                self.ports[name] = (int(found.group(1)), free_port())

    def host(self, service: str) -> str:
        return self.db_host if service == "db" else "127.0.0.1"

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service][1]}{path}"

    # --- translation ------------------------------------------------------------------------
    def _mounts(self, service: str) -> list[tuple[str, Path]]:
        """(container path, host path) for the service's volumes, longest container path first.
        Bind mounts are copied once, with addresses and container paths translated."""
        mounts, binds = [], []
        for volume in self.compose["services"][service].get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                host = self.workdir / "binds" / service / source[2:]
                binds.append((self.root / source[2:], host))
            elif source.startswith("/"):  # a host path (read-only): the same path here
                host = Path(source)
            else:
                host = self.workdir / "volumes" / source
                host.mkdir(parents=True, exist_ok=True)
            mounts.append((target, host))
        mounts.sort(key=lambda m: -len(m[0]))
        for source, host in binds:
            if not host.exists():
                self._copy_translated(service, source, host, mounts)
        return mounts

    def _copy_translated(
        self, service: str, source: Path, target: Path, mounts: list[tuple[str, Path]]
    ) -> None:
        if source.is_dir():
            shutil.copytree(source, target)
            files = [p for p in target.rglob("*") if p.is_file()]
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            files = [target]
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            path.write_text(self._paths(self._addresses(service, text), mounts), encoding="utf-8")

    def _addresses(self, service: str, text: str) -> str:
        for name, (inside, outside) in self.ports.items():
            text = re.sub(
                rf"(?<![\w.-]){re.escape(name)}:{inside}\b", f"{self.host(name)}:{outside}", text
            )
        if service in self.ports:
            inside, outside = self.ports[service]
            for bind in ("0.0.0.0", "127.0.0.1", "localhost"):
                text = text.replace(f"{bind}:{inside}", f"127.0.0.1:{outside}")
            text = re.sub(rf"(--port[= ]){inside}\b", rf"\g<1>{outside}", text)
        return re.sub(r"(--(?:host|ip)[= ])0\.0\.0\.0", r"\g<1>127.0.0.1", text)

    @staticmethod
    def _paths(text: str, mounts: list[tuple[str, Path]]) -> str:
        for inside, host in mounts:
            text = re.sub(rf"(?<![\w/.-]){re.escape(inside)}(?=/|\b|$)", str(host), text)
        return text

    def translate(self, service: str, text: str) -> str:
        return self._paths(
            self._addresses(service, interpolate(text, self.env)), self._mounts(service)
        )

    def _as_list(self, value: Any) -> list[str]:
        if value is None:
            return []
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    def command(self, service: str) -> list[str]:
        spec = self.compose["services"][service]
        words = self._as_list(spec.get("entrypoint")) + self._as_list(spec.get("command"))
        out: list[str] = []
        inside = self.ports.get(service, (None, None))[0]
        for word in words:
            if out and out[-1] in ("--port", "-p") and word == str(inside):
                out.append(str(self.ports[service][1]))
            elif out and out[-1] in ("--host", "--ip") and word == "0.0.0.0":
                out.append("127.0.0.1")
            else:
                out.append(self.translate(service, word))
        if out and out[0].startswith("/") and not Path(out[0]).exists():
            name = Path(out[0]).name  # an image's executable, by name (Debian's, if it differs)
            found = shutil.which(DEBIAN_NAMES.get(name, name))
            assert found, f"{out[0]} is not installed here"
            self.translations.append(f"{service}: {out[0]} -> {found}")
            out[0] = found
        return out

    def environment(self, service: str) -> dict[str, str]:
        spec = self.compose["services"][service].get("environment", {})
        services = self.compose["services"]
        out = {}
        for key, raw in spec.items():
            value = self.translate(service, str(raw))
            if value in services:  # a bare host name (PGHOST: db)
                value = self.host(value)
            elif key == "PGPORT":
                value = str(self.db_port)
            elif key.endswith("PORT") and service in self.ports:
                inside, outside = self.ports[service]
                value = str(outside) if value == str(inside) else value
            elif value == "0.0.0.0":
                value = "127.0.0.1"
            out[key] = value
        return out

    def process_env(self, service: str) -> dict[str, str]:
        """The service's environment on top of a clean host environment."""
        home = self.workdir / "home" / service
        home.mkdir(parents=True, exist_ok=True)
        keep = ("PATH", "LANG", "LC_ALL", "TZ", "TEST_DATABASE_URL")
        base = {k: v for k, v in os.environ.items() if k in keep}
        venv_bin = str(self.bin_dirs.get(service, Path(sys.executable).parent))
        base["PATH"] = f"{venv_bin}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}"
        base["HOME"] = str(home)  # a container has its own home: Prefect, MLflow state
        return {**base, **self.environment(service), **self.extra_env}

    # --- running ----------------------------------------------------------------------------
    def start(self, service: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / "logs").joinpath(f"{service}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        command = self.command(service)
        self.translations.append(f"{service}: {shlex.join(command)}")
        return subprocess.Popen(
            command,
            cwd=self.root,
            env=self.process_env(service),
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run(self, service: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A one-shot service (an init job), to completion."""
        return subprocess.run(
            self.command(service),
            cwd=self.root,
            env=self.process_env(service),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def healthy(self, service: str) -> bool:
        """The service's compose healthcheck, run here."""
        test = [str(t) for t in self.compose["services"][service]["healthcheck"]["test"]]
        kind, rest = test[0], test[1:]
        command = (
            ["bash", "-c", self.translate(service, rest[0])]
            if kind == "CMD-SHELL"
            else [self.translate(service, word) for word in rest]
        )
        done = subprocess.run(
            command, env=self.process_env(service), capture_output=True, timeout=30, check=False
        )
        return done.returncode == 0

    def wait_healthy(
        self, service: str, proc: subprocess.Popen[bytes], seconds: float = 300
    ) -> None:
        deadline = time.monotonic() + seconds
        while not self.healthy(service):
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited {proc.returncode}: {self.log(service)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} not healthy in {seconds} s: {self.log(service)}")
            time.sleep(1)

    def log(self, service: str, tail: int = 3000) -> str:
        path = self.workdir / "logs" / f"{service}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else "(no log)"
