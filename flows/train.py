"""Weekly training: train, backtest, register, then run the promotion gate for each model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import flow, task

from fournil import alerts, registry
from fournil.db import warehouse_engine
from fournil.models.gate import Decision, promote
from fournil.models.training import TrainedVersion, train
from fournil.orchestration import on_failure, recorder, table_artifact
from fournil.settings import get_settings


@task(timeout_seconds=6 * 3600)
def train_models(granularity: str | None, truth: str | None) -> list[TrainedVersion]:
    return train(
        warehouse_engine(),
        get_settings(),
        granularity=granularity,
        truth_path=Path(truth) if truth else None,
    )


@task(timeout_seconds=3600)
def gate(name: str, version: str) -> Decision:
    return promote(warehouse_engine(), name, version, get_settings())


@flow(name="train", on_failure=[on_failure], log_prints=True)
def train_flow(granularity: str | None = None, truth: str | None = None) -> list[str]:
    settings = get_settings()
    with recorder("train") as run:
        with run.stage("train"):
            versions = train_models(granularity, truth)
        with run.stage("gate"):
            decisions = [gate(v.name, v.version) for v in versions]
        client = registry.configure(settings)
        first = client.get_run(versions[0].run_id).data.metrics
        run.metrics.update(
            {
                "train_rmse": first.get("train_rmse", float("nan")),
                "val_rmse": first.get("val_rmse", float("nan")),
                "backtest_wape": versions[0].wape,
                "models": len(versions),
                "promoted": sum(d.promoted for d in decisions),
            }
        )
        refused = [d for d in decisions if not d.promoted]
        run.warnings = len(refused)
        table_artifact(
            "train-decisions",
            pd.DataFrame(
                [
                    {
                        "model": d.name,
                        "version": d.version,
                        "decision": d.action,
                        "champion": d.champion_after,
                        "backtest_wape": d.metrics.get("backtest_wape"),
                        "failed": "; ".join(r for r in d.reasons if r.startswith("FAILED")),
                    }
                    for d in decisions
                ]
            ),
            "Promotion gate decisions",
        )
        if refused:
            alerts.notify(
                "promotion gate refused a model",
                [
                    f"{d.name} v{d.version}: "
                    + "; ".join(r for r in d.reasons if r.startswith("FAILED"))
                    for d in refused
                ],
            )
    return [f"{d.name} v{d.version}: {d.action}" for d in decisions]


if __name__ == "__main__":
    train_flow()
