"""`blocking` through the list (list_calculation.py) against the emulator over sockets: list reads of a
few stale insights each compute them inside the request. Counts, not times."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from posthog_emulator import Emulator
from tests.conftest import Warehouse, half_stale_emulator, loaded_shape, needing_refresh

N = 600


def _emulator(**config: Any) -> Emulator:
    return half_stale_emulator(**{"insights": N, **config})


def test_a_blocking_refresh_through_the_list_computes_ten_per_read_and_loads_what_retrieves_load(
    tmp_path: Path,
) -> None:
    via_list, via_retrieve = _emulator(), _emulator()
    try:
        stale_or_missing = needing_refresh(via_list)
        assert stale_or_missing >= N // 3
        listed = Warehouse(tmp_path, "list")
        result = listed.load(via_list, refresh="blocking", rate_limit="off")
        assert result.complete, result.report
        stats = via_list.stats.as_dict()
        pages = math.ceil(N / 100)
        # the listing's pages, then about one read per ten stale insights of each page (a page's last
        # few may need a read of their own, and a read of one is a retrieve)
        assert (
            stats["by_kind"]["list"] + stats["by_kind"].get("retrieve", 0)
            <= pages + math.ceil(stale_or_missing / 10) + pages
        ), stats
        assert stats["total"] < stale_or_missing // 3, stats
        assert via_list.stats.calculations == stale_or_missing  # each computed once

        retrieved = Warehouse(tmp_path, "retrieve")
        assert retrieved.load(
            via_retrieve, refresh="blocking", rate_limit="off", refresh_via="retrieve"
        ).complete
        assert via_retrieve.stats.as_dict()["by_kind"]["retrieve"] == stale_or_missing
        assert loaded_shape(listed) == loaded_shape(retrieved)
        statuses = dict(listed.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1"))
        assert statuses == {"ok": N}
    finally:
        via_list.stop()
        via_retrieve.stop()


def test_a_read_computes_at_most_max_list_calculations(tmp_path: Path) -> None:
    emulator = _emulator(insights=300)
    try:
        stale_or_missing = needing_refresh(emulator)
        result = Warehouse(tmp_path).load(
            emulator, refresh="blocking", rate_limit="off", max_list_calculations=3
        )
        assert result.complete, result.report
        stats = emulator.stats.as_dict()
        computing_reads = stats["by_kind"]["list"] - 3 + stats["by_kind"].get("retrieve", 0)
        assert computing_reads >= math.ceil(stale_or_missing / 3), stats
    finally:
        emulator.stop()


def test_failing_insights_get_their_error_and_refused_ones_are_retried_on_their_own(tmp_path: Path) -> None:
    # 4 of the organisation's 6 slots held by its own users: reads and retrieves are refused at times
    emulator = _emulator(insights=300, error_share=0.1, org_concurrency=6, background_calcs=4, calc_ms=20.0)
    try:
        wh = Warehouse(tmp_path)
        result = wh.load(emulator, refresh="blocking", rate_limit="off")
        store = emulator.store
        failing = {i for i in store.insight_ids(1) if store.insight(1, i)["_emulator"]["fails"]}
        assert failing
        rows = dict(wh.sql("SELECT insight_id, status FROM insight_results_latest"))
        needing = {
            i for i in store.insight_ids(1) if store.insight(1, i)["_emulator"]["cache_state"] != "fresh"
        }
        assert {i for i in failing & needing if rows.get(i) != "error"} == set()
        assert all(rows[i] == "ok" for i in needing - failing), result.report
        assert result.complete, result.report
    finally:
        emulator.stop()


def test_a_budget_spends_one_request_per_read_and_defers_the_rest_first_in_line(tmp_path: Path) -> None:
    emulator = _emulator(insights=300)
    try:
        stale_or_missing = needing_refresh(emulator)
        wh = Warehouse(tmp_path)
        first = wh.load(emulator, refresh="blocking", rate_limit="off", max_requests=6)
        assert emulator.stats.as_dict()["total"] <= 6
        # three pages listed, three reads of up to ten each: more insights refreshed than requests left
        refreshed = first.report.outcomes.get("ok", 0)
        assert first.report.deferred > 0
        assert emulator.stats.calculations > 3, emulator.stats.calculations
        second = wh.load(emulator, refresh="blocking", rate_limit="off")
        assert second.complete, second.report
        assert refreshed > 0
        assert emulator.stats.calculations == stale_or_missing
    finally:
        emulator.stop()
