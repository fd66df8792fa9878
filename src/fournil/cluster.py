"""Past one VM: training fits as tasks on a Dask cluster.

With `FOURNIL_TASK_RUNNER=dask` and `FOURNIL_TASK_RUNNER_ADDRESS=tcp://host:8786` (an existing
scheduler; without an address, a temporary local cluster), every fit of a training run (each
backtest cut-off and the final fit, of every segment) is a task: it builds its rows from the
panel it is sent and fits on the bins the caller sends, which gives the model the
single-process path fits on its shared matrix, to the bit (`fournil.models.backtest`). Scoring,
logging to MLflow and the gate stay where the run started. The flows' task runner
(`fournil.orchestration.task_runner`) reads the same two settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fournil.features import Vocabulary
from fournil.models.backtest import FitRunner, Reference, fit_one_cutoff
from fournil.models.estimators import Forecaster, ModelSpec
from fournil.panel import Panel
from fournil.settings import Settings

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger("fournil.train")


def dask_runner(client: Client) -> FitRunner:
    """A `FitRunner` that sends each cut-off's fit to the cluster behind `client`."""

    def run(
        panel: Panel,
        specs: list[ModelSpec],
        vocab: Vocabulary,
        days: list[int],
        reference: Reference,
    ) -> list[list[Forecaster]]:
        shared_panel, shared_reference = client.scatter([panel, reference])
        futures = [
            client.submit(
                fit_one_cutoff, shared_panel, specs, vocab, day, shared_reference, pure=False
            )
            for day in days
        ]
        info = client.scheduler_info(n_workers=-1)
        log.info(
            "%d fits sent to the Dask cluster at %s (%d workers)",
            len(futures),
            info.get("address", "?"),
            len(info["workers"]),
        )
        return list(client.gather(futures))

    return run


@contextmanager
def fit_runner(settings: Settings) -> Iterator[FitRunner | None]:
    """The runner the settings choose: None (this process) unless `task_runner` is dask."""
    if settings.task_runner != "dask":
        yield None
        return
    from distributed import Client, LocalCluster

    address = settings.task_runner_address
    if address:
        with Client(address, timeout="30s") as client:
            yield dask_runner(client)
        return
    workers = max(1, (os.cpu_count() or 1) // 2)
    with (
        LocalCluster(n_workers=workers, threads_per_worker=2, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield dask_runner(client)
