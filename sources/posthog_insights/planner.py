"""Which insights need a retrieve under a refresh mode, with which `refresh`, and in what order.

The list (without `basic`) already carries every insight's cached result, so the cheapest run retrieves
nothing more. Each mode only pays for what PostHog would really compute: a result that PostHog still
finds fresh, or that can never go stale (a fixed window in the past), costs no request. The request
budget is spent on the insights deferred by the previous run first, then on the oldest results, so a
project too big for one run completes over several with nothing skipped.

Staleness follows PostHog's own rule (`posthog/caching/utils.py`, see docs/posthog-api.md "Staleness"):
a result is stale once `last_refresh + threshold(interval)` has passed, unless the query's window ended
before the result was computed. `blocking` and `async` use the default thresholds, which PostHog reports
as `cache_target_age`; `lazy_async` uses the longer lazy ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Final, TypeVar

FORCE_MODES: Final = frozenset({"force_blocking", "force_async"})
# Modes under which a fresh cached result is served as it is, so only stale or missing ones need a GET.
STALE_OR_MISSING_MODES: Final = frozenset({"blocking", "async", "async_except_on_cache_miss", "lazy_async"})
# Modes whose retrieve computes while the request waits: each takes one of the organisation's slots.
SYNCHRONOUS_MODES: Final = frozenset({"blocking", "force_blocking"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
# PostHog's staleness thresholds by the query's interval (None: queries without one, such as paths).
DEFAULT_THRESHOLDS: Final[dict[str | None, timedelta]] = {
    None: 6 * _HOUR, "minute": timedelta(minutes=5), "hour": _HOUR, "day": 6 * _HOUR, "week": _DAY,
    "month": _DAY,
}  # fmt: skip
LAZY_THRESHOLDS: Final[dict[str | None, timedelta]] = {
    None: 12 * _HOUR, "minute": timedelta(minutes=15), "hour": 2 * _HOUR, "day": 12 * _HOUR, "week": _DAY,
    "month": _DAY,
}  # fmt: skip
# PostHog compares a window's end with `last_refresh` minus this, as the cache write can lag the query.
FIXED_WINDOW_GRACE: Final = timedelta(seconds=10)

_U = TypeVar("_U")


def parse_time(value: Any) -> datetime | None:
    """PostHog timestamps are ISO 8601 with `Z` or an offset; anything else is treated as absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def query_interval(item: Mapping[str, Any]) -> str | None:
    """The interval PostHog's thresholds are keyed by: the query source's, retention's period, or the
    legacy filters'; SQL insights count as `day` (as current PostHog treats them)."""
    query = _mapping(item.get("query"))
    source = _mapping(query.get("source")) or query
    if source.get("kind") == "HogQLQuery":
        return "day"
    interval = source.get("interval")
    if interval is None:
        interval = _mapping(source.get("retentionFilter")).get("period")
    if interval is None:
        filters = _mapping(item.get("filters"))
        interval = filters.get("interval") or filters.get("period")
    text = str(interval).lower() if isinstance(interval, str) else None
    return text if text in DEFAULT_THRESHOLDS else None


def _window_closed(item: Mapping[str, Any], last_refresh: datetime) -> bool:
    """Whether the result's window ended before it was computed: PostHog never finds such a result stale."""
    window_end = parse_time(_mapping(item.get("resolved_date_range")).get("date_to"))
    return window_end is not None and window_end < last_refresh - FIXED_WINDOW_GRACE


def cache_state(item: Mapping[str, Any], now: datetime, *, lazy: bool = False) -> str:
    """`fresh`, `stale` or `missing`, as PostHog's cache model defines them for a listed item."""
    query_status = item.get("query_status")
    if item.get("result") is None or (isinstance(query_status, Mapping) and query_status.get("error")):
        return "missing"
    last_refresh = parse_time(item.get("last_refresh"))
    if last_refresh is None:
        return "stale"  # a result PostHog cannot date: only a refresh can tell
    if _window_closed(item, last_refresh):
        return "fresh"
    if lazy:
        target_age = last_refresh + LAZY_THRESHOLDS[query_interval(item)]
    else:
        target_age = parse_time(item.get("cache_target_age")) or (
            last_refresh + DEFAULT_THRESHOLDS[query_interval(item)]
        )
    return "stale" if target_age <= now else "fresh"


def retrieve_refresh(item: Mapping[str, Any], mode: str, now: datetime) -> str | None:
    """The `refresh` to retrieve a listed insight with under `mode`, or None when the list answered it.

    `async_except_on_cache_miss` is not a mode PostHog's insights endpoints accept (they read it as
    `force_cache`), so its meaning is delivered here: a stale result is refreshed in the background, a
    cache miss is computed now.
    """
    if mode in FORCE_MODES:
        return mode
    if mode not in STALE_OR_MISSING_MODES:
        return None  # force_cache: the list already answered exactly what a force_cache GET would
    state = cache_state(item, now, lazy=mode == "lazy_async")
    if state == "fresh":
        return None
    if mode == "async_except_on_cache_miss":
        return "blocking" if state == "missing" else "async"
    return mode


@dataclass(frozen=True)
class Job:
    """An async calculation PostHog is running for a candidate: polled until done (possibly by a later
    bounded run of the same session)."""

    query_id: str
    previous_refresh: datetime | None
    started: float  # time.monotonic() when it was started: its poll deadline runs from there


@dataclass(order=True, frozen=True)
class Candidate:
    """An insight (in one variant: plain, a dashboard's view, a backfill window) waiting for a retrieve.

    Sorts deferred-first, then oldest result first. `refresh` is the mode its retrieve sends; `job` a job
    already started for it, which is polled instead; `listed_at` where the list showed it (which filter
    set of the listing, which offset), so that a list read can compute it with its neighbours.
    """

    not_deferred: bool
    last_refresh: datetime
    project_id: int
    insight_id: int
    variant: str = field(default="", compare=False)
    params: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    refresh: str = field(default="force_cache", compare=False)
    job: Job | None = field(default=None, compare=False)
    listed_at: tuple[int, int] | None = field(default=None, compare=False)


def candidate(
    project_id: int,
    item: Mapping[str, Any],
    refresh: str,
    deferred: bool = False,
    variant: str = "",
    params: Mapping[str, str] | None = None,
    listed_at: tuple[int, int] | None = None,
) -> Candidate:
    return Candidate(
        not_deferred=not deferred,
        last_refresh=parse_time(item.get("last_refresh")) or _EPOCH,
        project_id=project_id,
        insight_id=int(item["id"]),
        variant=variant,
        params=tuple(sorted((params or {}).items())),
        refresh=refresh,
        listed_at=listed_at,
    )


def spend_budget(
    units: Iterable[_U], budget: int | None, key: Callable[[_U], Candidate]
) -> tuple[list[_U], list[_U]]:
    """Split units of one request each (a retrieve, or a list read that computes several candidates)
    into (send now, defer to the next run) for `budget` requests, in the order of `key`'s candidate."""
    ordered = sorted(units, key=key)
    if budget is None:
        return ordered, []
    budget = max(budget, 0)
    return ordered[:budget], ordered[budget:]
