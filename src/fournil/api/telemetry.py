"""API metrics (Prometheus); the prediction log's are in `prediction_log`.

Metrics are multi-worker safe: with PROMETHEUS_MULTIPROC_DIR set (as `fournil api serve` does
for several workers), every worker writes its samples there and /metrics aggregates them.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import Engine

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
