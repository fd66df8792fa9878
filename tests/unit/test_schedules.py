"""Cron schedules run in the business's time zone, across daylight-saving changes."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from prefect.server.schemas.schedules import CronSchedule

from fournil.orchestration import DEPLOYMENTS
from fournil.settings import Settings


def _next_runs(cron: str, tz: str, start: dt.datetime, n: int) -> list[dt.datetime]:
    """What the Prefect server's scheduler computes for a deployment schedule."""
    schedule = CronSchedule(cron=cron, timezone=tz)
    return [d for d in asyncio.run(schedule.get_dates(n=n, start=start))]


@pytest.mark.parametrize(
    ("start", "change"),
    [
        (dt.datetime(2027, 3, 25, tzinfo=dt.UTC), dt.date(2027, 3, 28)),  # CET -> CEST
        (dt.datetime(2027, 10, 28, tzinfo=dt.UTC), dt.date(2027, 10, 31)),  # CEST -> CET
    ],
)
def test_daily_runs_keep_their_local_time_across_daylight_saving(
    start: dt.datetime, change: dt.date
) -> None:
    settings = Settings()  # defaults: Europe/Paris, ETL at 06:00 local
    etl = next(d for d in DEPLOYMENTS if d.flow == "etl")
    runs = _next_runs(etl.cron(settings), settings.timezone, start, 7)
    paris = ZoneInfo("Europe/Paris")
    local = [r.astimezone(paris) for r in runs]
    assert [t.hour for t in local] == [6] * 7 and [t.minute for t in local] == [0] * 7
    assert [t.date() for t in local] == [start.date() + dt.timedelta(days=i) for i in range(7)]
    utc_hours = {r.date(): r.astimezone(dt.UTC).hour for r in runs}
    before, after = change - dt.timedelta(days=1), change + dt.timedelta(days=1)
    spring = change.month == 3
    assert utc_hours[before] == (5 if spring else 4)  # 06:00 CET = 05:00 UTC, CEST = 04:00 UTC
    assert utc_hours[after] == (4 if spring else 5)


def test_the_zone_is_configurable_and_weekly_training_stays_on_monday(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FOURNIL_TIMEZONE", "America/New_York")
    settings = Settings()
    train = next(d for d in DEPLOYMENTS if d.flow == "train")
    runs = _next_runs(
        train.cron(settings), settings.timezone, dt.datetime(2027, 3, 1, tzinfo=dt.UTC), 4
    )
    ny = [r.astimezone(ZoneInfo("America/New_York")) for r in runs]
    assert all(t.weekday() == 0 and t.hour == 3 for t in ny)
    # US daylight saving starts 2027-03-14: the UTC hour moves, the local hour does not
    assert {r.astimezone(dt.UTC).hour for r in runs} == {8, 7}
