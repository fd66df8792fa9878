"""Run metrics of every pipeline (flow) run, in the `pipeline_runs` table.

    with RunRecorder(engine, "etl", run_id) as run:
        with run.stage("load"):
            ...
        run.rows_processed += n

The row is committed as `running` on entry, and finished on exit as `success`, or `failed`
with a one-line error (the exception still propagates). Stage timings, rows, warnings and
metrics (e.g. training and backtest RMSE, forecast WAPE) are what seed 000 asks each run to
report; Prometheus reads them back through `fournil.prometheus`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy import Engine, insert, update

from fournil.db.schema import pipeline_runs


def _now() -> dt.datetime:
    return dt.datetime.now(tz=dt.UTC)


class RunRecorder:
    def __init__(
        self, engine: Engine, flow: str, run_id: str | None = None, deployment: str | None = None
    ) -> None:
        self.engine = engine
        self.flow = flow
        self.run_id = run_id or str(uuid.uuid4())
        self.deployment = deployment
        self.stages: dict[str, float] = {}
        self.metrics: dict[str, float] = {}
        self.rows_processed = 0
        self.warnings = 0
        self.status = "running"
        self.error: str | None = None

    def __enter__(self) -> RunRecorder:
        with self.engine.begin() as conn:
            conn.execute(
                insert(pipeline_runs).values(
                    run_id=self.run_id,
                    flow=self.flow,
                    deployment=self.deployment,
                    started_at=_now(),
                    status="running",
                    stages={},
                    metrics={},
                )
            )
        return self

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.status = "success"
        else:
            self.status = "failed"
            first = (str(exc).strip().splitlines() or [""])[0]
            self.error = f"{type(exc).__name__}: {first}"[:2000]
        metrics = {k: float(v) for k, v in self.metrics.items() if math.isfinite(float(v))}
        with self.engine.begin() as conn:
            conn.execute(
                update(pipeline_runs)
                .where(pipeline_runs.c.run_id == self.run_id)
                .values(
                    finished_at=_now(),
                    status=self.status,
                    error=self.error,
                    rows_processed=int(self.rows_processed),
                    warnings=int(self.warnings),
                    stages={k: round(v, 4) for k, v in self.stages.items()},
                    metrics=metrics,
                )
            )
