"""The organisation's concurrency limit on synchronous calculations (docs/posthog-api.md, "Calculation
errors and the organisation's concurrency limit"): at most `org_concurrency` at once, shared with the
organisation's own users, the excess refused at once with a 200 error body naming our
client_query_id, or a 500 without one; nothing cached or queued for a refusal. Not a 429."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import httpx

from posthog_emulator import Emulator

DETAIL = "/api/projects/1/insights/{}/"
LIST = "/api/projects/1/insights/"
CONCURRENCY = "concurrency_limit_exceeded"


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def daily(emulator: Emulator, count: int) -> list[int]:
    """Healthy daily trends insights over relative ranges, all without a cached result."""
    ids = emulator.store.find(1, "TRENDS", "line", interval="day", fixed_range=False)
    ids += emulator.store.find(1, "LIFECYCLE", interval="day", fixed_range=False)
    chosen = ids[:count]
    assert len(chosen) == count
    for insight_id in chosen:
        emulator.store.set_cache_state(1, insight_id, "missing")
    return chosen


def at_once(emulator: Emulator, auth: dict[str, str], calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """Send the GETs from threads released together; the responses, in call order."""
    barrier = threading.Barrier(len(calls))
    responses: list[Any] = [None] * len(calls)

    def one(index: int, path: str, params: dict[str, Any]) -> None:
        with httpx.Client(base_url=emulator.base_url, headers=auth, timeout=10) as http:
            http.get("/_emulator/health")  # connected before the barrier
            barrier.wait()
            responses[index] = http.get(path, params=params)

    threads = [threading.Thread(target=one, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    return responses


def test_the_excess_is_refused_with_our_client_query_id(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(org_concurrency=3, calc_ms=300)
    ids = daily(emulator, 6)
    calls = [(DETAIL.format(i), {"refresh": "blocking", "client_query_id": f"cq-{i}"}) for i in ids]
    responses = at_once(emulator, auth, calls)
    assert all(response.status_code == 200 for response in responses)  # not a 429
    bodies = [response.json() for response in responses]
    computed = [body for body in bodies if body["result"] is not None]
    refused = [body for body in bodies if body["result"] is None]
    assert len(computed) == 3 and len(refused) == 3
    now = emulator.store.now()
    for insight_id, body in zip(ids, bodies, strict=True):
        if body["result"] is not None:
            assert body["is_cached"] is False and body["query_status"] is None
            continue
        status = body["query_status"]
        assert status["id"] == f"cq-{insight_id}" and status["error"] is True
        assert status["error_message"] == CONCURRENCY and status["complete"] is False
        assert status["insight_id"] == insight_id and status["team_id"] == 1
        assert body["is_cached"] is False and body["timezone"] == "UTC"
        assert abs(ts(body["last_refresh"]) - now) < 5
    stats = emulator.stats
    assert stats.calculations == 3 and stats.concurrency_refused == 3 and stats.max_slots_in_use == 3
    assert stats.throttled == 0
    # The limit is transient: a moment later, with the slots free again, the same calculation succeeds.
    retry = next(insight_id for insight_id, body in zip(ids, bodies, strict=True) if body["result"] is None)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        assert http.get(DETAIL.format(retry), params={"refresh": "blocking"}).json()["result"] is not None


def test_a_refusal_caches_and_queues_nothing(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(org_concurrency=2, background_calcs=2)  # the users hold every slot
    [insight_id] = daily(emulator, 1)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        body = http.get(
            DETAIL.format(insight_id), params={"refresh": "blocking", "client_query_id": "a"}
        ).json()
        assert body["query_status"]["error_message"] == CONCURRENCY
        assert emulator.store.running_jobs(1) == []
        after = http.get(DETAIL.format(insight_id)).json()
        assert after["result"] is None and after["query_status"] is None and after["last_refresh"] is None
    state = emulator.store.insight(1, insight_id)["_emulator"]
    assert state["cache_state"] == "missing" and state["computes"] == 0
    assert emulator.stats.calculations == 0 and emulator.stats.concurrency_refused == 1


def test_a_refusal_without_client_query_id_is_500(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(org_concurrency=1, background_calcs=1)
    ids = daily(emulator, 2)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        response = http.get(DETAIL.format(ids[0]), params={"refresh": "blocking"})
        assert response.status_code == 500
        assert response.json() == {
            "type": "server_error",
            "code": "error",
            "detail": "A server error occurred.",
            "attr": None,
        }
        # On a list page one refused item fails the whole page.
        page = http.get(LIST, params={"refresh": "blocking", "order": "id", "limit": 100})
        assert page.status_code == 500 and page.json()["type"] == "server_error"
        named = http.get(
            LIST, params={"refresh": "blocking", "order": "id", "limit": 100, "client_query_id": "p"}
        )
        assert named.status_code == 200
        refused = [item for item in named.json()["results"] if item["query_status"]]
        assert refused and all(item["query_status"]["id"] == "p" for item in refused)
        assert all(item["query_status"]["error_message"] == CONCURRENCY for item in refused)
        # Reads that do not calculate are not limited.
        assert http.get(DETAIL.format(ids[1])).status_code == 200
        assert http.get(LIST, params={"limit": 100}).status_code == 200


def test_background_calcs_reduce_the_free_slots(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(org_concurrency=4, background_calcs=3, calc_ms=400)
    ids = daily(emulator, 3)
    calls = [(DETAIL.format(i), {"refresh": "blocking", "client_query_id": f"c{i}"}) for i in ids]
    bodies = [response.json() for response in at_once(emulator, auth, calls)]
    assert sum(body["result"] is not None for body in bodies) == 1  # 4 slots, 3 of them taken
    assert emulator.stats.max_slots_in_use == 1 and emulator.stats.concurrency_refused == 2
    emulator.store.set_background_calcs(0)  # the organisation's users went home
    for insight_id in ids:
        emulator.store.set_cache_state(1, insight_id, "missing")
    emulator.reset_stats()
    bodies = [response.json() for response in at_once(emulator, auth, calls)]
    assert all(body["result"] is not None for body in bodies)
    assert emulator.stats.max_slots_in_use == 3 and emulator.stats.concurrency_refused == 0


def test_a_calculation_holds_its_slot_without_blocking_the_server(
    start_emulator: Any, auth: dict[str, str]
) -> None:
    emulator = start_emulator(org_concurrency=1, calc_ms=600)
    slow, other = daily(emulator, 2)
    emulator.store.set_cache_state(1, other, "fresh")
    finished = threading.Event()
    elapsed: list[float] = []

    def blocking() -> None:
        with httpx.Client(base_url=emulator.base_url, headers=auth, timeout=10) as http:
            started = time.monotonic()
            http.get(DETAIL.format(slow), params={"refresh": "blocking", "client_query_id": "s"})
            elapsed.append(time.monotonic() - started)
            finished.set()

    thread = threading.Thread(target=blocking)
    thread.start()
    with httpx.Client(base_url=emulator.base_url, headers=auth, timeout=10) as http:
        deadline = time.monotonic() + 5
        while emulator.store.slots.in_use == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        # While the calculation runs, a cached read and a page of metadata are served...
        assert http.get(DETAIL.format(other)).json()["is_cached"] is True
        assert http.get(LIST, params={"basic": "true", "limit": 5}).status_code == 200
        assert not finished.is_set()
        # ...and a second calculation meets a full organisation.
        refused = http.get(DETAIL.format(other), params={"refresh": "force_blocking", "client_query_id": "o"})
        assert refused.json()["query_status"]["error_message"] == CONCURRENCY
    thread.join(10)
    assert elapsed and elapsed[0] >= 0.6


def test_async_jobs_take_no_synchronous_slot(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(org_concurrency=1, background_calcs=1, async_delay_s=0.1)
    [insight_id] = daily(emulator, 1)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        status = http.get(DETAIL.format(insight_id), params={"refresh": "async"}).json()["query_status"]
        assert status["error"] is False and status["complete"] is False
        emulator.advance_clock(0.2)
        assert http.get(f"/api/environments/1/query/{status['id']}/").status_code == 200
    assert emulator.stats.concurrency_refused == 0


def test_legacy_compute_needs_a_slot(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(org_concurrency=2, background_calcs=2)
    body = {"events": [{"id": "$pageview", "type": "events"}], "date_from": "-7d"}
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        refused = http.post(f"{LIST}trend/", json=body)
        assert refused.status_code == 500  # nothing in the legacy endpoints catches the limit
        emulator.store.set_background_calcs(1)
        computed = http.post(f"{LIST}trend/", json=body)
        assert computed.status_code == 200 and computed.json()["is_cached"] is False
    stats = emulator.stats
    assert stats.concurrency_refused == 1 and stats.calculations == 1 and stats.kind("compute") == 1


def test_calculation_stats_are_served(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator()
    [insight_id] = daily(emulator, 1)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        http.get(DETAIL.format(insight_id), params={"refresh": "blocking"})
        served = http.get("/_emulator/stats").json()
    assert served["calculations"] == 1 and served["max_slots_in_use"] == 1
    assert served["concurrency_refused"] == 0 and served["calculation_errors"] == 0
    emulator.reset_stats()
    assert emulator.stats.calculations == 0 and emulator.stats.max_slots_in_use == 0
