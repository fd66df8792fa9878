"""Jenkins cannot run here: its pipeline is a thin caller of Makefile targets, so what it runs
is tested by the same targets in CI (.ci/run). These tests hold the Jenkinsfile to that and
check the configuration as code: every `sh` step is `make <target>` with a target that exists
and dry-runs; CI, delivery and deployment stages are all there; JCasC and plugins.txt are
well-formed and provide every step and credential the Jenkinsfile uses."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = (ROOT / "Jenkinsfile").read_text(encoding="utf-8")
CASC = yaml.safe_load((ROOT / "jenkins" / "casc.yaml").read_text(encoding="utf-8"))
PLUGINS = [
    line.strip()
    for line in (ROOT / "jenkins" / "plugins.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]
SH_STEPS = re.findall(r"""\bsh\s+(['"])(.+?)\1""", JENKINSFILE)


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-zA-Z][\w-]*):(?!=)", text, flags=re.MULTILINE))


def test_every_step_is_a_make_target_that_exists() -> None:
    assert len(SH_STEPS) >= 8
    targets = make_targets()
    for _, command in SH_STEPS:
        words = shlex.split(command)
        assert words[0] == "make", f"not a make target: {command}"
        named = [w for w in words[1:] if "=" not in w]
        assert len(named) == 1 and named[0] in targets, command


@pytest.mark.parametrize("command", sorted({c for _, c in SH_STEPS}))
def test_each_step_dry_runs(command: str) -> None:
    """`make -n`: the target and what it depends on resolve (nothing is executed)."""
    words = [w.replace("${GIT_COMMIT}", "0123abcd") for w in shlex.split(command)]
    done = subprocess.run(
        ["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), f"{command} does nothing"


def test_the_three_parts_of_seed_000_are_there() -> None:
    stages = re.findall(r"stage\('([^']+)'\)", JENKINSFILE)
    for stage in (
        "CI",
        "Lint and types",
        "Unit tests",
        "Integration tests",
        "Compose and Dockerfiles",
        "Delivery",
        "Build images",
        "Qualification",
        "Deployment",
        "Approval",
        "Deploy",
    ):
        assert stage in stages, stage
    deployment = JENKINSFILE[JENKINSFILE.index("stage('Deployment')") :]
    assert "when { branch 'main' }" in deployment.split("stages {")[0]
    assert "params.REQUIRE_APPROVAL" in deployment and "input message" in deployment
    assert "make images TAG=${GIT_COMMIT}" in JENKINSFILE  # images tagged with the commit
    assert "junit " in JENKINSFILE and "recordCoverage" in JENKINSFILE


def test_the_ci_stages_run_what_ci_runs() -> None:
    """`.ci/run` (CI here) and the Jenkins CI stages run the same checks."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for target in ("lint", "compose-check"):
        assert f"make {target}" in ci and f"sh 'make {target}'" in JENKINSFILE
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    # make test (what .ci/run calls) covers unit, integration and the stack (qualify)
    assert re.search(r"^test: .*\n\t\$\(RUN\) pytest tests ", make, flags=re.MULTILINE)
    assert re.search(r"^qualify: stack-test", make, flags=re.MULTILINE)


def test_plugins_are_pinned_and_provide_the_steps_used() -> None:
    pins = dict(line.split(":", 1) for line in PLUGINS)
    assert len(pins) == len(PLUGINS), "a plugin is listed twice"
    for name, version in pins.items():
        assert re.fullmatch(r"[a-z0-9-]+", name), name
        assert version and version != "latest" and re.search(r"\d", version), (name, version)
    needs = {
        "configuration-as-code": "casc.yaml",
        "job-dsl": "the jobs: section",
        "workflow-aggregator": "declarative pipeline",
        "workflow-multibranch": "multibranchPipelineJob",
        "git": "the git branch source",
        "junit": "junit",
        "coverage": "recordCoverage",
        "timestamper": "timestamps()",
        "credentials-binding": "withCredentials",
        "matrix-auth": "globalMatrix",
    }
    assert set(needs) <= set(pins), set(needs) - set(pins)


def test_casc_creates_the_admin_the_credentials_and_the_job_from_the_environment() -> None:
    jenkins = CASC["jenkins"]
    (user,) = jenkins["securityRealm"]["local"]["users"]
    assert user["password"] == "${JENKINS_ADMIN_PASSWORD}"  # from .env, never in git
    assert jenkins["securityRealm"]["local"]["allowsSignup"] is False
    entries = jenkins["authorizationStrategy"]["globalMatrix"]["entries"]
    assert any("Overall/Administer" in e.get("user", {}).get("permissions", []) for e in entries)
    creds = CASC["credentials"]["system"]["domainCredentials"][0]["credentials"]
    ids = {next(iter(c.values()))["id"] for c in creds}
    used = set(re.findall(r"credentialsId: '([^']+)'", JENKINSFILE))
    (script,) = [j["script"] for j in CASC["jobs"]]
    used |= set(re.findall(r"credentialsId\('([^']+)'\)", script))
    assert used and used <= ids, used - ids
    for cred in creds:
        values = [v for k, v in next(iter(cred.values())).items() if k in ("password", "secret")]
        assert all(str(v).startswith("${") for v in values), cred  # no secret in the file
    assert "scriptPath('Jenkinsfile')" in script
    assert "remote('${FOURNIL_REPO_URL}')" in script
    # every ${VAR} the file needs is given to the container by docker-compose.yml
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    environment = compose["services"]["jenkins"]["environment"]
    text = yaml.safe_dump(CASC)  # the values, not the comments
    for name, default in re.findall(r"\$\{([A-Z_]+)(:-[^}]*)?\}", text):
        assert name in environment or default, f"{name} is not passed to the jenkins service"


def test_the_jenkins_image_installs_the_pinned_plugins_and_the_casc() -> None:
    dockerfile = (ROOT / "services" / "jenkins" / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"JENKINS_IMAGE=jenkins/jenkins:(\S+)", dockerfile)
    assert base and re.fullmatch(r"\d+\.\d+\.\d+-lts-jdk\d+", base.group(1)), "a pinned LTS"
    assert "jenkins-plugin-cli --plugin-file /usr/share/jenkins/ref/plugins.txt" in dockerfile
    assert "CASC_JENKINS_CONFIG=/usr/share/jenkins/casc.yaml" in dockerfile
    assert "runSetupWizard=false" in dockerfile  # no clicks after `docker compose up`
