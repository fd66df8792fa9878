"""The API's edge as an attacker and an SRE see it, over real HTTP against the served chain
(`api` fixture): what /metrics and /ready let out, headers, HEAD, offline docs, strict input
(with a property test), the failed-auth throttle, key checks without warehouse reads, warm-up,
log lines, and the key table through an outage."""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from fournil import registry
from fournil.api.app import create_app
from fournil.api.keys import KeysUnavailable, KeyTable, create_key, revoke_key
from fournil.db import make_engine
from tests.conftest import END_DATE
from tests.integration.conftest import Api
from tests.integration.helpers import free_port, serve

NEXT_DAY = str(END_DATE + dt.timedelta(days=1))


def test_metrics_are_for_the_scraper_only(api: Api) -> None:
    """Prometheus (no proxy header) gets them; anything that came through a proxy gets 404."""
    assert httpx.get(api.url + "/metrics").status_code == 200
    for header in ({"X-Forwarded-For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
        refused = httpx.get(api.url + "/metrics", headers=header)
        assert refused.status_code == 404 and "fournil_" not in refused.text, header


def test_every_response_carries_security_headers_and_no_server_header(api: Api) -> None:
    read = {"X-API-Key": api.keys["read"]}
    responses = {
        "health": httpx.get(api.url + "/health"),
        "ready": httpx.get(api.url + "/ready"),
        "forecasts": httpx.get(api.url + "/v1/forecasts", params={"store_id": 1}, headers=read),
        "401": httpx.get(api.url + "/v1/forecasts", params={"store_id": 1}),
        "404": httpx.get(api.url + "/nowhere"),
        "413": httpx.post(api.url + "/v1/predict", content=b"x" * 2_000_000, headers=read),
        "422": httpx.get(api.url + "/v1/forecasts", params={"store_id": "x"}, headers=read),
        "docs": httpx.get(api.url + "/docs"),
    }
    for name, response in responses.items():
        headers = response.headers
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("cache-control") == "no-store", name
        assert headers.get("x-frame-options") == "DENY", name
        assert "server" not in headers, (name, headers.get("server"))


def test_the_bare_address_points_to_the_docs(api: Api) -> None:
    got = httpx.get(api.url + "/")
    assert got.status_code == 200 and got.json()["docs"] == "/docs"
    assert httpx.get(api.url + got.json()["docs"]).status_code == 200


def test_head_is_answered_like_get_without_a_body(api: Api) -> None:
    read = {"X-API-Key": api.keys["read"]}
    for path, params in (("/health", {}), ("/ready", {}), ("/v1/forecasts", {"store_id": 1})):
        got = httpx.get(api.url + path, params=params, headers=read)
        head = httpx.head(api.url + path, params=params, headers=read)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]


def test_the_docs_pages_load_their_assets_from_the_api_itself(api: Api) -> None:
    """No CDN: every script, stylesheet and icon the pages name is served by the API."""
    for page in ("/docs", "/redoc"):
        html = httpx.get(api.url + page).text
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert assets and all(a.startswith("/") for a in assets), (page, assets)
        assert "http://" not in html and "https://" not in html.replace(
            "https://fastapi.tiangolo.com", ""
        ), page
        for asset in assets:
            got = httpx.get(api.url + asset)
            assert got.status_code == 200 and len(got.content) > 100, (page, asset)


BAD_ROWS: list[tuple[str, dict[str, Any]]] = [
    ("store_id", {"store_id": True}),
    ("store_id", {"store_id": "1"}),
    ("store_id", {"store_id": 1.0}),
    ("product_id", {"product_id": False}),
    ("date", {"date": "0001-01-01"}),
    ("date", {"date": "0001-02-28"}),
    ("date", {"date": "9999-12-31"}),
    ("date", {"date": 1_700_000_000}),
    ("date", {"date": "2026-07-01T00:00:00"}),
    ("price", {"price": 1e-320}),
    ("price", {"price": 0}),
    ("price", {"price": "2.5"}),
    ("promo", {"promo": "yes"}),
    ("siblings_on_promo", {"siblings_on_promo": 1.5}),
]


@pytest.mark.parametrize(("field", "change"), BAD_ROWS)
def test_predict_input_is_strict(api: Api, field: str, change: dict[str, Any]) -> None:
    row = {"store_id": 1, "product_id": 1, "date": NEXT_DAY, "price": 2.5, **change}
    got = api.post("/v1/predict", {"rows": [row]})
    assert got.status_code == 422, (change, got.status_code, got.text)
    assert got.json()["error"]["field"] == f"rows.0.{field}"


@pytest.mark.parametrize(
    "params",
    [{"store_id": "true"}, {"store_id": "1.0"}, {"store_id": "1_0"}, {"start": "0001-01-01"}],
)
def test_forecast_query_is_strict(api: Api, params: dict[str, str]) -> None:
    got = api.get("/v1/forecasts", **{"store_id": "1", **params})
    assert got.status_code == 422, (params, got.text)


def _date_text(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}"


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.dates().map(_date_text),
)


@pytest.fixture(scope="module")
def client(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"X-API-Key": api.keys["predict"]}) as c:
        yield c


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    row=st.fixed_dictionaries(
        {},
        optional={
            "store_id": st.one_of(ANY_VALUE, st.integers(1, 4)),
            "product_id": st.one_of(ANY_VALUE, st.integers(1, 5)),
            "date": st.one_of(ANY_VALUE, st.dates().map(_date_text)),
            "price": ANY_VALUE,
            "promo": ANY_VALUE,
            "siblings_on_promo": ANY_VALUE,
        },
    )
)
@example(row={"store_id": 1, "product_id": 1, "date": "0001-01-02"})  # was an OverflowError
@example(row={"store_id": 1, "product_id": 1, "date": "9999-12-31"})
def test_no_predict_input_gives_a_server_error(client: httpx.Client, row: dict[str, Any]) -> None:
    got = client.post("/v1/predict", json={"rows": [row]})
    assert got.status_code < 500, (row, got.status_code, got.text)
    if got.status_code != 200:
        assert set(got.json()) == {"error"}


@pytest.fixture
def throttled(api: Api) -> Iterator[str]:
    """The chain's API with 5 failed authentications allowed a minute per client address."""
    base = api.settings
    strict = base.model_copy(
        update={"api": base.api.model_copy(update={"auth_failures_per_minute": 5})}
    )
    yield from serve(create_app(strict, api.engine, poll=False), free_port())


def test_failed_authentication_is_throttled_per_client_address(api: Api, throttled: str) -> None:
    """The proxy's X-Forwarded-For names the client (uvicorn trusts it from 127.0.0.1 only):
    past 5 failures an address gets 429 whatever key it shows; other addresses do not."""
    good = {"X-API-Key": api.keys["read"]}
    bad = {"X-API-Key": "fk_000000000000_guess"}

    def ask(address: str, key: dict[str, str]) -> httpx.Response:
        headers = {**key, "X-Forwarded-For": address}
        return httpx.get(throttled + "/v1/forecasts", params={"store_id": 1}, headers=headers)

    assert ask("198.51.100.7", good).status_code == 200  # a success costs nothing
    assert [ask("198.51.100.7", bad).status_code for _ in range(5)] == [401] * 5
    refused = ask("198.51.100.7", bad)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "too_many_failures"
    assert ask("198.51.100.7", good).status_code == 429  # a guessed key would not get through
    assert ask("198.51.100.8", good).status_code == 200


def test_unknown_key_ids_cost_no_warehouse_read(api: Api) -> None:
    """100 requests, each with another unknown id: the key table reloads at most once a second
    (it did one query per unknown id), so an unknown id and a wrong secret cost the same."""
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if "api_keys" in statement:
            reads.append(statement)

    event.listen(api.engine, "before_cursor_execute", count)
    try:
        started = time.monotonic()
        with httpx.Client(base_url=api.url) as client:
            for i in range(100):
                headers = {"X-API-Key": f"fk_{i:012x}_guess"}
                got = client.get("/v1/forecasts", params={"store_id": 1}, headers=headers)
                assert got.status_code == 401
        elapsed = time.monotonic() - started
    finally:
        event.remove(api.engine, "before_cursor_execute", count)
    assert len(reads) <= elapsed + 2, (len(reads), elapsed)


def test_ready_shows_nothing_internal(api: Api) -> None:
    """With the registry unreachable and no model: degraded, in words without addresses."""
    down = api.settings.model_copy(update={"mlflow_tracking_uri": "http://127.0.0.1:9"})
    for base in serve(create_app(down, api.engine, poll=False), free_port()):
        body = httpx.get(base + "/ready").text
        assert "degraded" in body and "fallback" in body
        for internal in ("127.0.0.1", ":9", "Error", "http", "Traceback"):
            assert internal not in body, (internal, body)


def test_models_are_warmed_before_ready(api: Api) -> None:
    """A fresh API is ready only once its models have predicted a row; the first request is
    then the champion's (it went to the fallback, over budget while cold)."""
    app = create_app(api.settings, api.engine, poll=False)
    for base in serve(app, free_port()):
        assert httpx.get(base + "/ready").json()["status"] == "ready"
        assert app.state.holder.warmed and app.state.holder.sample is not None
        body = {"rows": [{"store_id": 2, "product_id": 2, "date": NEXT_DAY}]}
        got = httpx.post(
            base + "/v1/predict", json=body, headers={"X-API-Key": api.keys["predict"]}
        )
        assert got.json()["predictions"][0]["arm"] != "fallback", got.text


def test_a_challenger_equal_to_the_champion_is_not_reloaded_nor_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    client = registry.configure(api.settings)
    name = api.settings.model_name
    champion = registry.alias_version(client, name, registry.CHAMPION)
    assert champion is not None
    client.set_registered_model_alias(name, registry.CHALLENGER, champion)
    try:
        with caplog.at_level(logging.INFO, logger="fournil.api"):
            for _ in range(3):
                api.holder.refresh()
        assert api.holder.challenger is None
        assert not [r for r in caplog.records if "challenger" in r.getMessage()], caplog.text
    finally:
        client.delete_registered_model_alias(name, registry.CHALLENGER)


def test_the_key_table_serves_through_an_outage_and_honours_revocations(api: Api) -> None:
    """Loaded once, the table answers while the warehouse is unreachable, up to its stale
    limit; a key revoked meanwhile is refused from the first reload after the outage."""
    now = [0.0]
    secret = api.settings.secret_key
    doomed = create_key(api.engine, "doomed", ["forecasts:read"], secret)
    table = KeyTable(api.engine, secret, 10, stale_seconds=60, clock=lambda: now[0])
    with pytest.raises(KeysUnavailable):
        table.verify(doomed)  # never loaded: cannot tell
    assert table.load()
    assert table.verify(doomed) is not None and table.verify(doomed + "x") is None
    table.engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none")
    assert not table.load()  # the outage: the last table stays
    revoke_key(api.engine, doomed.split("_")[1])
    now[0] = 59.0
    assert table.verify(doomed) is not None and table.verify(api.keys["read"]) is not None
    now[0] = 61.0
    with pytest.raises(KeysUnavailable):
        table.verify(api.keys["read"])  # past the stale limit: 503, not a guess
    table.engine = api.engine
    assert table.load()
    assert table.verify(doomed) is None and table.verify(api.keys["read"]) is not None
