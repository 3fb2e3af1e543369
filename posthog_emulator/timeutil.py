"""A controllable clock and PostHog's date formats.

Freshness, async jobs and rate windows all run on one `Clock`, so a test can jump an hour ahead
(`advance`) instead of sleeping, and every part of the emulator agrees on what "now" is.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta


class Clock:
    """Wall-clock seconds (a base callable, `time.time` by default) plus an offset tests can advance."""

    def __init__(self, base: Callable[[], float] | None = None) -> None:
        self._base = base or time.time
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self._base() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds


def iso(timestamp: float | None) -> str | None:
    """PostHog's datetime format: ISO 8601 in UTC with microseconds and a `Z`."""
    if timestamp is None:
        return None
    return _iso(timestamp)


@functools.lru_cache(maxsize=65536)
def _iso(timestamp: float) -> str:
    # Memoised: the same few timestamps (created_at, last_refresh, ...) are formatted on every request.
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_date(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


_RELATIVE = re.compile(r"^-?(\d+)([hdwmqyM])(Start|End)?$")


def _shift_months(moment: datetime, months: int) -> datetime:
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    # Clamp the day to the target month's length.
    next_month = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def parse_date(text: str, now: float) -> datetime:
    """PostHog's `relative_date_parse`, for the forms clients use: `-7d`, `-24h`, `-2w`, `-1m` (month),
    `-1q`, `-1y`, `-30M` (minutes), `all`, and absolute ISO dates or datetimes. Raises ValueError."""
    text = text.strip()
    moment = datetime.fromtimestamp(now, UTC)
    if text == "all":
        return datetime(2015, 1, 1, tzinfo=UTC)
    match = _RELATIVE.match(text)
    if match:
        amount, unit, anchor = int(match.group(1)), match.group(2), match.group(3)
        if unit == "h":
            result = moment - timedelta(hours=amount)
        elif unit == "M":
            result = moment - timedelta(minutes=amount)
        elif unit == "d":
            result = moment - timedelta(days=amount)
        elif unit == "w":
            result = moment - timedelta(weeks=amount)
        elif unit == "m":
            result = _shift_months(moment, amount)
        elif unit == "q":
            result = _shift_months(moment, 3 * amount)
        else:
            result = _shift_months(moment, 12 * amount)
        if anchor == "Start":
            result = result.replace(hour=0, minute=0, second=0, microsecond=0)
        elif anchor == "End":
            result = result.replace(hour=23, minute=59, second=59, microsecond=999999)
        return result
    value = text[:-1] + "+00:00" if text.endswith("Z") else text
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
