"""Business calendar: public holidays and 'today' in the business's time zone.

Shared by the data generator, the ETL's future-date check and (later) the features, so that all
of them agree on what a holiday is and what day it is.
"""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd


def business_today(tz_name: str) -> dt.date:
    """Today's date in the business's time zone (`settings.timezone`), not the machine's."""
    return dt.datetime.now(tz=ZoneInfo(tz_name)).date()


@functools.cache
def _holidays(country: str, first_year: int, last_year: int) -> dict[dt.date, str]:
    return dict(holidays.country_holidays(country, years=range(first_year, last_year + 1)))


def holiday_names(country: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    """Public holidays between `start` and `end` (inclusive), with their names."""
    days = _holidays(country, start.year, end.year)
    return {day: name for day, name in days.items() if start <= day <= end}


def is_holiday(dates: pd.DatetimeIndex | pd.Series, country: str) -> np.ndarray:
    """Boolean array: is each date a public holiday in `country`."""
    values = pd.DatetimeIndex(dates)
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    days = holiday_names(country, values.min().date(), values.max().date())
    return np.asarray(values.normalize().isin(pd.DatetimeIndex(list(days))), dtype=bool)
