"""The async modes' list path (collection.py) against the emulator over sockets: list pages start the
jobs and collect their results. Counts, not times."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from posthog_emulator import Emulator
from posthog_insights import tables
from tests.conftest import Warehouse, half_stale_emulator, loaded_shape, needing_refresh

N = 600  # six pages of 100


def _emulator(**config: Any) -> Emulator:
    return half_stale_emulator(**{"async_delay_s": 0.3, "insights": N, **config})


@pytest.mark.parametrize("mode", ["async", "async_except_on_cache_miss"])
def test_an_async_refresh_through_the_list_spends_a_few_reads_per_page_and_loads_what_retrieves_load(
    tmp_path: Path, mode: str
) -> None:
    via_list, via_retrieve = _emulator(), _emulator()
    try:
        stale_or_missing = needing_refresh(via_list)
        assert stale_or_missing >= N // 3
        listed = Warehouse(tmp_path, "list")
        result = listed.load(via_list, refresh=mode, rate_limit="off")
        stats = via_list.stats.as_dict()
        assert result.complete, result.report
        assert stats["by_kind"]["retrieve"] == 0  # every job started and collected by pages
        assert stats["total"] <= 3 * math.ceil(N / 100), stats
        assert len(via_list.store.job_spans()) == stale_or_missing  # one job per stale or missing insight

        retrieved = Warehouse(tmp_path, "retrieve")
        assert retrieved.load(via_retrieve, refresh=mode, rate_limit="off", refresh_via="retrieve").complete
        assert via_retrieve.stats.as_dict()["total"] > stale_or_missing + N // 100  # a request or more each
        assert loaded_shape(listed) == loaded_shape(retrieved)
        assert dict(listed.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1")) == {"ok": N}
        # the stale results stay as history beside their refresh, never twice
        assert listed.sql(
            "SELECT COUNT(*) FROM (SELECT insight_id, last_refresh FROM insight_results"
            " GROUP BY 1, 2 HAVING COUNT(*) > 1)"
        ) == [(0,)]
    finally:
        via_list.stop()
        via_retrieve.stop()


def test_the_jobs_of_a_run_in_flight_stay_under_max_jobs(tmp_path: Path) -> None:
    emulator = _emulator(async_delay_s=0.5)
    try:
        result = Warehouse(tmp_path).load(emulator, refresh="async", rate_limit="off", max_jobs=100)
        assert result.complete, result.report
        spans = emulator.store.job_spans()
        assert len(spans) > 200  # without the cap, six quick pages would start them all at once
        edges = sorted([(start, 1) for start, _ in spans] + [(ready, -1) for _, ready in spans])
        running = most = 0
        for _, step in edges:
            running += step
            most = max(most, running)
        assert most <= 100, most
    finally:
        emulator.stop()


def test_jobs_still_running_at_the_deadline_are_cancelled_and_recorded_pending(tmp_path: Path) -> None:
    emulator = _emulator(insights=150, async_delay_s=60.0)
    try:
        wh = Warehouse(tmp_path)
        result = wh.load(emulator, refresh="async", rate_limit="off", poll_deadline_s=1.0)
        stats = emulator.stats.as_dict()
        stale_or_missing = needing_refresh(emulator)
        statuses = dict(wh.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1"))
        assert statuses.get(tables.STATUS_PENDING) == stale_or_missing, statuses
        assert stats["by_kind"]["cancel"] == stale_or_missing
        assert result.report.outcomes  # every insight got its outcome
    finally:
        emulator.stop()


def test_a_job_that_fails_is_recorded_with_its_error_from_a_poll(tmp_path: Path) -> None:
    emulator = _emulator(insights=200, error_share=0.1)
    try:
        wh = Warehouse(tmp_path)
        wh.load(emulator, refresh="async", rate_limit="off")
        failing = [
            i for i in emulator.store.insight_ids(1) if emulator.store.insight(1, i)["_emulator"]["fails"]
        ]
        assert failing
        errors = dict(
            wh.sql("SELECT insight_id, error_message FROM insight_results_latest WHERE status = 'error'")
        )
        assert set(errors) == set(failing)
        assert all(errors.values())
        assert emulator.stats.as_dict()["by_kind"]["retrieve"] == 0
    finally:
        emulator.stop()


def test_force_async_through_the_list_starts_a_job_for_every_insight(tmp_path: Path) -> None:
    emulator = _emulator(insights=150)
    try:
        wh = Warehouse(tmp_path)
        assert wh.load(emulator, refresh="force_async", rate_limit="off").complete
        assert len(emulator.store.job_spans()) == 150
        assert emulator.stats.as_dict()["by_kind"]["retrieve"] == 0
        # a new result each, not the old one still in the cache while the job ran
        assert dict(wh.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1")) == {"ok": 150}
        assert wh.sql(
            "SELECT COUNT(*) FROM insight_results_latest l JOIN insight_results r USING (insight_id)"
            " WHERE r.last_refresh > l.last_refresh"
        ) == [(0,)]
    finally:
        emulator.stop()
