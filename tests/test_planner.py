"""The planner's reading of PostHog's cache model (docs/posthog-api.md, "Retrieve and refresh" and
"Staleness"): which listed insights need a retrieve under each mode, and with which `refresh`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from posthog_insights.planner import cache_state, query_interval, retrieve_refresh

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def listed(
    age: timedelta | None,
    interval: str | None = "day",
    *,
    window_end: datetime | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """A listed insight whose result was computed `age` ago (None: nothing cached), with PostHog's
    default cache_target_age for its interval."""
    thresholds = {"minute": 300, "hour": 3600, "day": 21600, "week": 86400, "month": 86400, None: 21600}
    source: dict[str, Any] = {"kind": "TrendsQuery"}
    if interval is not None:
        source["interval"] = interval
    item: dict[str, Any] = {"id": 1, "query": {"kind": "InsightVizNode", "source": source}, "result": None}
    if error is not None:
        item["query_status"] = {"error": True, "error_message": error}
    if age is None:
        return item
    refreshed = NOW - age
    item |= {
        "result": [{"data": [1]}],
        "last_refresh": _iso(refreshed),
        "cache_target_age": _iso(refreshed + timedelta(seconds=thresholds[interval])),
        "resolved_date_range": {
            "date_from": _iso(refreshed - timedelta(days=7)),
            "date_to": _iso(window_end or refreshed.replace(hour=23, minute=59, second=59)),
        },
    }
    return item


@pytest.mark.parametrize(
    ("age", "interval", "state"),
    [
        (timedelta(hours=5), "day", "fresh"),
        (timedelta(hours=7), "day", "stale"),
        (timedelta(minutes=30), "hour", "fresh"),
        (timedelta(minutes=70), "hour", "stale"),
        (timedelta(minutes=6), "minute", "stale"),
        (timedelta(hours=20), "week", "fresh"),
        (timedelta(hours=25), "month", "stale"),
        (None, "day", "missing"),
    ],
)
def test_staleness_by_interval(age: timedelta | None, interval: str, state: str) -> None:
    assert cache_state(listed(age, interval), NOW) == state


def test_a_result_whose_window_ended_before_it_was_computed_never_goes_stale() -> None:
    old = listed(timedelta(days=30), window_end=NOW - timedelta(days=40))
    assert cache_state(old, NOW) == "fresh"
    assert retrieve_refresh(old, "blocking", NOW) is None
    # a window that ended only seconds before the computation may still have been moving
    just = listed(timedelta(days=30), window_end=NOW - timedelta(days=30, seconds=5))
    assert cache_state(just, NOW) == "stale"


def test_lazy_async_uses_the_longer_thresholds() -> None:
    item = listed(timedelta(hours=8), "day")  # past the default 6 h, within the lazy 12 h
    assert cache_state(item, NOW) == "stale"
    assert cache_state(item, NOW, lazy=True) == "fresh"
    assert retrieve_refresh(item, "async", NOW) == "async"
    assert retrieve_refresh(item, "lazy_async", NOW) is None
    assert retrieve_refresh(listed(timedelta(hours=13), "day"), "lazy_async", NOW) == "lazy_async"


def test_a_calculation_error_is_a_miss() -> None:
    assert cache_state(listed(None, error="Query timed out"), NOW) == "missing"


@pytest.mark.parametrize(
    ("mode", "fresh", "stale", "missing"),
    [
        ("force_cache", None, None, None),
        ("blocking", None, "blocking", "blocking"),
        ("async", None, "async", "async"),
        ("lazy_async", None, None, "lazy_async"),  # 7 h old: stale by default, fresh by lazy
        # PostHog's insights endpoints read this mode as force_cache: its meaning is the planner's
        ("async_except_on_cache_miss", None, "async", "blocking"),
        ("force_blocking", "force_blocking", "force_blocking", "force_blocking"),
        ("force_async", "force_async", "force_async", "force_async"),
    ],
)
def test_the_refresh_each_mode_retrieves_with(
    mode: str, fresh: str | None, stale: str | None, missing: str | None
) -> None:
    assert retrieve_refresh(listed(timedelta(hours=1)), mode, NOW) == fresh
    assert retrieve_refresh(listed(timedelta(hours=7)), mode, NOW) == stale
    assert retrieve_refresh(listed(None), mode, NOW) == missing


@pytest.mark.parametrize(
    ("item", "interval"),
    [
        (
            {"query": {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "interval": "hour"}}},
            "hour",
        ),
        (
            {"query": {"kind": "InsightVizNode", "source": {"retentionFilter": {"period": "Week"}}}},
            "week",
        ),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "PathsQuery"}}}, None),
        ({"query": {"kind": "DataVisualizationNode", "source": {"kind": "HogQLQuery"}}}, "day"),
        ({"query": None, "filters": {"insight": "TRENDS", "interval": "month"}}, "month"),
        ({"query": {"kind": "TrendsQuery", "interval": "minute"}}, "minute"),
        ({"query": {"kind": "InsightVizNode", "source": {"interval": "fortnight"}}}, None),
    ],
)
def test_the_interval_staleness_is_keyed_by(item: dict[str, Any], interval: str | None) -> None:
    assert query_interval(item) == interval


def test_without_cache_target_age_the_threshold_comes_from_the_interval() -> None:
    item = listed(timedelta(minutes=90), "hour")
    del item["cache_target_age"]
    assert cache_state(item, NOW) == "stale"
    item = listed(timedelta(minutes=30), "hour")
    del item["cache_target_age"]
    assert cache_state(item, NOW) == "fresh"
