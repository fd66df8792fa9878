"""A flow's deployment run on the Prefect server, waited for, as a command for a process with
the worker's environment (natively, or inside the worker container): it prints the final
state's type."""

from __future__ import annotations

import json

from fournil.orchestration import DEPLOYMENTS

CODE = (
    "import json, sys\n"
    "from prefect.deployments import run_deployment\n"
    "name, parameters, timeout = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])\n"
    "run = run_deployment(name, parameters=parameters, timeout=timeout)\n"
    "print(run.state.type.value)\n"
)


def run_deployment_command(
    python: str, flow: str, parameters: dict[str, str], timeout: int
) -> list[str]:
    name = {spec.flow: spec.full_name for spec in DEPLOYMENTS}[flow]
    return [python, "-c", CODE, name, json.dumps(parameters), str(timeout)]
