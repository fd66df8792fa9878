"""MLflow plumbing shared by training, the gate, batch forecasts and the API.

Models are promoted with registry aliases only: `champion` serves, `challenger` is the latest
version that went through the gate. Segment models (one per family, city or region) are
registered as separate models, `<name>-<granularity>-<segment>`, each with its own aliases.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fournil.settings import Settings, get_settings

CHAMPION = "champion"
CHALLENGER = "challenger"
FALLBACK_SUFFIX = "fallback"


def configure(settings: Settings | None = None) -> MlflowClient:
    """Point MLflow at the configured tracking server (or the local store) and return a client."""
    settings = settings or get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:"):
        settings.ensure_home()
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: MlflowClient, settings: Settings) -> str:
    found = client.get_experiment_by_name(settings.experiment)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if settings.tracking_uri.startswith("sqlite:"):
        location = settings.artifacts_dir.as_uri()  # not ./mlruns in whatever the cwd is
    return str(client.create_experiment(settings.experiment, artifact_location=location))


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
