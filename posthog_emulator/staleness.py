"""When a cached result goes stale: PostHog's thresholds by interval (`posthog/caching/utils.py`).

PostHog has no single TTL. A result's `cache_target_age` is `last_refresh` plus a threshold that
depends on the query's interval (an hourly insight goes stale sooner than a monthly one), and
`lazy_async` uses a second, longer table before it starts a job. Two rules override the tables: a
result whose query window ended before it was computed never goes stale (a fixed past window cannot
change), and on PostHog Cloud a server-side flag (`stale_cache_invalidation_disabled`) can switch
staleness off altogether.

docs/posthog-api.md's table is followed where the code read differs: the copy of `caching/utils.py`
read for this module gives `month` 2 days in both tables, the doc 1 day.
"""

from __future__ import annotations

HOUR = 3600.0
DAY = 86400.0

DEFAULT_THRESHOLDS: dict[str | None, float] = {
    None: 6 * HOUR,
    "minute": 5 * 60.0,
    "hour": HOUR,
    "day": 6 * HOUR,
    "week": DAY,
    "month": DAY,
}
LAZY_THRESHOLDS: dict[str | None, float] = {
    None: 12 * HOUR,
    "minute": 15 * 60.0,
    "hour": 2 * HOUR,
    "day": 12 * HOUR,
    "week": DAY,
    "month": DAY,
}
# `is_stale`'s buffer: last_refresh is written slightly after the query ran.
PAST_WINDOW_BUFFER_S = 10.0

FRESH, STALE, VERY_STALE, MISSING = "fresh", "stale", "very_stale", "missing"


def threshold(interval: str | None, *, lazy: bool = False) -> float | None:
    """Seconds a result of this interval stays fresh; None for an interval the table lacks (PostHog
    then reports no cache_target_age and never finds the result stale)."""
    table = LAZY_THRESHOLDS if lazy else DEFAULT_THRESHOLDS
    return table.get(interval)


def cache_target_age(interval: str | None, last_refresh: float) -> float | None:
    """PostHog's `cache_target_age` (default table): when the result goes stale."""
    seconds = threshold(interval)
    return None if seconds is None else last_refresh + seconds


def is_stale(
    *,
    now: float,
    last_refresh: float,
    date_to: float | None,
    interval: str | None,
    lazy: bool = False,
    invalidation: bool = True,
) -> bool:
    """PostHog's `is_stale`: strictly past the threshold, unless switched off or a past window."""
    if not invalidation:
        return False
    if date_to is not None and date_to < last_refresh - PAST_WINDOW_BUFFER_S:
        return False
    seconds = threshold(interval, lazy=lazy)
    if seconds is None:
        return False
    return now > last_refresh + seconds


def state(
    *,
    now: float,
    last_refresh: float | None,
    date_to: float | None,
    interval: str | None,
    invalidation: bool = True,
) -> str:
    """fresh / stale (past the default threshold) / very_stale (past the lazy one too) / missing."""
    if last_refresh is None:
        return MISSING
    for lazy, name in ((False, FRESH), (True, STALE)):
        stale = is_stale(
            now=now,
            last_refresh=last_refresh,
            date_to=date_to,
            interval=interval,
            lazy=lazy,
            invalidation=invalidation,
        )
        if not stale:
            return name
    return VERY_STALE


def age_for(state_name: str, interval: str | None) -> float:
    """How old a result must be to be in `state_name` (the `set_cache_state` hook and the seed).

    `stale` lies halfway between the two thresholds; where they coincide (week, month) it is half a
    threshold past them, which is also lazily stale. `very_stale` is half the lazy threshold past it.
    """
    default = threshold(interval) or DEFAULT_THRESHOLDS[None]
    lazy = threshold(interval, lazy=True) or LAZY_THRESHOLDS[None]
    if state_name == FRESH:
        return 0.0
    if state_name == STALE:
        return (default + lazy) / 2 if lazy > default else 1.5 * default
    if state_name == VERY_STALE:
        return 1.5 * lazy
    raise ValueError(f"no age for state {state_name!r}")
