"""The models the API serves, hot-swapped when the registry aliases move.

Three arms: the champion, the challenger (a configurable share of traffic, sticky per client and
store) and the fallback. The champion arm is routed by `registry.routing`, the one resolver
batch forecasts and monitoring use too: with per-segment models (`FOURNIL_GRANULARITY`), a row
goes to its segment's champion, else to the global champion. The challenger split applies to
the global model. The fallback is the registered linear fallback model, or, when nothing can
be loaded from the registry, seasonal naive (which needs no artefact at all). A prediction that
errors or exceeds its time budget is answered by the fallback. The holder keeps serving what it
has when the registry is unreachable.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd

from fournil import registry
from fournil.api.errors import describe
from fournil.api.polling import poll
from fournil.features import Vocabulary
from fournil.models.estimators import Forecaster, ModelSpec
from fournil.settings import Settings

log = logging.getLogger("fournil.api")


@dataclass(frozen=True)
class Served:
    name: str
    version: str
    forecaster: Forecaster
    metrics: dict[str, float]
    loaded_seconds: float


NAIVE = Served(
    name="seasonal-naive",
    version="builtin",
    forecaster=Forecaster(spec=ModelSpec(kind="seasonal_naive"), vocab=Vocabulary()),
    metrics={},
    loaded_seconds=0.0,
)


def _load(client: mlflow.MlflowClient, name: str, version: str) -> Served:
    start = time.perf_counter()
    forecaster = registry.load_forecaster(name, version)
    info = client.get_model_version(name, version)
    metrics = {}
    for key, value in (info.tags or {}).items():
        if key.startswith("backtest_wape"):
            with contextlib.suppress(ValueError):
                metrics[key] = float(value)
    return Served(name, version, forecaster, metrics, time.perf_counter() - start)


class ModelHolder:
    def __init__(self, settings: Settings) -> None:
        # a registry outage must cost one failed poll, not minutes of client-side retries
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        self.settings = settings
        self.champion: Served | None = None  # the global model's
        self.challenger: Served | None = None
        self.segments: dict[str, Served] = {}  # segment value -> its champion
        #: the resolver's routing and the loaded model of each version it names, swapped as
        #: one: rows reach models the way batch forecasts and monitoring route them
        self._routed: tuple[registry.Routing, dict[registry.ModelRef, Served]] = (
            registry.Routing(settings.granularity, registry.CHAMPION),
            {},
        )
        self.fallback: Served = NAIVE
        self.registry_error: str | None = None  # for logs only
        self.sample: pd.DataFrame | None = None  # raw inputs of one row, to warm models with
        self.warmed = False
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="predict")
        self.on_load: list = []  # callbacks(served) for metrics

    # --- loading ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Load whatever the aliases point at now, if it changed. Never raises."""
        try:
            client = registry.configure(self.settings)
            champions = registry.routing(client, self.settings, registry.CHAMPION)
            challengers = registry.routing(client, self.settings, registry.CHALLENGER)
            challenger = challengers.default
            if challenger is not None and challenger == champions.default:
                challenger = None  # a promoted challenger is just the champion
            wanted = {"champion": champions.default, "challenger": challenger}
            for arm, ref in wanted.items():
                current = getattr(self, arm)
                if ref is None:
                    if arm == "challenger" and current is not None:
                        log.info("challenger %s v%s retired", current.name, current.version)
                        self.challenger = None
                    continue
                if current is None or current.version != ref.version:
                    served = self._warm(_load(client, ref.name, ref.version))
                    setattr(self, arm, served)  # one reference swap: in-flight requests finish
                    self._loaded(arm, served)
            segments = {}
            for value, ref in champions.by_segment.items():
                current = self.segments.get(value)
                if current is not None and (current.name, current.version) == (
                    ref.name,
                    ref.version,
                ):
                    segments[value] = current
                else:
                    segments[value] = self._warm(_load(client, ref.name, ref.version))
                    log.info("segment %s champion now %s v%s", value, ref.name, ref.version)
            self.segments = segments  # one reference swap
            by_ref = {ref: segments[value] for value, ref in champions.by_segment.items()}
            if champions.default is not None and self.champion is not None:
                by_ref[champions.default] = self.champion
            self._routed = (champions, by_ref)
            fb_name = registry.fallback_name(self.settings)
            fb_version = registry.alias_version(client, fb_name, registry.CHAMPION)
            if fb_version and (
                self.fallback.name != fb_name or self.fallback.version != fb_version
            ):
                self.fallback = self._warm(_load(client, fb_name, fb_version))
                log.info("fallback now %s v%s", fb_name, fb_version)
            if self.registry_error is not None:
                log.info("registry reachable again")
            self.registry_error = None
        except Exception as exc:
            error = describe(exc)
            if error != self.registry_error:  # log a change, not every poll of an outage
                log.warning("registry unavailable, keeping the loaded models: %s", error)
            self.registry_error = error

    # --- warming -----------------------------------------------------------------------
    def warm(self, sample: pd.DataFrame) -> None:
        """Predict `sample` (raw inputs of one row) with every loaded model, so the first
        request after start or after a swap is not the one that pays for cold code paths (and
        answered by the fallback for running over its budget); later loads are warmed with the
        same sample before they serve."""
        self.sample = sample
        self._pool.submit(int).result()  # the pool's first thread
        for served in {id(s): s for s in self._all()}.values():
            self._warm(served)
        self.warmed = True

    def _all(self) -> list[Served]:
        arms = [self.champion, self.challenger, self.fallback, *self.segments.values()]
        return [s for s in arms if s is not None]

    def _warm(self, served: Served) -> Served:
        if self.sample is not None:
            try:
                served.forecaster.predict_raw(self.sample)
            except Exception as exc:
                log.warning(
                    "warm-up of %s v%s failed: %s", served.name, served.version, describe(exc)
                )
        return served

    def _loaded(self, arm: str, served: Served) -> None:
        for callback in self.on_load:
            callback(arm, served)
        log.info("%s now %s v%s", arm, served.name, served.version)

    def start_polling(self) -> None:
        poll(lambda: self.settings.api.model_poll_seconds, self.refresh, self._stop, "model-poller")

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- state -----------------------------------------------------------------------
    @property
    def degraded_reason(self) -> str | None:
        """Why the fallback answers everything, in words safe to show anyone (details: logs)."""
        if self.champion is None and not self.segments:
            why = "registry unreachable" if self.registry_error else "no champion"
            return f"serving the fallback model {self.fallback.name}: {why}"
        return None

    # --- predicting ------------------------------------------------------------------
    def arm_for(self, key_id: str, store_id: int) -> str:
        if self.challenger is None or self.champion is None:
            return "champion"
        digest = hashlib.sha256(f"{key_id}:{store_id}".encode()).digest()
        share = int.from_bytes(digest[:8], "big") / 2**64
        return "challenger" if share < self.settings.api.challenger_share else "champion"

    def _model_for(self, raw: pd.DataFrame, arms: list[str]) -> list[tuple[str, Served | None]]:
        """Per row, the arm and model meant to answer it (None: none loaded). The champion arm
        follows `Routing.resolve`; with no global champion behind the alias any more, the last
        one loaded keeps answering (the holder serves what it has)."""
        routing, by_ref = self._routed
        out: list[tuple[str, Served | None]] = [("champion", None)] * len(raw)
        for ref, positions in routing.resolve(raw):
            served = by_ref.get(ref, self.champion) if ref is not None else self.champion
            for i in positions:
                out[i] = ("champion", served)
        if self.challenger is not None:
            for i, arm in enumerate(arms):
                if arm == "challenger":
                    out[i] = ("challenger", self.challenger)
        return out

    def predict(
        self, raw: pd.DataFrame, arms: list[str]
    ) -> tuple[pd.DataFrame, list[Served], list[str], int]:
        """Forecasts per row from each row's arm (the champion arm: the row's segment champion,
        else the global one); the fallback answers rows whose model is missing, fails or runs
        out of time. Returns predictions, the model and the arm used per row ("fallback" for
        rows the fallback answered), and how many fell back."""
        out = pd.DataFrame(
            index=raw.index, columns=["yhat", "yhat_lower", "yhat_upper"], dtype=float
        )
        meant = self._model_for(raw, arms)
        used: list[Served | None] = [None] * len(raw)
        used_arms = [arm for arm, _ in meant]
        fell_back = 0
        budget = self.settings.api.predict_budget_ms / 1000
        groups: dict[tuple[str, int], list[int]] = {}
        for i, (arm, served) in enumerate(meant):
            groups.setdefault((arm, id(served)), []).append(i)
        for (_, _), members in groups.items():
            served = meant[members[0]][1]
            rows = np.asarray(members)
            part = raw.iloc[rows]
            result = None
            if served is not None:
                future = self._pool.submit(served.forecaster.predict_raw, part)
                try:
                    result = future.result(timeout=budget)
                except FutureTimeout:
                    log.warning(
                        "%s v%s over its %.0f ms budget: fallback",
                        served.name,
                        served.version,
                        budget * 1000,
                    )
                except Exception:
                    log.exception("%s v%s failed: fallback", served.name, served.version)
            if result is None:
                served = self.fallback
                result = self.fallback.forecaster.predict_raw(part)
                fell_back += len(rows)
                for i in rows:
                    used_arms[i] = "fallback"
            out.iloc[rows] = result[["yhat", "yhat_lower", "yhat_upper"]].to_numpy()
            for i in rows:
                used[i] = served
        return out, [u for u in used if u is not None], used_arms, fell_back
