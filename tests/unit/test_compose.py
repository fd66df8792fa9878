"""The compose stack's conventions, checked on the file itself (no Docker engine here)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fournil.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RAW = "\n".join(  # the file without its comment lines
    line
    for line in (ROOT / "docker-compose.yml").read_text(encoding="utf-8").splitlines()
    if not line.lstrip().startswith("#")
)
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}; not $${...} (escaped)
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
#: credentials the user brings from elsewhere (their mail provider's): never generated, never a
#: default in compose, empty in .env.example
BROUGHT = {"FOURNIL_REPORT_SMTP_PASSWORD"}
CORE = {"db", "migrate", "mlflow", "prefect-server", "worker", "api", "proxy", "backup"}


def one_shot(name: str) -> bool:
    return SERVICES[name].get("restart") == "no"


def test_every_long_running_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in SERVICES.items():
        assert "restart" in service, name
        if one_shot(name):
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name


def test_one_shot_jobs_gate_the_services_that_need_them() -> None:
    jobs = [name for name in SERVICES if one_shot(name)]
    assert set(jobs) == {"migrate", "superset-init"}
    for job in jobs:
        waiting = [
            name
            for name, service in SERVICES.items()
            if service.get("depends_on", {}).get(job, {}).get("condition")
            == "service_completed_successfully"
        ]
        assert waiting, f"nothing waits for {job} to complete"


def test_dependencies_wait_for_health_or_completion() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with a condition"
        for target, spec in depends.items():
            expected = "service_completed_successfully" if one_shot(target) else "service_healthy"
            assert spec.get("condition") == expected, (name, target)


def test_images_are_pinned_and_only_the_proxy_publishes_ports() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", (name, image)
        assert re.search(r"\d", tag) or "${FOURNIL_VERSION" in tag, (name, image)
        assert "container_name" not in service, name
        assert ("ports" in service) == (name == "proxy"), name
        assert "mem_limit" in service, name


def test_profiles_leave_the_core_without_bi_ci_or_notebooks() -> None:
    core = {name for name, service in SERVICES.items() if not service.get("profiles")}
    assert core == CORE
    assert SERVICES["superset"]["profiles"] == ["bi"]
    assert SERVICES["jenkins"]["profiles"] == ["ci"]
    assert SERVICES["jupyterlab"]["profiles"] == ["notebook"]


def test_every_variable_is_documented_and_no_secret_has_a_default() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    used = VARIABLE.findall(RAW)
    assert used
    for name, operator, _ in used:
        assert name in documented, f"{name} is not in .env.example"
        if name in BROUGHT:
            assert operator == "?", f"{name} must be ${{{name}?...}}: set, maybe empty"
            assert re.search(rf"^{name}=$", example, flags=re.MULTILINE), name
        elif SECRET.search(name):
            assert operator in (":?", "?"), f"{name} must be ${{{name}:?...}}: no default"
            assert re.search(rf"^{name}=change-me$", example, flags=re.MULTILINE), (
                f"{name} must be a change-me placeholder in .env.example (make init-env)"
            )


def test_bind_mounts_exist_in_the_repository() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)
            elif source.startswith("/"):  # a host path: only read-only, for the node exporter,
                # and the Docker socket for Jenkins' deploy stage (documented in README)
                allowed = (name == "node-exporter" and ":ro" in volume) or (
                    name == "jenkins" and volume == "/var/run/docker.sock:/var/run/docker.sock"
                )
                assert allowed, (name, volume)
            elif source.startswith("${FOURNIL_DEPLOY_DIR"):  # the stack's folder, same path
                assert name == "jenkins", (name, volume)
            else:
                assert source in COMPOSE["volumes"], (name, source)


@pytest.mark.parametrize(
    "service", sorted(n for n, s in SERVICES.items() if (s.get("command") or [""])[0] == "fournil")
)
def test_fournil_commands_exist(service: str) -> None:
    """A compose service's command is a command of the CLI you can run on the host."""
    command = SERVICES[service]["command"]
    if isinstance(command, str):
        command = shlex.split(command)
    done = CliRunner().invoke(app, [*command[1:], "--help"])
    assert done.exit_code == 0, done.output


def test_init_env_replaces_every_placeholder_with_a_distinct_secret(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("init_env", ROOT / "compose" / "init_env.py")
    assert spec and spec.loader
    init_env = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(init_env)
    out = tmp_path / ".env"
    assert init_env.main(["--output", str(out), "--domain", "bakery.example.org"]) == 0
    values = dict(
        line.split("=", 1)
        for line in out.read_text().splitlines()
        if line and not line.startswith("#")
    )
    placeholders = [k for k, v in values.items() if v == "change-me"]
    assert placeholders == []
    assert all(values[k] == "" for k in BROUGHT)  # not generated: the user's own
    secrets = [v for k, v in values.items() if SECRET.search(k) and k not in BROUGHT]
    assert len(secrets) >= 10 and len(set(secrets)) == len(secrets)
    assert all(len(s) >= 40 for s in secrets)
    assert values["FOURNIL_DOMAIN"] == "bakery.example.org"
    assert values["FOURNIL_MODE"] == "production"
    assert values["FOURNIL_DEPLOY_DIR"] == str(ROOT)  # the checkout Jenkins deploys
    assert values["FOURNIL_REPO_URL"] and "your-org" not in values["FOURNIL_REPO_URL"]
    assert out.stat().st_mode & 0o777 == 0o600
    assert init_env.main(["--output", str(out)]) == 1  # never overwrites silently


def third_party_images() -> set[str]:
    """Every image the stack pulls rather than builds: compose `image:` without a build section,
    and the Dockerfiles' default base images (ARG ..._IMAGE=...)."""
    built = {
        s["image"] for s in SERVICES.values() if "build" in s or s.get("pull_policy") == "never"
    }
    pulled = {s["image"] for s in SERVICES.values()} - built
    for dockerfile in (ROOT / "services").glob("*/Dockerfile"):
        pulled |= set(re.findall(r"^ARG \w+_IMAGE=(\S+)$", dockerfile.read_text(), re.MULTILINE))
    return pulled


def test_every_third_party_image_has_a_stand_in_for_the_compose_test() -> None:
    standins = ROOT / "compose" / "standins"
    listed = {}
    for line in (standins / "images.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            tag, dockerfile = line.split()
            listed[tag] = dockerfile
    no_package = {i for i in third_party_images() if i.startswith(("grafana/", "jenkins/"))}
    assert set(listed) == third_party_images() - no_package
    for tag, dockerfile in listed.items():
        text = (standins / dockerfile).read_text()
        assert text.startswith("# STAND-IN FOR TESTS ONLY"), dockerfile
        assert tag in text.splitlines()[0] + text.splitlines()[1], (tag, dockerfile)


def test_dockerfiles_build_without_a_frontend_image() -> None:
    """A `# syntax=` line makes BuildKit pull its frontend from a registry: the built-in
    frontend handles the cache and secret mounts these Dockerfiles use."""
    for dockerfile in [
        *ROOT.glob("services/*/Dockerfile"),
        *ROOT.glob("compose/standins/*.Dockerfile"),
    ]:
        first = dockerfile.read_text().splitlines()[0]
        assert not first.lower().startswith("# syntax="), dockerfile


def test_images_that_import_lightgbm_have_its_openmp_runtime() -> None:
    for name in ("fournil", "jupyter"):
        assert "libgomp1" in (ROOT / "services" / name / "Dockerfile").read_text(), name
