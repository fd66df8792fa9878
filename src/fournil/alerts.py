"""Alerts to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Teams via a
connector...), for what happens at a moment: flow failures, gate refusals, many rejected rows,
run-health problems. Lasting states (drift, stale pipelines, accuracy) are Alertmanager's."""

from __future__ import annotations

import logging

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from fournil.settings import Settings

log = logging.getLogger("fournil.alerts")


def payload(title: str, lines: list[str], severity: str = "warning") -> dict[str, object]:
    icon = {"critical": ":red_circle:", "warning": ":warning:"}.get(
        severity, ":information_source:"
    )
    text = f"{icon} *Fournil: {title}*" + "".join(f"\n• {line}" for line in lines)
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
    }


@retry(
    stop=stop_after_attempt(3),
    wait=wait_exponential(multiplier=0.5, max=4),
    retry=retry_if_exception_type(httpx.TransportError),
    reraise=True,
)
def _post(url: str, body: dict[str, object]) -> None:
    response = httpx.post(url, json=body, timeout=10)
    response.raise_for_status()


def notify(title: str, lines: list[str], *, settings: Settings, severity: str = "warning") -> bool:
    """Send an alert if the settings name a webhook. Never raises: a broken webhook must not
    fail the pipeline it reports on (the failure is logged)."""
    if not settings.alert_webhook_url:
        log.info("alert (no webhook configured): %s %s", title, lines)
        return False
    try:
        _post(settings.alert_webhook_url, payload(title, lines, severity))
    except (httpx.HTTPError, OSError) as exc:
        log.warning("could not send alert %r: %s", title, exc)
        return False
    return True
