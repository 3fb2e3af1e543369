"""The organisation's concurrency limit, against the emulator's real one (docs/posthog-api.md, "Calculation
errors and the organisation's concurrency limit"): 10 synchronous calculations at once per organisation,
some of them held by its own users, the excess refused at once with `concurrency_limit_exceeded`."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import duckdb

from posthog_emulator import Emulator, EmulatorConfig
from posthog_insights import tables
from tests.conftest import TEST_KEY, Warehouse

CLOCK = float(int(time.time()))


def _emulator(frozen: bool = True, **config: Any) -> Emulator:
    """On a frozen clock two emulators compute the same numbers (results depend on the time computed);
    async jobs need a moving one."""
    base: dict[str, Any] = {"api_key": TEST_KEY, "insights": 280, "seed": 12, "error_share": 0.0}
    emulator = Emulator(EmulatorConfig(**{**base, **config}), clock=(lambda: CLOCK) if frozen else None)
    emulator.start()
    return emulator


def _latest(path: Path, table: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET search_path = 'posthog_insights'")
        columns = [c[0] for c in con.execute(f"DESCRIBE {table}_latest").fetchall()]
        kept = ", ".join(f'"{c}"' for c in columns if not c.startswith("_dlt_"))  # which load, not what
        return sorted(con.execute(f"SELECT {kept} FROM {table}_latest").fetchall(), key=repr)


def test_a_default_blocking_run_shares_the_organisation_and_spends_few_requests_on_refusals(
    tmp_path: Path,
) -> None:
    limited = _emulator(org_concurrency=10, background_calcs=4, calc_ms=150.0)
    unlimited = _emulator(org_concurrency=1_000, background_calcs=0, calc_ms=0.0)
    try:
        store = limited.store
        states = [store.insight(1, i)["_emulator"]["cache_state"] for i in store.insight_ids(1)]
        least = math.ceil(len(states) / 100) + sum(1 for s in states if s != "fresh")
        limited.reset_stats()
        ours = Warehouse(tmp_path, "limited")
        result = ours.load(limited, rate_limit="240/60,1200/3600")
        stats = limited.stats.as_dict()
        assert result.complete, result.report
        assert stats["by_status"].get("500", 0) == 0  # every read that may compute names its calculation
        assert stats["total"] <= 1.15 * least, (stats, least)
        assert stats["max_slots_in_use"] <= 6  # never more than the organisation had free
        assert result.report.requests["refused_calculations"] == stats["concurrency_refused"]
        assert dict(ours.sql("SELECT status, COUNT(*) FROM insight_results_latest GROUP BY 1")) == {"ok": 280}

        reference = Warehouse(tmp_path, "unlimited")
        assert reference.load(unlimited).complete
        for table in tables.TIDY:
            assert _latest(ours.path, table) == _latest(reference.path, table), table
    finally:
        limited.stop()
        unlimited.stop()


def test_async_except_on_cache_miss_computes_every_miss_though_posthog_ignores_the_mode(
    tmp_path: Path,
) -> None:
    emulator = _emulator(frozen=False, insights=60, async_delay_s=0.2)
    try:
        store = emulator.store
        states = {i: store.insight(1, i)["_emulator"]["cache_state"] for i in store.insight_ids(1)}
        misses = {i for i, s in states.items() if s == "missing"}
        stale = {i for i, s in states.items() if s == "stale"}
        assert misses and stale
        warehouse = Warehouse(tmp_path)
        # the per-insight path: blocking retrieves for the misses (through the list, jobs compute them)
        result = warehouse.load(
            emulator, refresh="async_except_on_cache_miss", retry_backoff_s=0.01, refresh_via="retrieve"
        )
        assert result.complete, result.report
        latest = dict(warehouse.sql("SELECT insight_id, status FROM insight_results_latest"))
        assert {latest[i] for i in misses} == {"ok"}  # computed in this run, not left as cache_miss
        assert {latest[i] for i in stale} == {"ok"}  # refreshed in the background, then collected
        sent = warehouse.sql("SELECT DISTINCT refresh_mode FROM insight_results")
        assert sent == [("async_except_on_cache_miss",)]
        assert emulator.stats.as_dict()["calculations"] >= len(misses)  # the misses, synchronously
        assert emulator.stats.kind("poll") >= 1  # the stale ones, through jobs
    finally:
        emulator.stop()
