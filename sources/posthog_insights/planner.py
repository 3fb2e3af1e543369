"""Which insights need a retrieve under a refresh mode, and in what order the budget is spent.

The list (without `basic`) already carries every insight's cached result, so the cheapest run retrieves
nothing more. Each mode only pays for what it really needs; the request budget is spent on the insights
deferred by the previous run first, then on the oldest results, so a project too big for one run
completes over several with nothing skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FORCE_MODES = frozenset({"force_blocking", "force_async"})
# Modes under which a fresh cached result is served as it is, so only stale or missing ones need a GET.
STALE_OR_MISSING_MODES = frozenset({"blocking", "async", "async_except_on_cache_miss", "lazy_async"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """PostHog timestamps are ISO 8601 with `Z` or an offset; anything else is treated as absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def cache_state(item: Mapping[str, Any], now: datetime) -> str:
    """`fresh`, `stale` or `missing`, as the server's cache model defines them for a listed item."""
    query_status = item.get("query_status")
    if item.get("result") is None or (isinstance(query_status, Mapping) and query_status.get("error")):
        return "missing"
    target_age = parse_time(item.get("cache_target_age"))
    if target_age is not None and target_age <= now:
        return "stale"
    return "fresh"


def needs_retrieve(item: Mapping[str, Any], mode: str, now: datetime) -> bool:
    """Whether an insight's listed payload is not enough under `mode`."""
    if mode in FORCE_MODES:
        return True
    if mode in STALE_OR_MISSING_MODES:
        return cache_state(item, now) != "fresh"
    return False  # force_cache: the list already answered exactly what a force_cache GET would


@dataclass(order=True, frozen=True)
class Candidate:
    """An insight (in one variant: plain, a dashboard's view, a backfill window) waiting for a retrieve.

    Sorts deferred-first, then oldest result first.
    """

    not_deferred: bool
    last_refresh: datetime
    project_id: int
    insight_id: int
    variant: str = field(default="", compare=False)
    params: tuple[tuple[str, str], ...] = field(default=(), compare=False)


def candidate(
    project_id: int,
    item: Mapping[str, Any],
    deferred: bool = False,
    variant: str = "",
    params: Mapping[str, str] | None = None,
) -> Candidate:
    return Candidate(
        not_deferred=not deferred,
        last_refresh=parse_time(item.get("last_refresh")) or _EPOCH,
        project_id=project_id,
        insight_id=int(item["id"]),
        variant=variant,
        params=tuple(sorted((params or {}).items())),
    )


def spend_budget(
    candidates: Iterable[Candidate], budget: int | None
) -> tuple[list[Candidate], list[Candidate]]:
    """Split candidates into (retrieve now, defer to the next run) for `budget` retrieves."""
    ordered = sorted(candidates)
    if budget is None:
        return ordered, []
    budget = max(budget, 0)
    return ordered[:budget], ordered[budget:]
