"""The batch function behind POST /v1/predict: raw inputs for every queued request, one model
call per arm for all of them, then per request its predictions and prediction-log rows."""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from fournil.api import telemetry
from fournil.api.inputs import InputError, Row, raw_inputs
from fournil.api.prediction_log import PredictionLog
from fournil.api.serving import ModelHolder
from fournil.api.tables import Snapshot


@dataclass(frozen=True)
class Job:
    """One request, already validated against `snapshot` (`origins` from `check_rows`)."""

    rows: list[Row]
    origins: list[dt.date]
    key_id: str
    snapshot: Snapshot


@dataclass(frozen=True)
class Answer:
    request_id: str
    predictions: list[dict[str, Any]]


class Predictor:
    def __init__(self, engine: Engine, holder: ModelHolder, log: PredictionLog | None) -> None:
        self.engine, self.holder, self.log = engine, holder, log

    def __call__(self, jobs: list[Job]) -> list[Answer | InputError]:
        outcomes: list[Answer | InputError | None] = [None] * len(jobs)
        frames: dict[int, pd.DataFrame] = {}
        # requests the in-memory history covers: one raw frame per snapshot for all of them
        by_snapshot: dict[int, list[int]] = collections.defaultdict(list)
        for j, job in enumerate(jobs):
            snap = job.snapshot
            if snap.history_covers_all(job.origins):
                by_snapshot[id(snap)].append(j)
            else:  # older dates: read the warehouse, for this request alone
                try:
                    frames[j] = raw_inputs(self.engine, snap, job.rows, job.origins)
                except InputError as exc:
                    outcomes[j] = exc
        for members in by_snapshot.values():
            snap = jobs[members[0]].snapshot
            rows = [r for j in members for r in jobs[j].rows]
            origins = [o for j in members for o in jobs[j].origins]
            raw = raw_inputs(self.engine, snap, rows, origins)
            at = 0
            for j in members:
                n = len(jobs[j].rows)
                frames[j] = raw.iloc[at : at + n]
                at += n
        order = [j for j in range(len(jobs)) if j in frames]
        if order:
            self._predict(jobs, order, frames, outcomes)
        assert all(o is not None for o in outcomes)
        return [o for o in outcomes if o is not None]

    def _predict(
        self,
        jobs: list[Job],
        order: list[int],
        frames: dict[int, pd.DataFrame],
        outcomes: list[Answer | InputError | None],
    ) -> None:
        combined = pd.concat([frames[j] for j in order], ignore_index=True)
        arms = [
            self.holder.arm_for(jobs[j].key_id, row.store_id) for j in order for row in jobs[j].rows
        ]
        predicted, used, used_arms, fell_back = self.holder.predict(combined, arms)
        yhat = predicted["yhat"].to_numpy(np.float64)
        lower = predicted["yhat_lower"].to_numpy(np.float64)
        upper = predicted["yhat_upper"].to_numpy(np.float64)
        records = combined.to_dict(orient="records")
        counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        log_rows: list[dict[str, Any]] = []
        at = 0
        for j in order:
            job, request_id, predictions = jobs[j], str(uuid.uuid4()), []
            for row in job.rows:
                served = used[at]
                arm = used_arms[at]
                value = float(yhat[at])
                predictions.append(
                    {
                        "store_id": row.store_id,
                        "product_id": row.product_id,
                        "date": str(row.date),
                        "yhat": value,
                        "yhat_lower": None if np.isnan(lower[at]) else float(lower[at]),
                        "yhat_upper": None if np.isnan(upper[at]) else float(upper[at]),
                        "model_name": served.name,
                        "model_version": served.version,
                        "arm": arm,
                    }
                )
                counts[(served.name, served.version, arm)] += 1
                telemetry.PREDICTION_VALUE.observe(value)
                inputs = json.dumps(records[at], sort_keys=True, default=str)
                log_rows.append(
                    {
                        "request_id": request_id,
                        "key_id": job.key_id,
                        "model_name": served.name,
                        "model_version": served.version,
                        "arm": arm,
                        "store_id": row.store_id,
                        "product_id": row.product_id,
                        "target_date": row.date,
                        "inputs_hash": hashlib.sha256(inputs.encode()).hexdigest(),
                        "yhat": value,
                    }
                )
                at += 1
            outcomes[j] = Answer(request_id=request_id, predictions=predictions)
        for labels, n in counts.items():
            telemetry.PREDICTIONS.labels(*labels).inc(n)
        if fell_back:
            telemetry.FALLBACKS.inc(fell_back)
        if self.log is not None:
            self.log.add(log_rows)
