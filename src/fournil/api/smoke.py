"""A deployment's smoke test: what a client needs from a freshly rolled-out API, end to end.

`fournil api smoke` runs it (the Jenkins deploy stage, inside the api container, or from any
host). The checks, in order: /health answers; /ready says `ready` with a champion (waiting for
the model to load); the forecasts of a store come back with their model version; a prediction
for the day after the last sale is finite and non-negative. Each failure says what was seen.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


KEY_WAIT_SECONDS = 5.0


def _describe(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:200]}"


def run_smoke(url: str, key: str, store_id: int, wait_seconds: float = 120.0) -> list[Check]:
    """Run the checks against the API at `url` with `key` (scopes forecasts:read and predict)
    for one store; stop at the first failure (the later checks depend on it)."""
    checks: list[Check] = []
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as client:
        try:
            health = client.get("/health")
        except httpx.HTTPError as exc:
            return [Check("health", False, f"cannot reach {url}: {exc}")]
        checks.append(Check("health", health.status_code == 200, _describe(health)))
        if not checks[-1].ok:
            return checks

        deadline = time.monotonic() + wait_seconds
        while True:
            ready = client.get("/ready")
            body: dict[str, Any] = ready.json() if ready.status_code in (200, 503) else {}
            if body.get("status") == "ready" and body.get("champion"):
                break
            if time.monotonic() > deadline:
                checks.append(Check("ready", False, _describe(ready)))
                return checks
            time.sleep(1)
        checks.append(
            Check(
                "ready",
                True,
                f"champion v{body['champion']}, last sales day {body.get('last_sales_day')}",
            )
        )

        # a key created just before (the temporary one) is known to the API a second after
        # its first use at the latest (its key table reloads then)
        key_deadline = time.monotonic() + KEY_WAIT_SECONDS
        model = client.get("/v1/models/current", headers=headers)
        while model.status_code == 401 and time.monotonic() < key_deadline:
            time.sleep(0.5)
            model = client.get("/v1/models/current", headers=headers)
        if model.status_code != 200:
            checks.append(Check("forecasts", False, "/v1/models/current " + _describe(model)))
            return checks
        page = client.get(
            "/v1/forecasts", params={"store_id": store_id, "page_size": 1}, headers=headers
        )
        items = page.json().get("items", []) if page.status_code == 200 else []
        ok = bool(items) and items[0].get("model_version") is not None
        checks.append(
            Check(
                "forecasts",
                ok,
                f"store {items[0]['store_id']} product {items[0]['product_id']} "
                f"{items[0]['target_date']}: {items[0]['yhat']:.1f} "
                f"(v{items[0]['model_version']})"
                if ok
                else _describe(page),
            )
        )
        if not ok:
            return checks

        last = body.get("last_sales_day")
        day = dt.date.fromisoformat(last) + dt.timedelta(days=1) if last else dt.date.today()
        row = {"store_id": items[0]["store_id"], "product_id": items[0]["product_id"]}
        predicted = client.post(
            "/v1/predict", json={"rows": [{**row, "date": str(day)}]}, headers=headers
        )
        answers = predicted.json().get("predictions", []) if predicted.status_code == 200 else []
        yhat = answers[0].get("yhat") if answers else None
        ok = isinstance(yhat, int | float) and math.isfinite(yhat) and yhat >= 0
        if ok:
            answer = answers[0]
            detail = (
                f"{day}: {yhat:.1f} from the {answer.get('arm')} v{answer.get('model_version')}"
            )
        checks.append(Check("predict", ok, detail if ok else _describe(predicted)))
    return checks
