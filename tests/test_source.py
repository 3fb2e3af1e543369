"""The source end to end: emulator over HTTP on 127.0.0.1 -> dlt -> DuckDB."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_emulator import Emulator
from tests.conftest import Warehouse
from tests.tidy_check import check_all_ok_snapshots

ALL_KINDS = {"trends", "stickiness", "lifecycle", "funnels", "retention", "paths", "sql"}


def _cache_states(emulator: Emulator, project_id: int = 1) -> dict[int, str]:
    """fresh / stale / missing per insight, as the emulator's cache model (PostHog's thresholds by interval,
    fixed past windows never stale) defines them; read from its store, not through the source."""
    store = emulator.store
    return {
        i: store.insight(project_id, i)["_emulator"]["cache_state"] for i in store.insight_ids(project_id)
    }


def test_blocking_loads_every_kind_value_by_value(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=70, error_share=0.0)
    states = _cache_states(emulator)
    emulator.reset_stats()
    result = warehouse.load(emulator, refresh="blocking")
    assert result.complete
    stats = emulator.stats
    needing = sum(1 for s in states.values() if s != "fresh")
    assert stats.calculations == needing  # each stale or missing one computed once
    # 70 insights, one page of 100; then list reads of up to ten stale ones each (or a retrieve for one)
    assert stats.by_kind.get("list", 0) + stats.by_kind.get("retrieve", 0) <= 1 + -(-needing // 10) + 1
    checked = check_all_ok_snapshots(warehouse)
    assert set(checked) == ALL_KINDS
    assert warehouse.count("insights") == 70
    latest = dict(warehouse.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY status"))
    assert latest == {"ok": 70}


def test_force_cache_spends_only_list_requests(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=60, error_share=0.0)
    states = _cache_states(emulator)
    emulator.reset_stats()
    result = warehouse.load(emulator, refresh="force_cache", page_size=25)
    assert result.complete
    assert emulator.stats.by_kind.get("retrieve", 0) == 0
    assert emulator.stats.by_kind.get("list", 0) == 3
    got = dict(warehouse.sql("SELECT insight_id, status FROM insight_results_latest"))
    assert got == {i: ("cache_miss" if s == "missing" else "ok") for i, s in states.items()}


@pytest.mark.parametrize("mode", ["force_blocking", "force_async"])
def test_force_modes_retrieve_every_insight(mode: str, start_emulator: Any, warehouse: Warehouse) -> None:
    """The per-insight path (force_async goes through the list by default: test_list_refresh.py)."""
    emulator = start_emulator(insights=30, error_share=0.0, async_delay_s=0.2)
    result = warehouse.load(emulator, refresh=mode, poll_deadline_s=20, refresh_via="retrieve")
    assert result.complete
    assert emulator.stats.by_kind.get("retrieve", 0) >= 30
    latest = dict(warehouse.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY status"))
    assert latest.get("ok", 0) + latest.get("pending", 0) == 30
    if mode == "force_async":
        assert emulator.stats.by_kind.get("poll", 0) > 0
        assert latest.get("ok") == 30
    check_all_ok_snapshots(warehouse)


@pytest.mark.parametrize("mode", ["async", "async_except_on_cache_miss", "lazy_async"])
def test_async_modes_poll_until_complete(mode: str, start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=30, error_share=0.0, async_delay_s=0.2)
    states = _cache_states(emulator)
    result = warehouse.load(emulator, refresh=mode, poll_deadline_s=20)
    assert result.complete
    latest = dict(warehouse.sql("SELECT insight_id, status FROM insight_results_latest"))
    for insight_id, state in states.items():
        if state == "missing" and mode != "lazy_async":
            assert latest[insight_id] == "ok", (insight_id, state)
    if mode in ("async", "async_except_on_cache_miss"):
        assert set(latest.values()) == {"ok"}
    check_all_ok_snapshots(warehouse)


def test_async_deadline_records_pending_and_cancels(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=10, error_share=0.0, async_delay_s=30.0)
    result = warehouse.load(emulator, refresh="force_async", poll_deadline_s=0.5)
    assert result.complete  # pending is a recorded outcome
    latest = dict(warehouse.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY status"))
    assert latest.get("pending") == 10
    assert emulator.stats.by_kind.get("cancel", 0) == 10


def test_query_status_forbidden_falls_back_to_cache(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=12, error_share=0.0, async_delay_s=0.2, allow_query_status=False)
    result = warehouse.load(emulator, refresh="force_async", poll_deadline_s=20)
    assert result.complete
    latest = dict(warehouse.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY status"))
    assert latest == {"ok": 12}


def test_calculation_errors_are_recorded_and_the_run_goes_on(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator(insights=50, error_share=0.3)
    result = warehouse.load(emulator, refresh="blocking")
    assert result.complete
    errors = warehouse.sql("SELECT error_message FROM insight_results_latest WHERE status = 'error'")
    assert errors and all(message for (message,) in errors)
    assert warehouse.sql("SELECT COUNT(*) FROM insight_results_latest WHERE status = 'ok'")[0][0] > 0


def test_rerun_adds_no_rows_and_recompute_adds_a_snapshot(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=40, error_share=0.0)
    warehouse.load(emulator, refresh="blocking")
    tables = [
        "insights",
        "insight_results",
        "trend_points",
        "funnel_steps",
        "retention_cells",
        "path_edges",
        "dashboards",
        "dashboard_tiles",
    ]
    before = {t: warehouse.count(t) for t in tables}
    again = warehouse.load(emulator, refresh="blocking")
    assert again.row_counts == {}
    assert {t: warehouse.count(t) for t in tables} == before
    trend_insight = warehouse.sql(
        "SELECT insight_id FROM insight_results WHERE kind = 'trends' AND tidy_rows > 0 LIMIT 1"
    )[0][0]
    count_snapshots = "SELECT COUNT(DISTINCT snapshot) FROM trend_points WHERE insight_id = ?"
    snapshots = warehouse.sql(count_snapshots, trend_insight)[0][0]
    emulator.store.set_cache_state(1, trend_insight, "stale")
    warehouse.load(emulator, refresh="blocking")
    # the emulator makes a cache stale by ageing its entry, which the list then shows as one more
    # (stale) snapshot before the recompute adds the new one
    assert warehouse.sql(count_snapshots, trend_insight)[0][0] == snapshots + 2
    assert warehouse.count("insight_results") == before["insight_results"] + 2
    via = warehouse.sql(
        "SELECT fetched_via FROM insight_results WHERE insight_id = ? ORDER BY snapshot DESC LIMIT 1",
        trend_insight,
    )
    assert via == [("retrieve",)]
    newest = warehouse.sql("SELECT MAX(snapshot) FROM trend_points WHERE insight_id = ?", trend_insight)[0][0]
    latest = warehouse.sql(
        "SELECT DISTINCT snapshot FROM trend_points_latest WHERE insight_id = ?", trend_insight
    )
    assert latest == [(newest,)]
    check_all_ok_snapshots(warehouse)


def test_deleted_insight_is_kept_and_flagged(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=20, error_share=0.0)
    warehouse.load(emulator, refresh="force_cache")
    victim = emulator.store.insight_ids(1)[3]
    name = warehouse.sql("SELECT name FROM insights WHERE id = ?", victim)[0][0]
    emulator.store.soft_delete(1, victim)
    warehouse.load(emulator, refresh="force_cache")
    rows = warehouse.sql("SELECT name, deleted FROM insights WHERE id = ?", victim)
    assert rows == [(name, True)]
    assert warehouse.sql("SELECT COUNT(*) FROM insights WHERE deleted")[0][0] == 1


def test_two_projects_in_one_run(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=15, projects=(1, 2), error_share=0.0)
    result = warehouse.load(emulator, refresh="blocking", project_ids=[1, 2])
    assert result.complete
    per_project = dict(warehouse.sql("SELECT project_id, COUNT(*) FROM insights GROUP BY project_id"))
    assert per_project == {1: 15, 2: 15}
    assert dict(warehouse.sql("SELECT project_id, COUNT(*) FROM insight_results_latest GROUP BY 1")) == {
        1: 15,
        2: 15,
    }
    check_all_ok_snapshots(warehouse)


def test_from_dashboard_loads_the_dashboard_view_as_its_own_variant(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator(insights=60, error_share=0.0)
    on_dashboard: dict[int, list[int]] = {}
    for insight_id in emulator.store.insight_ids(1):
        for dashboard in emulator.store.insight(1, insight_id).get("dashboards") or []:
            on_dashboard.setdefault(int(dashboard), []).append(insight_id)
    dashboard, members = max(on_dashboard.items(), key=lambda kv: len(kv[1]))
    result = warehouse.load(emulator, refresh="blocking", from_dashboard=dashboard)
    assert result.complete
    assert result.report.deleted_flagged == 0
    rows = warehouse.sql("SELECT insight_id, variant, status FROM insight_results")
    assert sorted(r[0] for r in rows) == sorted(members)
    assert {(r[1], r[2]) for r in rows} == {(f"dashboard={dashboard}", "ok")}
    check_all_ok_snapshots(warehouse)
