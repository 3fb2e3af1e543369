"""What PostHog itself answers when it cannot help: a long 429, a 404 mid-run, calculation errors, an
organisation whose calculation slots are all taken, an async job that never ends. The run goes on where
it can, stops gracefully where it must, and the next run finishes the job.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from posthog_emulator import Emulator
from tests.reliability.support import (
    KEY,
    Answer,
    CountingServer,
    Seen,
    assert_one_line_error,
    diff_warehouses,
    duplicate_keys,
    frozen_clock,
    insight_page,
    json_answer,
    load_into,
    lost_rows,
    read_warehouse,
    run_cli,
    source_state,
)

CONFIG: dict[str, Any] = {
    "api_key": KEY,
    "insights": 90,
    "seed": 9,
    "points": 10,
    "error_share": 0.0,
}


def _query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        con.execute("SET search_path = 'posthog_insights'")
        return con.execute(sql, list(params)).fetchall()


def _local_state(root: Path, pipeline: str = "posthog_insights") -> dict[str, Any]:
    state = json.loads((root / "pipelines" / pipeline / "state.json").read_text())
    return source_state(state)


def test_long_retry_after_stops_gracefully_and_the_next_run_finishes(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    """The key's hourly window fills up mid-run (another consumer shares it): Retry-After 3600 s."""
    clock = frozen_clock()
    config = {**CONFIG, "projects": (1, 2)}
    # 8 list pages + 52 of the 93 retrieves, then every request is throttled for an hour (the clock is
    # frozen); the next run needs 8 + 41 requests.
    emulator = emulators(clock=clock, rate_limits=((60, 3600.0),), **config)
    args = [
        "--host", emulator.base_url, "--project-id", "1", "--project-id", "2", "--refresh", "blocking",
        "--page-size", "25", "--rate-limit", "off", "--max-wait", "5", "--refresh-via", "retrieve",
    ]  # fmt: skip
    run_root = tmp_path / "run"
    first = run_cli(run_root, *args, key=KEY)
    assert first.returncode == 1, first.stdout + first.stderr
    line = assert_one_line_error(first, "HTTP 429", "max_wait_s", "re-run later")
    assert "3600" in line
    assert "STOPPED EARLY" in first.stdout
    # the first 429 stops the run: only requests already in flight (concurrency 8) meet one too
    assert 1 <= emulator.stats.throttled <= 8
    db = run_root / "warehouse.duckdb"
    # what was fetched before the 429 is loaded...
    loaded = _query(db, "SELECT COUNT(*) FROM insight_results WHERE fetched_via = 'retrieve'")[0][0]
    assert loaded > 0
    assert _query(db, "SELECT COUNT(*) FROM insights")[0][0] == 180
    # ...and the place is saved: the insights not retrieved are first in line next run
    deferred = {pid: p["deferred"] for pid, p in _local_state(run_root)["projects"].items()}
    assert sum(len(ids) for ids in deferred.values()) > 0, deferred

    emulator.throttle.reset()  # type: ignore[union-attr]  # the hour has passed
    second = run_cli(run_root, *args, key=KEY)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "posthog-insights: error" not in second.stderr
    deferred = {pid: p["deferred"] for pid, p in _local_state(run_root)["projects"].items()}
    assert all(ids == [] for ids in deferred.values()), deferred

    clean = emulators(clock=clock, **config)
    load_into(tmp_path / "clean", clean, refresh="blocking", page_size=25, refresh_via="retrieve")
    got, want = read_warehouse(db), read_warehouse(tmp_path / "clean" / "warehouse.duckdb")
    problems = diff_warehouses(got, want)
    figures("429 longer than max_wait", trials=1, recovered=int(not problems), rows_lost=lost_rows(got, want))
    assert not problems, problems
    assert set(duplicate_keys(db).values()) == {0}


def test_insight_deleted_between_list_and_retrieve_is_flagged_by_the_next_run(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    emulator = emulators(clock=frozen_clock(), latency_ms=100.0, **{**CONFIG, "insights": 30})
    store = emulator.store
    victim = next(
        i for i in store.insight_ids(1) if store.insight(1, i)["_emulator"]["cache_state"] == "missing"
    )
    name = store.insight(1, victim)["name"]

    def delete_once_listed() -> None:
        deadline = time.monotonic() + 30
        while emulator.stats.kind("list") < 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        store.soft_delete(1, victim)

    watcher = threading.Thread(target=delete_once_listed, daemon=True)
    watcher.start()
    result = load_into(tmp_path, emulator, refresh="blocking", concurrency=2)
    watcher.join()
    assert result.complete, result.report  # a 404 on a retrieve is no failure of the run
    assert emulator.stats.status(404) == 1
    db = tmp_path / "warehouse.duckdb"
    assert _query(db, "SELECT name, deleted FROM insights WHERE id = ?", victim) == [(name, False)]
    assert _query(db, "SELECT COUNT(*) FROM insight_results WHERE insight_id = ?", victim) == [(0,)]
    others = _query(
        db, "SELECT status, COUNT(*) FROM insight_results_latest WHERE insight_id <> ? GROUP BY 1", victim
    )
    assert others == [("ok", 29)]
    # the next run's listing no longer shows it: flagged deleted then, once
    again = load_into(tmp_path, emulator, refresh="blocking")
    assert again.complete and again.report.deleted_flagged == 1
    assert _query(db, "SELECT name, deleted FROM insights WHERE id = ?", victim) == [(name, True)]
    third = load_into(tmp_path, emulator, refresh="blocking")
    assert third.complete and third.report.deleted_flagged == 0
    assert set(duplicate_keys(db).values()) == {0}
    figures("404: insight deleted between list and retrieve", trials=1, recovered=1, rows_lost=0)


def test_calculation_errors_are_recorded_and_retried_next_run(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    emulator = emulators(clock=frozen_clock(), **{**CONFIG, "insights": 40})
    store = emulator.store
    states = {i: store.insight(1, i)["_emulator"]["cache_state"] for i in store.insight_ids(1)}
    stale = [i for i, s in states.items() if s == "stale"]
    missing = [i for i, s in states.items() if s == "missing"]
    failing = {
        stale[0]: ("Estimated query execution time is too long. Try reducing its scope.", False),
        missing[0]: ("Query timed out", False),
        stale[1]: ("Query exceeds memory limits. Try reducing its scope by changing the time range.", False),
        missing[1]: ("Could not compute the insight: a column it references no longer exists.", False),
        missing[2]: ("Unable to resolve field: $browserr", True),  # a HogQL error: 400 validation_error
    }
    for insight_id, (message, validation) in failing.items():
        store.set_fails(1, insight_id, message, validation=validation)
    result = load_into(tmp_path, emulator, refresh="blocking")
    assert result.complete, result.report
    db = tmp_path / "warehouse.duckdb"
    latest = dict(_query(db, "SELECT insight_id, status FROM insight_results_latest"))
    assert {i for i, s in latest.items() if s == "error"} == set(failing)
    assert {s for i, s in latest.items() if i not in failing} == {"ok"}
    for insight_id, (message, _) in failing.items():
        (recorded,) = _query(
            db, "SELECT error_message FROM insight_results_latest WHERE insight_id = ?", insight_id
        )[0]
        assert message.split(":")[0] in recorded, (insight_id, recorded)

    emulator.reset_stats()
    at_once = load_into(tmp_path, emulator, refresh="blocking")  # within the retry back-off
    assert at_once.complete and at_once.report.retry_later == len(failing)
    assert emulator.stats.kind("retrieve") == 0 and at_once.row_counts == {}

    for insight_id in failing:
        store.set_fails(1, insight_id, None)  # ClickHouse is back, the column is fixed
    emulator.reset_stats()
    again = load_into(tmp_path, emulator, refresh="blocking", retry_errors_after_s=0)  # past the back-off
    assert again.complete, again.report
    assert emulator.stats.calculations == len(failing)  # exactly the failed ones are retried
    latest = dict(_query(db, "SELECT insight_id, status FROM insight_results_latest"))
    assert set(latest.values()) == {"ok"}
    history = _query(db, "SELECT COUNT(*) FROM insight_results WHERE status = 'error'")[0][0]
    assert history == len(failing)  # the failures stay as history
    assert set(duplicate_keys(db).values()) == {0}
    figures("calculation errors (a timeout, memory, a HogQL 400)", trials=1, recovered=1, rows_lost=0)


def test_an_organisation_with_no_free_slot_is_waited_out_never_recorded_as_an_error(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    """Every one of the organisation's calculation slots is taken by its own users for a while: the run's
    calculations are refused (concurrency_limit_exceeded), asked for again, and succeed once slots free."""
    emulator = emulators(
        clock=frozen_clock(),
        org_concurrency=10,
        background_calcs=10,
        calc_ms=20.0,
        **{**CONFIG, "insights": 40},
    )

    def free_the_slots() -> None:
        deadline = time.monotonic() + 30
        while emulator.stats.as_dict()["concurrency_refused"] < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        emulator.store.set_background_calcs(4)

    watcher = threading.Thread(target=free_the_slots, daemon=True)
    watcher.start()
    result = load_into(tmp_path, emulator, refresh="blocking")
    watcher.join()
    assert result.complete, result.report
    refused = emulator.stats.as_dict()["concurrency_refused"]
    assert refused >= 3 and result.report.requests["refused_calculations"] == refused
    db = tmp_path / "warehouse.duckdb"
    assert _query(db, "SELECT DISTINCT status FROM insight_results_latest") == [("ok",)]
    assert _query(db, "SELECT COUNT(*) FROM insight_results WHERE status = 'error'") == [(0,)]
    assert (
        _local_state(tmp_path, "reliability")["projects"]["1"]["failed"] == {}
    )  # nothing parked for the back-off
    figures("no free calculation slot (concurrency_limit_exceeded)", trials=1, recovered=1, rows_lost=0)


def test_calculations_still_refused_at_the_deadline_are_left_for_the_next_run(
    tmp_path: Path, emulators: Callable[..., Emulator]
) -> None:
    emulator = emulators(
        clock=frozen_clock(),
        org_concurrency=10,
        background_calcs=10,
        calc_ms=5.0,
        **{**CONFIG, "insights": 20},
    )
    needing = [
        i
        for i in emulator.store.insight_ids(1)
        if emulator.store.insight(1, i)["_emulator"]["cache_state"] != "fresh"
    ]
    started = time.monotonic()
    result = load_into(tmp_path, emulator, refresh="blocking", poll_deadline_s=1.0)
    assert time.monotonic() - started < 20
    assert not result.complete and len(result.report.unfetched) == len(needing)
    assert all("concurrency_limit_exceeded" in line for line in result.report.unfetched)
    db = tmp_path / "warehouse.duckdb"
    assert _query(db, "SELECT COUNT(*) FROM insight_results WHERE status = 'error'") == [(0,)]
    assert sorted(_local_state(tmp_path, "reliability")["projects"]["1"]["deferred"]) == sorted(needing)
    emulator.store.set_background_calcs(0)
    again = load_into(tmp_path, emulator, refresh="blocking")
    assert again.complete, again.report
    assert _query(db, "SELECT DISTINCT status FROM insight_results_latest") == [("ok",)]


def test_async_job_that_never_completes_is_pending_and_cancelled(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    # The emulator's clock is frozen, so its jobs (60 s each) never finish while the run polls.
    emulator = emulators(clock=frozen_clock(), async_delay_s=60.0, **{**CONFIG, "insights": 12})
    started = time.monotonic()
    result = load_into(tmp_path, emulator, refresh="force_async", poll_deadline_s=1.0)
    assert time.monotonic() - started < 30
    assert result.complete, result.report  # pending is an outcome
    db = tmp_path / "warehouse.duckdb"
    assert _query(db, "SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1") == [("pending", 12)]
    notes = _query(db, "SELECT DISTINCT error_message LIKE '%cancelled%' FROM insight_results_latest")
    assert notes == [(True,)]
    assert emulator.stats.kind("cancel") == 12
    assert emulator.store.running_jobs(1) == []

    # Later the jobs do finish (time moves on): the next run loads their results.
    stop = threading.Event()

    def time_flies() -> None:
        while not stop.wait(0.2):
            emulator.advance_clock(30.0)

    mover = threading.Thread(target=time_flies, daemon=True)
    mover.start()
    try:
        again = load_into(tmp_path, emulator, refresh="async", poll_deadline_s=30.0)
    finally:
        stop.set()
        mover.join()
    assert again.complete, again.report
    assert _query(db, "SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1") == [("ok", 12)]
    assert _query(db, "SELECT COUNT(*) FROM insight_results WHERE status = 'pending'")[0][0] == 12
    figures("async job never completes", trials=1, recovered=1, rows_lost=0)


def test_async_job_complete_in_the_retrieve_answer_is_loaded(
    tmp_path: Path, emulators: Callable[..., Emulator]
) -> None:
    """A fast query: the job the retrieve starts has finished by the time PostHog answers, so the answer's
    query_status is already complete and carries the result (it was recorded as a cache miss)."""
    emulator = emulators(clock=frozen_clock(), async_delay_s=0.0, **{**CONFIG, "insights": 30})
    result = load_into(tmp_path, emulator, refresh="async")
    assert result.complete, result.report
    assert emulator.stats.kind("poll") == 0  # nothing left to poll
    db = tmp_path / "warehouse.duckdb"
    assert _query(db, "SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1") == [("ok", 30)]


def test_poll_answer_with_the_query_runners_spelling_is_loaded(tmp_path: Path) -> None:
    """PostHog's status endpoint nests the query runner's response, whose rows are under `results`."""
    series = {
        "label": "$pageview",
        "action": {"id": "$pageview", "name": "$pageview"},
        "count": 6,
        "data": [1, 2, 3],
        "labels": ["1-Jan-2024", "2-Jan-2024", "3-Jan-2024"],
        "days": ["2024-01-01", "2024-01-02", "2024-01-03"],
    }
    query = {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": []}}

    def answer(seen: Seen) -> Answer:
        if seen.path == "/api/projects/1/insights/":
            return json_answer(insight_page([7], None))
        if seen.path == "/api/projects/1/insights/7/":
            running = {"id": "q7", "complete": False, "error": False, "query_async": True}
            return json_answer({"id": 7, "query": query, "result": None, "query_status": running})
        if seen.path == "/api/environments/1/query/q7/":
            done = {"results": [series], "last_refresh": "2024-01-04T00:00:00Z", "is_cached": False}
            return json_answer(
                {"query_status": {"id": "q7", "complete": True, "error": False, "results": done}}
            )
        return json_answer({"detail": "Not found."}, 404)

    with CountingServer(answer) as server:
        result = load_into(tmp_path, None, host=server.url, project_ids=[1], refresh="async")
    assert result.complete, result.report
    db = tmp_path / "warehouse.duckdb"
    assert _query(db, "SELECT status, tidy_rows FROM insight_results_latest") == [("ok", 3)]
    assert [v for (v,) in _query(db, "SELECT value FROM trend_points ORDER BY point_index")] == [1, 2, 3]
