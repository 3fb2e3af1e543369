"""The figures the bounds are computed from, worked out independently of the source under test.

`census` reads the emulator's list (ordered, so every insight is seen once) and classifies each cached
result the way PostHog does (docs/posthog-api.md); `least_time_s` is the earliest instant sliding windows
let the R-th request go out. Neither imports the source: a bug in its planner or pacer cannot move its bound.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from benchmarks.emulator import http_get_json

_MAX_PAGES = 10_000  # bounds the census loop whatever the server answers
_GRACE = timedelta(seconds=10)


@dataclass(frozen=True)
class Census:
    insights: int
    fresh: int
    stale: int
    missing: int  # no cached result (never computed, or a calculation error)
    errors: int  # of `missing`: the cached answer is a calculation error
    list_pages: int

    @property
    def blocking_requests(self) -> int:
        """Requests a blocking run must make: every list page, plus a GET per stale or missing insight."""
        return self.list_pages + self.stale + self.missing


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def census(base_url: str, api_key: str, project_id: int = 1, page_size: int = 100) -> Census:
    fresh = stale = missing = errors = pages = 0
    seen: set[int] = set()
    now = datetime.now(timezone.utc)
    headers = {"Authorization": f"Bearer {api_key}"}
    url: str | None = f"{base_url}/api/projects/{project_id}/insights/?limit={page_size}&order=id"
    count = 0
    while url and pages < _MAX_PAGES:
        page = http_get_json(url, headers)
        pages += 1
        count = int(page["count"])
        for item in page["results"]:
            if item["id"] in seen:
                continue
            seen.add(item["id"])
            status = item.get("query_status")
            failed = isinstance(status, dict) and bool(status.get("error"))
            target = _parse(item.get("cache_target_age"))
            refreshed = _parse(item.get("last_refresh"))
            window_end = _parse((item.get("resolved_date_range") or {}).get("date_to"))
            # a window that ended before the result was computed never goes stale (docs/posthog-api.md)
            closed = window_end is not None and refreshed is not None and window_end < refreshed - _GRACE
            if item.get("result") is None or failed:
                missing += 1
                errors += int(failed)
            elif target is not None and target <= now and not closed:
                stale += 1
            else:
                fresh += 1
        url = page.get("next")
    return Census(len(seen), fresh, stale, missing, errors, max(pages, math.ceil(count / page_size)))


def parse_windows(text: str) -> tuple[tuple[int, float], ...]:
    windows = []
    for part in text.split(","):
        limit, _, seconds = part.partition("/")
        windows.append((int(limit), float(seconds)))
    return tuple(windows)


def least_time_s(requests: int, windows: tuple[tuple[int, float], ...]) -> float:
    """When the last of `requests` can go out at the earliest, the first at t=0, under every window.

    Greedy is optimal: request i goes as soon as, for every (limit, seconds) window, the request `limit`
    places before it is `seconds` old.
    """
    if requests <= 0:
        return 0.0
    sent: deque[float] = deque(maxlen=max(limit for limit, _ in windows))
    t = 0.0
    for _ in range(requests):
        for limit, seconds in windows:
            if len(sent) >= limit:
                t = max(t, sent[-limit] + seconds)
        sent.append(t)
    return t
