"""The legacy compute endpoints' pieces: `POST .../insights/{trend,funnel,retention,path}/` and
`funnel/correlation/`.

PostHog turns their filters into a query and runs it in a blocking mode (a recent cache, else a
synchronous calculation, which needs one of the organisation's slots like any other); they never
supported async. The answer is `{result, timezone, is_cached, last_refresh, timings}` (+ `next` for
trends). Nothing here touches the cache: the store does, with the transient insight made here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from posthog_emulator import synth
from posthog_emulator.models import Insight, Variant

KIND_BY_ENDPOINT: dict[str, str] = {
    "trend": "TRENDS",
    "funnel": "FUNNELS",
    "funnel/correlation": "FUNNELS",
    "retention": "RETENTION",
    "path": "PATHS",
}


@dataclass(eq=False)
class LegacyRead:
    """One legacy request: its transient insight, cache key, and whether it must calculate."""

    project_id: int
    endpoint: str
    insight: Insight
    variant: Variant
    cache_key: tuple[int, str]
    pending: bool


def transient_insight(
    project_id: int, endpoint: str, filters: dict[str, Any]
) -> tuple[Insight, Variant, str]:
    """An unsaved insight for the filters, its cache variant, and the filters' canonical JSON."""
    kind = KIND_BY_ENDPOINT.get(endpoint, "FUNNELS")
    if endpoint == "trend":
        # The trend endpoint also serves stickiness and lifecycle filters.
        asked = str(filters.get("insight") or "TRENDS").upper()
        kind = asked if asked in ("TRENDS", "STICKINESS", "LIFECYCLE") else "TRENDS"
    legacy_filters = {**filters, "insight": kind}
    canonical = orjson.dumps(legacy_filters, option=orjson.OPT_SORT_KEYS).decode()
    insight = Insight(
        id=0,
        short_id="",
        project_id=project_id,
        name=None,
        derived_name=None,
        description=None,
        query=None,
        filters=legacy_filters,
        saved=False,
        favorited=False,
        tags=[],
        dashboards=[],
        order=None,
        created_at=0.0,
        created_by=1,
        last_modified_at=0.0,
        last_modified_by=1,
        updated_at=0.0,
    )
    insight.refresh_definition()
    return insight, Variant(f"legacy={endpoint}:{canonical}", None, legacy_filters), canonical


def correlation(rng: random.Random) -> dict[str, Any]:
    """A funnel correlation result: events with success and failure counts and their odds ratio."""
    events = []
    for event in rng.sample(synth.EVENTS, 4):
        success, failure = rng.randint(1, 500), rng.randint(1, 500)
        events.append(
            {
                "event": {"event": event, "properties": {}, "elements": []},
                "success_count": success,
                "failure_count": failure,
                "odds_ratio": round(success / failure, 6),
                "correlation_type": "success" if success >= failure else "failure",
            }
        )
    return {"events": events, "skewed": False}
