"""The deploy stage's script (jenkins/deploy.sh) on a VM we do not have: `docker` is the one
stand-in here (no Docker engine), a script that records its calls and plays the part asked of
it (a tag that never gets healthy, a smoke test that fails, a champion that moved). What is
tested is the script's own logic: rollout, smoke test, rollback of the tag and of the model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_DOCKER = r"""#!/usr/bin/env bash
# stand-in for `docker compose`: logs its arguments; behaviour from FAKE_* variables
echo "$*" >> "$FAKE_LOG"
env_file=""; prev=""
for arg in "$@"; do [[ "$prev" == "--env-file" ]] && env_file="$arg"; prev="$arg"; done
tag="$(sed -n 's/^FOURNIL_VERSION=//p' "$env_file")"
case "$*" in
  *" up -d --wait"*) [[ "$tag" != "${FAKE_UNHEALTHY_TAG:-}" ]] ;;
  *"exec -T api fournil api smoke"*) [[ "$tag" != "${FAKE_SMOKE_FAILS_ON:-}" ]] ;;
  *"exec -T worker fournil model champion"*)
    head -n 1 "$FAKE_CHAMPIONS"; sed -i '1d' "$FAKE_CHAMPIONS" ;;
  *) true ;;
esac
"""


def deploy(
    tmp_path: Path, tag: str, champions: list[str], **fake: str
) -> tuple[int, str, list[str]]:
    stack = tmp_path / "stack"
    stack.mkdir(exist_ok=True)
    env_file = stack / ".env"
    if not env_file.exists():
        env_file.write_text("FOURNIL_DOMAIN=example.org\nFOURNIL_VERSION=old111\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (tmp_path / "champions").write_text("".join(f"{c}\n" for c in champions))
    log = tmp_path / "docker.log"
    log.write_text("")
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FOURNIL_DEPLOY_DIR": str(stack),
        "FAKE_LOG": str(log),
        "FAKE_CHAMPIONS": str(tmp_path / "champions"),
        **fake,
    }
    done = subprocess.run(
        ["bash", str(ROOT / "jenkins" / "deploy.sh"), tag],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    calls = [
        line.split(" --env-file ")[1].split(" ", 1)[1] for line in log.read_text().splitlines()
    ]
    tag_now = [
        line for line in env_file.read_text().splitlines() if line.startswith("FOURNIL_VERSION=")
    ]
    assert tag_now and len(tag_now) == 1
    return done.returncode, tag_now[0].split("=")[1], calls


def test_a_healthy_tag_that_passes_its_smoke_test_stays(tmp_path: Path) -> None:
    code, tag, calls = deploy(tmp_path, "new222", ["3"])
    assert code == 0 and tag == "new222"
    assert calls == [
        "exec -T worker fournil model champion",
        "up -d --wait --wait-timeout 300 migrate mlflow prefect-server worker api",
        "exec -T api fournil api smoke",
    ]


def test_a_tag_that_never_gets_healthy_is_rolled_back(tmp_path: Path) -> None:
    code, tag, calls = deploy(tmp_path, "new222", ["3", "3"], FAKE_UNHEALTHY_TAG="new222")
    assert code == 1 and tag == "old111"  # the previous images are back
    ups = [c for c in calls if c.startswith("up ")]
    assert len(ups) == 2  # the new tag, then the previous one
    assert "exec -T worker fournil model rollback" not in calls  # the champion did not move
    assert calls[-1] == "exec -T api fournil api smoke"  # the rollback is smoke-tested too


def test_a_failed_smoke_test_rolls_back_the_images_and_a_champion_that_moved(
    tmp_path: Path,
) -> None:
    code, tag, calls = deploy(tmp_path, "new222", ["3", "4"], FAKE_SMOKE_FAILS_ON="new222")
    assert code == 1 and tag == "old111"
    assert "exec -T worker fournil model rollback" in calls
    assert calls.index("exec -T worker fournil model rollback") > calls.index(
        "exec -T worker fournil model champion", 1
    )


def test_the_script_refuses_to_run_without_its_stack_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "jenkins" / "deploy.sh"), "abc"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0 and "FOURNIL_DEPLOY_DIR" in done.stderr
