"""MLflow plumbing shared by training, the gate, batch forecasts and the API.

Models are promoted with registry aliases only: `champion` serves, `challenger` is the latest
version that went through the gate. Segment models (one per family, city or region) are
registered as separate models, `<name>-<granularity>-<segment>`, each with its own aliases.

`routing()` / `resolve()` is the one way to find which model version serves a series: batch
forecasts, the API and drift monitoring all go through it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fournil.settings import Settings

if TYPE_CHECKING:
    from fournil.models.estimators import Forecaster

CHAMPION = "champion"
CHALLENGER = "challenger"
FALLBACK_SUFFIX = "fallback"


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking server (or the local store) and return a client."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:"):
        settings.ensure_home()
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


#: the experiment tag MLflow 3's UI reads to open an experiment in its model-training view
#: rather than its GenAI view (traces, prompts), which shows none of Fournil's runs
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_id(client: MlflowClient, settings: Settings) -> str:
    """The training experiment's id (created if missing), marked as model training."""
    found = client.get_experiment_by_name(settings.experiment)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND[0]) is None:  # made before this tag, or by hand
            client.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND)
        return str(found.experiment_id)
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        location = settings.artifacts_dir.as_uri()  # not ./mlruns in whatever the cwd is
    return str(
        client.create_experiment(
            settings.experiment, artifact_location=location, tags=dict([EXPERIMENT_KIND])
        )
    )


def slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


def model_name(settings: Settings, granularity: str = "global", segment: str | None = None) -> str:
    if granularity == "global" or segment is None:
        return settings.model_name
    return f"{settings.model_name}-{granularity}-{slug(segment)}"


def fallback_name(settings: Settings) -> str:
    return f"{settings.model_name}-{FALLBACK_SUFFIX}"


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version behind an alias, or None."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        missing = exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
        if missing or "not found" in str(exc).lower():
            return None
        raise  # the registry itself is unreachable: callers decide


@dataclass(frozen=True)
class Segment:
    granularity: str
    value: str | None
    name: str


def segment_models(client: MlflowClient, settings: Settings) -> list[Segment]:
    """Every registered forecaster: the global one and any segment models."""
    prefix = settings.model_name
    out = []
    for model in client.search_registered_models(max_results=1000):
        if model.name == prefix:
            out.append(Segment("global", None, model.name))
            continue
        if not model.name.startswith(prefix + "-") or model.name == fallback_name(settings):
            continue
        tags = model.tags or {}
        if "granularity" in tags:
            out.append(Segment(tags["granularity"], tags.get("segment"), model.name))
    return out


def load_model(name: str, version: str) -> Any:
    """The MLflow pyfunc model of one registered version."""
    return mlflow.pyfunc.load_model(f"models:/{name}/{version}")


def load_forecaster(name: str, version: str) -> Forecaster:
    """The forecaster inside one registered version (no pyfunc schema checks per call)."""
    forecaster: Forecaster = load_model(name, version).unwrap_python_model().forecaster
    return forecaster


@dataclass(frozen=True)
class ModelRef:
    """One registered model version; `segment` is its segment's value (None: the global one)."""

    name: str
    version: str
    segment: str | None = None


@dataclass(frozen=True)
class Routing:
    """Which version behind one alias serves which series: the model of the series' segment at
    the configured granularity if it has one, else the global model, else none."""

    granularity: str
    alias: str
    by_segment: dict[str, ModelRef] = field(default_factory=dict)
    default: ModelRef | None = None

    def models(self) -> list[ModelRef]:
        return [*self.by_segment.values(), *([self.default] if self.default else [])]

    def segment_of(self, series: pd.DataFrame) -> np.ndarray:
        """Each row's segment value (series frames and raw-input frames both carry the
        family, city and region columns)."""
        if self.granularity == "global":
            return np.full(len(series), "", dtype=object)
        return series[self.granularity].astype(str).to_numpy()

    def resolve(self, series: pd.DataFrame) -> list[tuple[ModelRef | None, np.ndarray]]:
        """Positions of `series` grouped by the model serving them (None: no model at all),
        in a stable order."""
        segments = self.segment_of(series)
        assigned = np.zeros(len(series), bool)
        out: list[tuple[ModelRef | None, np.ndarray]] = []
        for value, ref in sorted(self.by_segment.items()):
            mine = np.flatnonzero(segments == value)
            if len(mine):
                out.append((ref, mine))
                assigned[mine] = True
        rest = np.flatnonzero(~assigned)
        if len(rest):
            out.append((self.default, rest))
        return out


def routing(client: MlflowClient, settings: Settings, alias: str = CHAMPION) -> Routing:
    """Read the registry once: every segment model of `settings.granularity` with a version
    behind `alias`, and the global model's."""
    by_segment: dict[str, ModelRef] = {}
    if settings.granularity != "global":
        for seg in segment_models(client, settings):
            if seg.granularity != settings.granularity or seg.value is None:
                continue
            version = alias_version(client, seg.name, alias)
            if version is not None:
                by_segment[seg.value] = ModelRef(seg.name, version, seg.value)
    version = alias_version(client, settings.model_name, alias)
    default = ModelRef(settings.model_name, version) if version is not None else None
    return Routing(settings.granularity, alias, by_segment, default)


def resolve(
    client: MlflowClient, settings: Settings, series: pd.DataFrame, alias: str = CHAMPION
) -> list[tuple[ModelRef | None, np.ndarray]]:
    """The model version serving each series (rows of `series`), grouped by model."""
    return routing(client, settings, alias).resolve(series)
