"""The Prefect flows: etl, train, forecast, monitor (deployed by `fournil flows deploy` as
module entrypoints, `fournil.flows.<flow>.<flow>_flow`, run by a process worker from the
installed package).

Each flow runs the steps of `fournil.pipeline` as tasks and adds only what orchestration
needs (retries, stages, run recording, artifacts: `fournil.orchestration`)."""
