"""PostHog's staleness thresholds by interval (docs/posthog-api.md, Staleness): cache_target_age is
last_refresh plus the interval's threshold; `lazy_async` waits for the longer lazy threshold; a window
that ended before the result was computed never goes stale; PostHog Cloud's server-side flag can
switch staleness off."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator

DETAIL = "/api/projects/1/insights/{}/"
HOUR = 3600.0
# The doc's table: interval -> (default, lazy) threshold.
THRESHOLDS: dict[str | None, tuple[float, float]] = {
    "minute": (5 * 60.0, 15 * 60.0),
    "hour": (HOUR, 2 * HOUR),
    "day": (6 * HOUR, 12 * HOUR),
    "week": (24 * HOUR, 24 * HOUR),
    "month": (24 * HOUR, 24 * HOUR),
    None: (6 * HOUR, 12 * HOUR),
}
MIXED = {"other_intervals_share": 1.0, "fixed_range_share": 0.0, "other_kinds_share": 0.2}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def mixed(start_emulator: Any, auth: dict[str, str]) -> Any:
    """Every time series hourly, weekly or monthly; every insight over a relative range."""
    emulator = start_emulator(**MIXED)
    with httpx.Client(base_url=emulator.base_url, headers=auth, timeout=10) as http:
        yield emulator, http


def first(emulator: Emulator, kind: str, interval: str | None, *, skip: int = 0, **extra: Any) -> int:
    ids = emulator.store.find(1, kind, interval=interval, **extra)
    assert len(ids) > skip, (kind, interval)
    return ids[skip]


def computed(http: httpx.Client, insight_id: int) -> dict[str, Any]:
    body: dict[str, Any] = http.get(DETAIL.format(insight_id), params={"refresh": "force_blocking"}).json()
    assert body["is_cached"] is False
    return body


def target_age(body: dict[str, Any]) -> float:
    return ts(body["cache_target_age"]) - ts(body["last_refresh"])


@pytest.mark.parametrize(
    ("kind", "interval"),
    [
        ("TRENDS", "hour"),
        ("TRENDS", "week"),
        ("LIFECYCLE", "month"),
        ("FUNNELS", "hour"),
        ("RETENTION", "week"),  # retentionFilter.period, lower-cased
        ("RETENTION", "month"),
        ("SQL", "day"),  # SQL insights are treated like day insights
        ("PATHS", None),  # no interval: the None row
        ("JSON", None),
    ],
)
def test_cache_target_age_follows_the_querys_interval(mixed: Any, kind: str, interval: str | None) -> None:
    emulator, http = mixed
    insight_id = first(emulator, kind, interval)
    body = computed(http, insight_id)
    source = body["query"]["source"]
    if kind == "RETENTION":
        assert source["retentionFilter"]["period"].lower() == interval
    elif interval is not None and kind != "SQL":
        assert source["interval"] == interval
    assert abs(target_age(body) - THRESHOLDS[interval][0]) < 0.01


def test_legacy_filters_interval_counts(mixed: Any) -> None:
    emulator, http = mixed
    for insight_id in emulator.store.insight_ids(1):
        insight = emulator.store.insight(1, insight_id)
        interval = insight["filters"].get("interval")
        if (
            interval in ("hour", "week", "month")
            and emulator.store.insight(1, insight_id)["_emulator"]["fails"] is None
        ):
            break
    else:
        pytest.skip("no legacy insight with a non-daily interval in this seed")
    assert abs(target_age(computed(http, insight_id)) - THRESHOLDS[interval][0]) < 0.01


def test_hourly_goes_stale_before_daily_before_weekly(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(other_intervals_share=0.6, fixed_range_share=0.0)
    store = emulator.store
    pairs = {}
    for interval in ("hour", "day", "week"):
        ids = store.find(1, "TRENDS", interval=interval) + store.find(1, "STICKINESS", interval=interval)
        assert len(ids) >= 2, interval
        pairs[interval] = ids[:2]
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        for ids in pairs.values():
            for insight_id in ids:
                computed(http, insight_id)
        elapsed = 0.0
        # (when, interval, which of the pair, stale by then?), checked in time order
        checks: list[tuple[float, str, int, bool]] = []
        for interval, (before, after) in pairs.items():
            threshold = THRESHOLDS[interval][0]
            checks += [(threshold - 60, interval, before, False), (threshold + 60, interval, after, True)]
        for when, interval, insight_id, stale in sorted(checks):
            emulator.advance_clock(when - elapsed)
            elapsed = when
            body = http.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()
            assert body["is_cached"] is (not stale), (interval, when)


def test_lazy_async_waits_for_the_lazy_threshold(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(other_intervals_share=0.0, fixed_range_share=0.0)
    lazy, eager = emulator.store.find(1, "TRENDS", "line", interval="day")[:2]
    default, longer = THRESHOLDS["day"]
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        computed(http, lazy)
        computed(http, eager)
        emulator.advance_clock(default + 60)  # stale, but not lazily
        body = http.get(DETAIL.format(lazy), params={"refresh": "lazy_async"}).json()
        assert body["is_cached"] is True and body["query_status"] is None
        assert ts(body["cache_target_age"]) < emulator.store.now()
        assert http.get(DETAIL.format(eager), params={"refresh": "async"}).json()["query_status"] is not None
        emulator.advance_clock(longer - default)  # past the lazy threshold too
        body = http.get(DETAIL.format(lazy), params={"refresh": "lazy_async"}).json()
        assert body["is_cached"] is True and body["query_status"]["complete"] is False


def test_a_fixed_past_range_never_goes_stale(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(fixed_range_share=1.0)
    store = emulator.store
    fixed = [i for kind in ("TRENDS", "FUNNELS", "LIFECYCLE") for i in store.find(1, kind, fixed_range=True)]
    assert len(fixed) >= 10
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        seeded = [http.get(DETAIL.format(i)).json() for i in fixed]
        cached = [(i, body) for i, body in zip(fixed, seeded, strict=True) if body["result"] is not None]
        assert cached, "the seed caches some of them"
        now = store.now()
        for insight_id, body in cached:
            # Computed after its window ended; its cache_target_age has long passed, yet it is fresh.
            assert ts(body["last_refresh"]) > ts(body["query"]["source"]["dateRange"]["date_to"])
            assert ts(body["cache_target_age"]) < now
            again = http.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()
            assert again["is_cached"] is True and again["last_refresh"] == body["last_refresh"]
            assert (
                http.get(DETAIL.format(insight_id), params={"refresh": "async"}).json()["query_status"]
                is None
            )
        insight_id = cached[0][0]
        emulator.advance_clock(60 * 86400)
        assert http.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()["is_cached"] is True
        assert store.insight(1, insight_id)["_emulator"]["cache_state"] == "fresh"
        assert (
            http.get(DETAIL.format(insight_id), params={"refresh": "force_blocking"}).json()["is_cached"]
            is False
        )


def test_without_stale_invalidation_nothing_is_stale(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(stale_invalidation=False, other_intervals_share=0.0, fixed_range_share=0.0)
    ids = emulator.store.find(1, "TRENDS", interval="day")[:3]
    for insight_id in ids:
        emulator.store.set_cache_state(1, insight_id, "very_stale")
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        blocking = http.get(DETAIL.format(ids[0]), params={"refresh": "blocking"}).json()
        assert blocking["is_cached"] is True
        assert ts(blocking["cache_target_age"]) < emulator.store.now()  # still reported
        for mode in ("async", "lazy_async"):
            body = http.get(DETAIL.format(ids[1]), params={"refresh": mode}).json()
            assert body["is_cached"] is True and body["query_status"] is None
        assert emulator.stats.calculations == 0
        # A cache miss still computes, and force_blocking always does.
        emulator.store.set_cache_state(1, ids[2], "missing")
        assert http.get(DETAIL.format(ids[2]), params={"refresh": "blocking"}).json()["is_cached"] is False
        assert (
            http.get(DETAIL.format(ids[0]), params={"refresh": "force_blocking"}).json()["is_cached"] is False
        )


@pytest.mark.parametrize("interval", ["hour", "week"])
def test_set_cache_state_uses_the_insights_own_thresholds(mixed: Any, interval: str) -> None:
    emulator, http = mixed
    insight_id = first(emulator, "TRENDS", interval)
    default, lazy = THRESHOLDS[interval]
    for state, low, high in (
        ("fresh", 0.0, 60.0),
        ("stale", default, max(lazy, 2 * default)),
        ("very_stale", lazy, 1e9),
    ):
        emulator.store.set_cache_state(1, insight_id, state)
        body = http.get(DETAIL.format(insight_id)).json()
        age = emulator.store.now() - ts(body["last_refresh"])
        assert low <= age <= high, (state, age)
        assert emulator.store.insight(1, insight_id)["_emulator"]["cache_state"] in (
            {state, "very_stale"} if state == "stale" and lazy == default else {state}
        )


def test_the_seed_mixes_intervals_and_fixed_ranges(emu: Emulator) -> None:
    store = emu.store
    ids = store.insight_ids(1)
    described = [store.insight(1, i)["_emulator"] for i in ids]
    intervals = [d["interval"] for d in described]
    assert intervals.count("day") > len(ids) / 2
    assert all(intervals.count(interval) > 0 for interval in ("hour", "week", "month"))
    fixed = [i for i, d in zip(ids, described, strict=True) if d["fixed_range"]]
    assert 0 < len(fixed) <= 0.1 * len(ids)
    now = store.now()
    for insight_id in fixed:
        shown = store.insight(1, insight_id)
        if shown["last_refresh"] is not None:
            assert shown["_emulator"]["cache_state"] == "fresh" and ts(shown["cache_target_age"]) < now
