"""Latency, seeded per-attempt faults (5xx, truncate, drop, slow), and the introspection counters."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from posthog_emulator import FaultConfig

DETAIL = "/api/projects/1/insights/1/"


def test_5xx_fault_answers_an_error_with_a_body(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(faults=FaultConfig(rate=1.0, kinds=("5xx",), seed=3))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        statuses = set()
        for _ in range(30):
            response = http.get(DETAIL)
            assert response.status_code in (500, 502, 503)
            assert response.content
            if response.status_code == 500:
                assert response.json()["type"] == "server_error"
            else:
                assert response.headers["content-type"].startswith("text/html")
            statuses.add(response.status_code)
        assert statuses == {500, 502, 503}
        assert http.get("/_emulator/health").status_code == 200  # never faulted
    stats = emulator.stats
    assert stats.faults["5xx"] >= 30 and stats.kind("retrieve") >= 30


def test_truncate_fault_sends_half_a_json_body(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(faults=FaultConfig(rate=1.0, kinds=("truncate",)))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        response = http.get(DETAIL)
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)
        follow_up = http.get(DETAIL)  # the connection stays usable
        assert follow_up.status_code == 200


def test_drop_fault_breaks_the_response(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(faults=FaultConfig(rate=1.0, kinds=("drop",)))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        for path in (DETAIL, "/api/projects/1/insights/?limit=5"):
            with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete|complete message body"):
                http.get(path)
    assert emulator.stats.faults["drop"] == 2


def test_slow_fault_and_latency(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(faults=FaultConfig(rate=1.0, kinds=("slow",), slow_s=0.4), latency_ms=100)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        started = time.monotonic()
        assert http.get(DETAIL).status_code == 200
        assert time.monotonic() - started >= 0.5
        with pytest.raises(httpx.ReadTimeout):
            http.get(DETAIL, timeout=0.2)


def test_latency_does_not_block_other_requests(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(latency_ms=300)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
                assert http.get(DETAIL).status_code == 200
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert not errors
    assert time.monotonic() - started < 2.0  # 8 x 300 ms would be 2.4 s if served one by one
    assert emulator.stats.max_in_flight >= 4


def test_faults_are_per_attempt_and_seeded(start_emulator: Any, auth: dict[str, str]) -> None:
    outcomes = []
    for _ in range(2):
        emulator = start_emulator(faults=FaultConfig(rate=0.5, kinds=("5xx",), seed=42))
        with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
            outcomes.append([http.get(DETAIL).status_code for _ in range(40)])
    assert outcomes[0] == outcomes[1]  # same seed, same sequence
    codes = outcomes[0]
    assert 200 in codes and any(code >= 500 for code in codes)
    retried_ok = any(codes[i] >= 500 and codes[i + 1] == 200 for i in range(len(codes) - 1))
    assert retried_ok  # a retry of the same request can succeed


def test_stats_count_by_kind_and_status(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator()
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        http.get("/api/projects/1/insights/")
        http.get("/api/environments/1/insights/2/")
        http.get("/api/projects/1/insights/3/", params={"refresh": "force_blocking"})
        status = http.get("/api/projects/1/insights/4/", params={"refresh": "force_async"}).json()[
            "query_status"
        ]
        http.get(f"/api/environments/1/query/{status['id']}/")
        http.delete(f"/api/environments/1/query/{status['id']}/")
        http.post("/api/projects/1/insights/cancel/", json={"client_query_id": "x"})
        http.get("/api/projects/1/insights/activity/")
        http.get("/api/projects/1/insights/999999/")
        http.get("/api/projects/1/insights/", headers={"Authorization": "Bearer bad"})
        http.get("/api/projects/1/dashboards/")
        http.get(f"/api/environments/1/dashboards/{emulator.store.dashboard_ids(1)[0]}/")
        http.get("/_emulator/health")  # not counted
    stats = emulator.stats
    assert stats.by_kind == {
        "list": 2,
        "retrieve": 4,
        "compute": 1,
        "poll": 1,
        "cancel": 2,
        "dashboards": 1,
        "dashboard": 1,
        "other": 1,
    }
    assert stats.total == 12
    assert stats.by_status == {200: 8, 202: 1, 201: 1, 404: 1, 401: 1}
    assert stats["by_kind"]["retrieve"] == 4 and stats.as_dict()["throttled"] == 0
    assert stats.in_flight == 0 and stats.max_in_flight == 1
    emulator.reset_stats()
    assert emulator.stats.total == 0 and emulator.stats.kind("list") == 0


def test_stats_endpoint_serves_the_snapshot(client: httpx.Client, emu: Any) -> None:
    client.get("/api/projects/1/insights/1/")
    served = client.get("/_emulator/stats").json()
    assert served["total"] == emu.stats.total and served["by_kind"]["retrieve"] >= 1


def test_counting_is_thread_safe(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator()
    per_thread = 40

    def worker() -> None:
        with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
            for index in range(per_thread):
                http.get(f"/api/projects/1/insights/{index % 50 + 1}/")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stats = emulator.stats
    assert stats.kind("retrieve") == stats.total == 6 * per_thread
    assert stats.status(200) == 6 * per_thread
    assert 1 <= stats.max_in_flight <= 6
