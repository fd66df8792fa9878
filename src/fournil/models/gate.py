"""The promotion gate, rollback and status: aliases move only here, and every move is audited.

`promote` makes a version the `challenger`, then the `champion` only if every check passes:
1. it is no worse than the simplest candidates (zero, the last value, seasonal naive, a moving
   average) on its backtest, and beats the current champion on the same backtest (the
   champion's recipe, its candidates and choice by demand class included, refitted at the
   same cut-offs on the same data; at most `FOURNIL_GATE_TOLERANCE` worse, so a retrain on
   fresher data with an unchanged recipe goes through);
2. loaded fresh from the registry, it reproduces its verification samples exactly;
3. it gives finite, non-negative forecasts for rows with nulls;
4. its size and median single-row latency stay within the configured limits.
The decision, with reasons, metrics and the candidates' table (WAPE and bias per horizon, the
routes), goes to `model_decisions` and to registry tags. When nothing is promoted and there is
no champion, the version's linear fallback becomes the fallback's champion: forecasts and the
API serve it, and say so.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from sqlalchemy import Engine, insert, select

from fournil import registry
from fournil.db.schema import model_decisions
from fournil.features import Vocabulary
from fournil.models.backtest import BacktestConfig, run_backtest
from fournil.models.estimators import Forecaster
from fournil.models.pyfunc import EXPECTED_PREFIX, PREDICTION_COLUMNS, verify
from fournil.panel import load_panel
from fournil.settings import GateSettings, Settings


class GateError(Exception):
    """The gate cannot run (no such model or version, nothing to roll back to)."""


@dataclass
class Decision:
    name: str
    version: str
    action: str  # promoted, refused, rollback
    champion_before: str | None
    champion_after: str | None
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, Any] | None = None
    fallback_serves: str | None = None  # "name vN" when the fallback serves instead

    @property
    def promoted(self) -> bool:
        return self.action == "promoted"


def _audit(engine: Engine, decision: Decision) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(model_decisions).values(
                model_name=decision.name,
                model_version=decision.version,
                action=decision.action,
                champion_before=decision.champion_before,
                champion_after=decision.champion_after,
                reasons=decision.reasons,
                metrics={
                    k: (None if not np.isfinite(v) else v) for k, v in decision.metrics.items()
                },
                candidates=decision.candidates,
            )
        )


def _tag(client: MlflowClient, decision: Decision) -> None:
    client.set_model_version_tag(decision.name, decision.version, "gate.decision", decision.action)
    client.set_model_version_tag(
        decision.name, decision.version, "gate.reasons", "; ".join(decision.reasons)[:4900]
    )
    client.set_model_version_tag(
        decision.name, decision.version, "gate.at", dt.datetime.now(dt.UTC).isoformat()
    )


def _latest_version(client: MlflowClient, name: str) -> str:
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise GateError(f"no registered versions of {name}: run `fournil model train` first")
    return str(max(int(v.version) for v in versions))


def _load(name: str, version: str) -> tuple[Any, Path]:
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{version}"))
    return mlflow.pyfunc.load_model(str(local)), local


def _forecaster(model: Any) -> Forecaster:
    forecaster: Forecaster = model.unwrap_python_model().forecaster
    return forecaster


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def _latency_ms(model: Any, row: pd.DataFrame, repeat: int = 15) -> tuple[float, float]:
    """Median single-row latency of `model`, and of a reference timed interleaved with it in
    the same loop (seasonal naive from the same raw inputs), so a busy machine slows both."""
    forecaster = _forecaster(model)
    reference = Forecaster(
        spec=forecaster.spec.replace(kind="seasonal_naive"), vocab=forecaster.vocab
    )
    model.predict(row)  # warm-up
    reference.predict_raw(row)
    mine, theirs = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        reference.predict_raw(row)
        middle = time.perf_counter()
        model.predict(row)
        theirs.append((middle - start) * 1000)
        mine.append((time.perf_counter() - middle) * 1000)
    return statistics.median(mine), statistics.median(theirs)


def latency_check(latency_ms: float, reference_ms: float, limits: GateSettings) -> tuple[bool, str]:
    """Within the limit; or, when the machine is busy enough to slow the reference too,
    within `max_latency_ratio` times the reference's latency measured alongside."""
    ratio = latency_ms / max(reference_ms, 1e-6)
    text = (
        f"single-row latency {latency_ms:.1f} ms (limit {limits.max_latency_ms:g}), "
        f"{ratio:.1f}x the reference's {reference_ms:.1f} ms (limit {limits.max_latency_ratio:g}x)"
    )
    return latency_ms <= limits.max_latency_ms or ratio <= limits.max_latency_ratio, text


def _segment_panel(
    engine: Engine, client: MlflowClient, name: str, end: dt.date, settings: Settings
) -> Any:
    panel = load_panel(engine, end=end, absent_days=settings.absent_days)
    tags = client.get_registered_model(name).tags or {}
    granularity, segment = tags.get("granularity", "global"), tags.get("segment", "all")
    if granularity != "global":
        panel = panel.subset(np.flatnonzero(panel.series[granularity].astype(str) == segment))
    return panel


def promote(
    engine: Engine,
    name: str | None,
    version: str | None,
    settings: Settings,
    config: BacktestConfig | None = None,
) -> Decision:
    """Run the gate for `version` (default: the latest) of `name` (default: the global model)."""
    client = registry.configure(settings)
    name = name or settings.model_name
    version = version or _latest_version(client, name)
    client.set_registered_model_alias(name, registry.CHALLENGER, version)
    champion = registry.alias_version(client, name, registry.CHAMPION)
    decision = Decision(name, version, "refused", champion, champion)
    checks: list[tuple[bool, str]] = []
    info = client.get_model_version(name, version)
    tags = info.tags or {}

    model, local = _load(name, version)
    ok, message = verify(model)
    checks.append((ok, message))

    samples = model.unwrap_python_model().verification
    raw = samples.drop(columns=[EXPECTED_PREFIX + c for c in PREDICTION_COLUMNS])
    nullable = raw.copy()
    nullable.loc[:, [c for c in raw.columns if c.startswith(("units_", "promo_", "price_"))]] = (
        np.nan
    )
    nullable[["price", "promo", "siblings_on_promo"]] = np.nan
    out = model.predict(nullable)["yhat"].to_numpy(np.float64)
    finite = bool(np.isfinite(out).all() and (out >= 0).all())
    checks.append(
        (
            finite,
            "rows with nulls get finite forecasts" if finite else "rows with nulls break the model",
        )
    )

    size = _size_mb(local)
    decision.metrics["size_mb"] = size
    checks.append(
        (
            size <= settings.gate.max_model_mb,
            f"size {size:.1f} MB (limit {settings.gate.max_model_mb:g})",
        )
    )
    latency, reference = _latency_ms(model, raw.head(1))
    decision.metrics.update({"latency_ms": latency, "latency_reference_ms": reference})
    checks.append(latency_check(latency, reference, settings.gate))

    wape = float(tags["backtest_wape"])
    naive = float(tags["backtest_wape_seasonal_naive"])
    decision.metrics.update({"backtest_wape": wape, "seasonal_naive_wape": naive})
    if "backtest_score_simplest" in tags:
        score, simplest = float(tags["backtest_score"]), float(tags["backtest_score_simplest"])
        decision.metrics.update({"backtest_score": score, "simplest_score": simplest})
        checks.append(
            (
                score <= simplest + 1e-12,
                f"backtest WAPE+|bias| {score:.4f} (WAPE {wape:.4f}) vs the simplest "
                f"candidates' best {simplest:.4f}",
            )
        )
    else:  # a version trained before candidates were chosen
        checks.append((wape < naive, f"backtest WAPE {wape:.4f} vs seasonal naive {naive:.4f}"))
    decision.candidates = _candidates(client, info.run_id, tags)

    if champion is not None and champion != version:
        old = registry.load_forecaster(name, champion)
        recipe = old.spec if old.routes is not None else old.spec.replace(select=False)
        candidate = _forecaster(model)
        end = dt.date.fromisoformat(tags["data_end"])
        panel = _segment_panel(engine, client, name, end, settings)
        run = client.get_run(info.run_id) if info.run_id else None
        cut_dates = (run.data.params.get("backtest.cutoffs", "") if run else "").split(",")
        at = [(dt.date.fromisoformat(d) - panel.start).days for d in cut_dates if d]
        vocab = Vocabulary.fit(panel, settings.country)
        mine = float(tags.get("backtest_score", "nan"))
        if panel.snapshot_hash() != tags.get("data_hash") or not np.isfinite(mine):
            # the data changed since training: score the candidate again on today's data too
            mine = run_backtest(
                panel,
                candidate.spec,
                vocab,
                config,
                with_baselines=candidate.routes is not None,
                at=at or None,
            ).score()
            decision.metrics["backtest_score"] = mine
        theirs = run_backtest(
            panel, recipe, vocab, config, with_baselines=recipe.select, at=at or None
        ).score()
        decision.metrics["champion_score"] = theirs
        limit = theirs * (1 + settings.gate.tolerance)
        checks.append(
            (
                mine <= limit + 1e-12,
                f"backtest WAPE+|bias| {mine:.4f} vs champion v{champion} {theirs:.4f} "
                f"on the same cut-offs (tolerance {settings.gate.tolerance:.0%})",
            )
        )
    elif champion is None:
        checks.append((True, "no champion yet"))

    decision.reasons = [("ok: " if ok else "FAILED: ") + text for ok, text in checks]
    if all(ok for ok, _ in checks):
        client.set_registered_model_alias(name, registry.CHAMPION, version)
        decision.action, decision.champion_after = "promoted", version
        _promote_fallback(client, settings, name, version)
    elif champion is None:
        decision.fallback_serves = _promote_fallback(client, settings, name, version)
        if decision.fallback_serves:
            decision.reasons.append(
                f"nothing promoted and no champion: the fallback {decision.fallback_serves} "
                "serves forecasts and the API until a version passes"
            )
    _tag(client, decision)
    _audit(engine, decision)
    return decision


def _candidates(client: MlflowClient, run_id: str | None, tags: dict[str, str]) -> dict[str, Any]:
    """The version's decision table (every candidate's WAPE and bias per horizon) and routes,
    from its training run."""
    out: dict[str, Any] = {"routes": json.loads(tags["routes"]) if "routes" in tags else None}
    if run_id:
        try:
            table = mlflow.artifacts.load_dict(
                client.get_run(run_id).info.artifact_uri + "/backtest/candidates.json"
            )
            frame = pd.DataFrame(table["data"], columns=table["columns"])
            out["table"] = frame.to_dict("records")
        except Exception:  # a version trained before the table existed
            out["table"] = None
    return out


def _promote_fallback(
    client: MlflowClient, settings: Settings, name: str, version: str
) -> str | None:
    """The fallback trained with the global model's `version` becomes the fallback's
    `champion` (it follows a promotion or rollback, or serves when nothing was promoted).
    Returns it as "name vN" (None: not the global model, or no such fallback)."""
    if name != settings.model_name:
        return None
    fallback = registry.fallback_name(settings)
    for fb in client.search_model_versions(f"name = '{fallback}'"):
        if (fb.tags or {}).get("forecaster_version") == version:
            client.set_registered_model_alias(fallback, registry.CHAMPION, str(fb.version))
            return f"{fallback} v{fb.version}"
    return None


def champion_history(engine: Engine, name: str) -> list[str]:
    """Champions in order, replaying promotions and rollbacks (the last is the current one)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(model_decisions.c.action, model_decisions.c.champion_after)
            .where(model_decisions.c.model_name == name)
            .order_by(model_decisions.c.decision_id)
        ).all()
    stack: list[str] = []
    for action, after in rows:
        if action == "promoted" and after:
            stack.append(after)
        elif action == "rollback" and stack:
            stack.pop()
    return stack


def rollback(engine: Engine, name: str | None, settings: Settings) -> Decision:
    """Move `champion` back to the version it had before the current one (audited)."""
    client = registry.configure(settings)
    name = name or settings.model_name
    current = registry.alias_version(client, name, registry.CHAMPION)
    if current is None:
        raise GateError(f"{name} has no champion to roll back")
    stack = champion_history(engine, name)
    if len(stack) < 2:
        raise GateError(f"{name} has no previous champion to roll back to")
    previous = stack[-2]
    client.set_registered_model_alias(name, registry.CHAMPION, previous)
    _promote_fallback(client, settings, name, previous)
    decision = Decision(
        name,
        current,
        "rollback",
        current,
        previous,
        reasons=[f"champion moved back from v{current} to v{previous}"],
    )
    _tag(client, decision)
    _audit(engine, decision)
    return decision


def history(engine: Engine, name: str | None = None, limit: int = 20) -> pd.DataFrame:
    query = select(model_decisions).order_by(model_decisions.c.decision_id.desc()).limit(limit)
    if name:
        query = query.where(model_decisions.c.model_name == name)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())
