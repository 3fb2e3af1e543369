"""The list honours `refresh` item by item, as a retrieve of each item would (docs/posthog-api.md,
Listing): force_cache without it; `blocking` computes the page's stale or missing items one after
another inside the request; `async` / `lazy_async` / `force_async` give each such item a background
job and its query_status; `force_blocking` computes every item; `basic=true` never computes.

These emulators seed only daily insights over relative ranges (the doc's `day` thresholds: 6 h,
lazily 12 h), so that each item's state is the one the test sets."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

LIST = "/api/projects/1/insights/"
DETAIL = "/api/projects/1/insights/{}/"
DAILY_ONLY = {"other_intervals_share": 0.0, "fixed_range_share": 0.0, "other_kinds_share": 0.0}
# The first page (order=id, limit=6) gets these states.
STATES = ("fresh", "stale", "very_stale", "missing", "fresh", "missing")


@pytest.fixture
def daily(start_emulator: Any, auth: dict[str, str]) -> Any:
    emulator = start_emulator(calc_ms=40, async_delay_s=0.5, **DAILY_ONLY)
    ids = emulator.store.insight_ids(1)[: len(STATES)]
    for insight_id, state in zip(ids, STATES, strict=True):
        emulator.store.set_cache_state(1, insight_id, state)
    emulator.reset_stats()
    with httpx.Client(base_url=emulator.base_url, headers=auth, timeout=10) as http:
        yield emulator, http, ids


def page(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = http.get(LIST, params={"order": "id", "limit": len(STATES), **params})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_without_refresh_the_list_never_computes(daily: Any) -> None:
    emulator, http, _ids = daily
    items = page(http)
    assert emulator.stats.calculations == 0 and emulator.stats.kind("compute") == 0
    assert [item["result"] is None for item in items] == [state == "missing" for state in STATES]
    assert all(item["query_status"] is None for item in items)


def test_blocking_page_computes_its_stale_and_missing_items(daily: Any) -> None:
    emulator, http, ids = daily
    before = {item["id"]: item for item in page(http)}
    started = time.monotonic()
    items = page(http, refresh="blocking")
    elapsed = time.monotonic() - started
    due = [state != "fresh" for state in STATES]
    assert [item["is_cached"] is False for item in items] == due
    assert all(item["result"] is not None and item["query_status"] is None for item in items)
    for item, state in zip(items, STATES, strict=True):
        if state == "fresh":
            assert item["last_refresh"] == before[item["id"]]["last_refresh"]
        elif state != "missing":
            assert item["result"] != before[item["id"]]["result"]  # recomputed numbers
    stats = emulator.stats
    assert stats.calculations == sum(due) == 4
    assert stats.kind("compute") == 1  # one request that calculated
    assert stats.max_slots_in_use == 1  # one after another, inside the request
    assert elapsed >= sum(due) * emulator.config.calc_ms / 1000
    again = page(http)  # a re-read is all fresh, from the cache
    assert all(item["is_cached"] is True for item in again)
    assert [item["last_refresh"] for item in again] == [item["last_refresh"] for item in items]
    assert all(emulator.store.insight(1, i)["_emulator"]["cache_state"] == "fresh" for i in ids)
    assert emulator.stats.calculations == 4


def test_force_blocking_page_computes_every_item(daily: Any) -> None:
    emulator, http, _ = daily
    started = time.monotonic()
    items = page(http, refresh="force_blocking")
    assert all(item["is_cached"] is False for item in items)
    assert emulator.stats.calculations == len(STATES)
    assert time.monotonic() - started >= len(STATES) * emulator.config.calc_ms / 1000


def test_async_page_starts_a_pollable_job_per_stale_or_missing_item(daily: Any) -> None:
    emulator, http, _ids = daily
    items = page(http, refresh="async")
    assert emulator.stats.calculations == 0
    jobs = {}
    for item, state in zip(items, STATES, strict=True):
        status = item["query_status"]
        if state == "fresh":
            assert status is None and item["is_cached"] is True
            continue
        assert status["complete"] is False and status["insight_id"] == item["id"]
        assert (item["result"] is None) == (state == "missing")
        jobs[item["id"]] = status["id"]
    assert len(jobs) == 4 and len(set(jobs.values())) == 4  # one id per item: its cache key
    for query_id in jobs.values():
        assert http.get(f"/api/environments/1/query/{query_id}/").status_code == 202
    emulator.advance_clock(emulator.config.async_delay_s + 0.01)
    for query_id in jobs.values():
        done = http.get(f"/api/environments/1/query/{query_id}/")
        assert done.status_code == 200 and done.json()["query_status"]["results"]["result"]
    after = page(http)
    assert all(item["is_cached"] is True and item["result"] is not None for item in after)


def test_lazy_async_page_starts_jobs_only_past_the_lazy_threshold(daily: Any) -> None:
    _, http, _ = daily
    items = page(http, refresh="lazy_async")
    started = [item["query_status"] is not None for item in items]
    assert started == [state in ("very_stale", "missing") for state in STATES]


def test_force_async_page_starts_a_job_for_every_item(daily: Any) -> None:
    emulator, http, _ = daily
    items = page(http, refresh="force_async")
    assert all(item["result"] is None and item["query_status"]["complete"] is False for item in items)
    assert len(emulator.store.running_jobs(1)) == len(STATES)


def test_basic_never_computes_whatever_the_refresh(daily: Any) -> None:
    emulator, http, _ = daily
    for mode in ("blocking", "force_blocking", "async"):
        items = page(http, refresh=mode, basic="true")
        assert all("result" not in item for item in items)
    assert emulator.stats.calculations == 0 and emulator.store.running_jobs(1) == []


@pytest.mark.parametrize("endpoint", ["list", "retrieve"])
def test_async_except_on_cache_miss_means_force_cache(daily: Any, endpoint: str) -> None:
    """In the documented enum, not in the insights endpoints' parser: no compute, no job."""
    emulator, http, ids = daily
    if endpoint == "list":
        items = page(http, refresh="async_except_on_cache_miss")
    else:
        items = [
            http.get(DETAIL.format(i), params={"refresh": "async_except_on_cache_miss"}).json() for i in ids
        ]
    assert [item["result"] is None for item in items] == [state == "missing" for state in STATES]
    assert all(item["query_status"] is None for item in items)
    assert all(item["is_cached"] is (state != "missing") for item, state in zip(items, STATES, strict=True))
    assert emulator.stats.calculations == 0 and emulator.store.running_jobs(1) == []


def test_a_page_item_answers_like_its_retrieve(daily: Any) -> None:
    _emulator, http, ids = daily
    stale = ids[STATES.index("stale")]
    item = next(i for i in page(http, refresh="async") if i["id"] == stale)
    retrieved = http.get(DETAIL.format(stale), params={"refresh": "async"}).json()
    for name in ("result", "last_refresh", "cache_target_age", "is_cached", "filters_hash"):
        assert item[name] == retrieved[name], name
    assert item["query_status"]["id"] == retrieved["query_status"]["id"]  # the same job, not a second


def test_blocking_stale_items_on_later_pages_are_left_alone(daily: Any) -> None:
    emulator, http, ids = daily
    http.get(LIST, params={"order": "id", "limit": 2, "offset": len(STATES), "refresh": "blocking"})
    assert all(emulator.store.insight(1, i)["_emulator"]["computes"] == 0 for i in ids)
