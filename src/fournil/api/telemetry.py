"""API metrics (Prometheus) and the asynchronous prediction log.

Metrics are multi-worker safe: with PROMETHEUS_MULTIPROC_DIR set (as `fournil api serve` does
for several workers), every worker writes its samples there and /metrics aggregates them.
The prediction log is written by a background thread in batches, never on a request's path.
"""

from __future__ import annotations

import logging
import os
import queue
import threading

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine, insert

from fournil.db.schema import prediction_log
from fournil.prometheus import PipelineCollector

log = logging.getLogger("fournil.api")

REQUESTS = Counter("fournil_api_requests_total", "HTTP requests", ["route", "method", "status"])
LATENCY = Histogram(
    "fournil_api_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
PREDICTIONS = Counter(
    "fournil_api_predictions_total", "Predictions served", ["model", "version", "arm"]
)
FALLBACKS = Counter(
    "fournil_api_fallback_predictions_total", "Predictions answered by the fallback model"
)
FALLBACK_IN_USE = Gauge(
    "fournil_api_fallback_in_use", "1 if no champion is loaded", multiprocess_mode="max"
)
MODEL_LOAD = Gauge(
    "fournil_api_model_load_seconds", "Time to load the model", ["arm"], multiprocess_mode="max"
)
MODEL_VERSION = Gauge(
    "fournil_api_model_version", "Loaded model version", ["arm"], multiprocess_mode="max"
)
PREDICTION_VALUE = Histogram(
    "fournil_api_prediction_value",
    "Distribution of predicted units",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
WORKER = Gauge(
    "fournil_api_worker_up", "1 per live API worker process", multiprocess_mode="liveall"
)
TABLE_BUILD = Gauge(
    "fournil_api_serving_tables_build_seconds",
    "Time of the last rebuild of the in-memory serving tables",
    multiprocess_mode="max",
)
TABLE_ROWS = Gauge(
    "fournil_api_serving_table_rows",
    "Rows held by an in-memory serving table",
    ["table"],
    multiprocess_mode="max",
)
BATCH_ROWS = Histogram(
    "fournil_api_predict_batch_rows",
    "Rows per model call (concurrent /v1/predict requests are batched)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
LOG_DROPPED = Counter("fournil_api_prediction_log_dropped_total", "Log rows dropped (queue full)")


def exposition(engine: Engine) -> bytes:
    """The /metrics payload: this service's metrics (all workers) plus the pipeline's."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    output = generate_latest(registry)
    pipeline = CollectorRegistry()
    pipeline.register(PipelineCollector(engine))
    return output + generate_latest(pipeline)


class PredictionLog:
    """Queue + background writer: batches of up to 500 rows, at least every second."""

    def __init__(self, engine: Engine, max_queue: int = 100_000) -> None:
        self.engine = engine
        self.queue: queue.Queue[dict[str, object] | None] = queue.Queue(maxsize=max_queue)
        self.thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self.thread.start()

    def add(self, rows: list[dict[str, object]]) -> None:
        for row in rows:
            try:
                self.queue.put_nowait(row)
            except queue.Full:
                LOG_DROPPED.inc()

    def _flush(self, batch: list[dict[str, object]]) -> None:
        if not batch:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(prediction_log), batch)
        except Exception:
            log.exception("could not write %d prediction log rows", len(batch))
            LOG_DROPPED.inc(len(batch))

    def _run(self) -> None:
        batch: list[dict[str, object]] = []
        while True:
            try:
                item = self.queue.get(timeout=1.0)
            except queue.Empty:
                self._flush(batch)
                batch = []
                continue
            if item is None:
                self._flush(batch)
                return
            batch.append(item)
            if len(batch) >= 500:
                self._flush(batch)
                batch = []

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=10)
