"""Weekly training: train, backtest, register, then run the promotion gate for each model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task

from fournil import pipeline
from fournil.db import warehouse_engine
from fournil.models.gate import Decision
from fournil.models.training import TrainedVersion
from fournil.orchestration import on_failure, record, recorder, table_artifact
from fournil.settings import get_settings


@task(timeout_seconds=6 * 3600)
def train_models(granularity: str | None, truth: str | None) -> list[TrainedVersion]:
    return pipeline.train_models(
        warehouse_engine(get_settings()),
        get_settings(),
        granularity=granularity,
        truth_path=Path(truth) if truth else None,
    )


@task(timeout_seconds=3600)
def gate(name: str, version: str) -> Decision:
    return pipeline.gate(warehouse_engine(get_settings()), get_settings(), name, version)


@flow(name="train", on_failure=[on_failure], log_prints=True)
def train_flow(granularity: str | None = None, truth: str | None = None) -> list[str]:
    settings = get_settings()
    with recorder("train", get_settings()) as run:
        with run.stage("train"):
            versions = train_models(granularity, truth)
        with run.stage("gate"):
            decisions = [gate(v.name, v.version) for v in versions]
        result = pipeline.finish_training(settings, versions, decisions)
        record(run, warnings=result.warnings, metrics=result.metrics)
        table_artifact(
            "train-decisions", pd.DataFrame(result.decision_rows()), "Promotion gate decisions"
        )
    return result.summary()


if __name__ == "__main__":
    train_flow()
