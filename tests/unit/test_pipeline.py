"""The pipeline's results (what a run records) and the flows' module entrypoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fournil import pipeline
from fournil.etl.runner import FileResult
from fournil.orchestration import DEPLOYMENTS


def _file(name: str, status: str = "success", read: int = 10, rejected: int = 0) -> FileResult:
    return FileResult(
        path=Path("/landing") / name,
        kind="sales",
        run_id=1,
        status=status,
        rows_read=read,
        rows_inserted=read - rejected,
        rows_rejected=rejected,
        warnings=["w"] if rejected else [],
        error=None if status == "success" else "wrong delimiter",
    )


def test_an_ingest_result_sums_its_files_and_names_the_failed_ones() -> None:
    result = pipeline.IngestResult(
        Path("/landing"),
        [_file("sales-1.csv", read=100, rejected=5), _file("sales-2.csv", "failed", read=0)],
    )
    assert (result.read, result.rejected, result.warnings) == (100, 5, 1)
    assert not result.ok and result.error == "sales-2.csv: wrong delimiter"
    assert result.metrics == {"files": 2, "rows_rejected": 5}
    assert result.summary() == {"files": 2, "rows": 100, "rejected": 5}
    assert [r["status"] for r in result.file_rows()] == ["success", "failed"]
    empty = pipeline.IngestResult(Path("/landing"), [])
    assert empty.ok and empty.error is None and empty.summary()["files"] == 0


def test_a_monitor_result_reads_accuracy_and_drift() -> None:
    scores = pd.DataFrame(
        [
            {"level": "overall", "model_version": "1", "n": 40, "wape": 0.2},
            {"level": "overall", "model_version": "2", "n": 60, "wape": 0.15},
            {"level": "store", "model_version": "2", "n": 6, "wape": 0.3},
        ]
    )
    drift = pd.DataFrame(
        [
            {"feature": "lag_7", "psi": 0.05, "drifted": False},
            {"feature": "price", "psi": 0.4, "drifted": True},
        ]
    )
    result = pipeline.MonitorResult(scores, drift, ["etl: no success in 2 days"])
    assert result.drifted == ["price"]
    assert (result.rows, result.warnings) == (100, 2)
    assert result.metrics == {"forecast_wape": 0.15, "max_psi": 0.4, "drifted_features": 1}
    nothing = pipeline.MonitorResult(pd.DataFrame(), pd.DataFrame(), [])
    assert (nothing.rows, nothing.warnings, nothing.drifted) == (0, 0, [])
    assert nothing.metrics == {"drifted_features": 0}


@pytest.mark.parametrize("spec", DEPLOYMENTS, ids=lambda s: s.flow)
def test_a_deployment_entrypoint_is_a_module_path_prefect_computes_too(spec: object) -> None:
    """Deployments name their flow by module path (no file, no colon: what Prefect's worker
    imports after its pull steps, with none to run), the one Prefect derives itself."""
    from prefect.types.entrypoint import EntrypointType

    from fournil.orchestration import DeploymentSpec, load_flow

    assert isinstance(spec, DeploymentSpec)
    assert ":" not in spec.entrypoint and spec.entrypoint.startswith("fournil.flows.")
    flow = load_flow(spec)
    assert flow.name == spec.flow
    deployment = flow.to_deployment(name=spec.name, entrypoint_type=EntrypointType.MODULE_PATH)
    assert deployment.entrypoint == spec.entrypoint


def test_the_flows_load_from_any_folder(tmp_path: Path) -> None:
    """From the installed package, not from a checkout's flows/ folder."""
    code = (
        "from prefect.flows import load_flow_from_entrypoint\n"
        "from fournil.orchestration import DEPLOYMENTS\n"
        "print(sorted(load_flow_from_entrypoint(d.entrypoint).name for d in DEPLOYMENTS))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        done.stdout.strip().splitlines()[-1] == "['etl', 'forecast', 'monitor', 'report', 'train']"
    )
