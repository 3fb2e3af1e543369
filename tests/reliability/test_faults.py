"""What the network and PostHog do to a scheduled run, over real HTTP against the emulator.

Each transient fault (5xx bursts, dropped connections, truncated JSON, answers slower than the timeout)
is retried, and the warehouse ends up equal, table by table and row by row, to a clean run's. Both
emulators run on the same frozen clock with the same seed, so a compute gives the same numbers and the
same `last_refresh` whenever it happens: the comparison is exact (see `support.read_warehouse`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from posthog_emulator import Emulator, FaultConfig
from posthog_emulator.faults import Fault
from tests.reliability.support import (
    KEY,
    PROVENANCE_COLUMNS,
    diff_warehouses,
    duplicate_keys,
    frozen_clock,
    load_into,
    lost_rows,
    read_warehouse,
)

# Two projects, pages of 25 (so listing meets faults too), every kind of insight, a few broken ones.
BASE = {
    "api_key": KEY,
    "projects": (1, 2),
    "insights": 90,
    "seed": 5,
    "points": 14,
    "error_share": 0.05,
    "async_delay_s": 0.0,
}
# The async runs here take the per-insight path. Through the list (the default), a page read that fails
# after PostHog started its jobs is read again once they have finished (async_delay_s 0): the retry shows
# the new results only, and the stale ones a clean run keeps as history are not seen (README, known gaps).
RUN = {"page_size": 25, "max_retries": 8, "timeout_s": 5.0, "concurrency": 6, "refresh_via": "retrieve"}
SEEDS = (1, 2, 3)


@pytest.fixture(scope="module")
def clock() -> Callable[[], float]:
    return frozen_clock()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, clock: Callable[[], float]) -> dict[str, Path]:
    """Clean runs (no faults) per refresh mode, each against its own emulator."""
    out: dict[str, Path] = {}
    for mode in ("blocking", "async"):
        root = tmp_path_factory.mktemp(f"clean-{mode}")
        emulator = Emulator(_config(), clock=clock)
        with emulator:
            result = load_into(root, emulator, refresh=mode, **RUN)
        assert result.complete, result.report
        out[mode] = root / "warehouse.duckdb"
    return out


def _config(**overrides: Any) -> Any:
    from posthog_emulator import EmulatorConfig

    return EmulatorConfig(**{**BASE, **overrides})


def _faulted_run(
    tmp_path: Path, clock: Callable[[], float], faults: FaultConfig | None, mode: str, **run: Any
) -> tuple[Any, Emulator, Path]:
    emulator = Emulator(_config(faults=faults), clock=clock)
    with emulator:
        result = load_into(tmp_path, emulator, refresh=mode, **{**RUN, **run})
    return result, emulator, tmp_path / "warehouse.duckdb"


def _assert_same_warehouse(
    got: Path,
    want: Path,
    figures: Callable[..., None],
    fault: str,
    *,
    strict: bool,
    **extra: Any,
) -> None:
    """Equal table by table. Unless `strict`, `is_cached` / `fetched_via` / `query_id` may differ: when a
    response is lost after the server computed it, the retry reads that result from the cache."""
    ignore = () if strict else PROVENANCE_COLUMNS
    got_rows, want_rows = read_warehouse(got, ignore=ignore), read_warehouse(want, ignore=ignore)
    problems = diff_warehouses(got_rows, want_rows)
    lost = lost_rows(got_rows, want_rows)
    rows = sum(want_rows.row_counts().values())
    figures(fault, trials=1, recovered=int(not problems), rows_lost=lost, rows=rows, **extra)
    assert not problems, problems
    assert set(duplicate_keys(got).values()) == {0}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("kind", "rate", "extra"),
    [
        ("5xx", 0.3, {}),
        ("drop", 0.3, {}),
        ("truncate", 0.3, {}),
        # the server sleeps 1.5 s before answering; the client gives up after 0.4 s and retries
        ("slow", 0.15, {"timeout_s": 0.4}),
    ],
)
def test_transient_faults_are_retried_and_lose_nothing(
    kind: str,
    rate: float,
    extra: dict[str, Any],
    seed: int,
    tmp_path: Path,
    clock: Callable[[], float],
    clean: dict[str, Path],
    figures: Callable[..., None],
) -> None:
    faults = FaultConfig(rate=rate, kinds=(kind,), seed=seed, slow_s=1.5)
    result, emulator, db = _faulted_run(tmp_path, clock, faults, "blocking", **extra)
    assert result.complete, result.report
    stats = emulator.stats
    assert stats.faults.get(kind, 0) > 0, stats.faults
    assert result.report.requests["retries"] >= stats.faults[kind]
    assert stats.key_in_query == 0
    # a 5xx is answered before the request reaches PostHog: nothing was computed, even provenance is equal
    _assert_same_warehouse(
        db,
        clean["blocking"],
        figures,
        kind,
        strict=kind == "5xx",
        faults=stats.faults[kind],
        retries=result.report.requests["retries"],
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_every_fault_at_once_in_async_mode(
    seed: int,
    tmp_path: Path,
    clock: Callable[[], float],
    clean: dict[str, Path],
    figures: Callable[..., None],
) -> None:
    """Async mode: every retrieve starts a job (these finish at once, so the answer carries the result)."""
    faults = FaultConfig(rate=0.25, kinds=("5xx", "drop", "truncate", "slow"), seed=seed, slow_s=1.5)
    result, emulator, db = _faulted_run(tmp_path, clock, faults, "async", timeout_s=0.4, poll_deadline_s=60)
    assert result.complete, result.report
    assert len(emulator.stats.faults) == 4, emulator.stats.faults
    _assert_same_warehouse(
        db,
        clean["async"],
        figures,
        "mixed (async mode)",
        strict=False,
        faults=sum(emulator.stats.faults.values()),
        retries=result.report.requests["retries"],
    )


class _Bursts:
    """Every request in the first `length` seconds of each `period` answers 503 from the load balancer."""

    slow_s = 0.0

    def __init__(self, period: float, length: float) -> None:
        self.period, self.length = period, length
        self.start: float | None = None  # the first request starts an outage
        self.count = 0
        self._lock = threading.Lock()

    def draw(self) -> Fault | None:
        with self._lock:
            now = time.monotonic()
            self.start = now if self.start is None else self.start
            if (now - self.start) % self.period >= self.length:
                return None
            self.count += 1
            return Fault("5xx", 503, "text/html", b"<html><body>503 Service Unavailable</body></html>")


def test_5xx_bursts_are_waited_out(
    tmp_path: Path, clock: Callable[[], float], clean: dict[str, Path], figures: Callable[..., None]
) -> None:
    """Outages of 0.4 s every 1 s: backoff (0.1, 0.2, 0.4, ... s) outlasts each one."""
    emulator = Emulator(_config(latency_ms=20.0), clock=clock)
    bursts = _Bursts(period=1.0, length=0.4)
    emulator.app.faults = bursts  # type: ignore[assignment]
    with emulator:
        result = load_into(tmp_path, emulator, refresh="blocking", **{**RUN, "retry_backoff_s": 0.1})
    assert result.complete, result.report
    # the first request opens an outage, so one is always met; how many more depends on the run's speed
    assert bursts.count >= 1
    assert result.report.requests["retries"] >= bursts.count  # every refused request was tried again
    _assert_same_warehouse(
        tmp_path / "warehouse.duckdb",
        clean["blocking"],
        figures,
        "5xx bursts",
        strict=True,
        faults=bursts.count,
        retries=result.report.requests["retries"],
    )


def test_faults_on_async_polls_lose_nothing(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    """Jobs that take a while, so the run polls the query-status endpoint (202, then 200 or 400) while
    every kind of fault hits retrieves and polls alike. Time moves on here (jobs must finish), so the
    reference is not a clean run but what PostHog holds at the end: each insight's newest result in the
    warehouse is exactly the emulator's cached one, and its broken insights are errors."""
    start = frozen_clock()()
    emulator = emulators(
        clock=frozen_clock(start),
        **{**BASE, "projects": (1,), "insights": 60, "async_delay_s": 3.0},
        faults=FaultConfig(rate=0.25, kinds=("5xx", "drop", "truncate", "slow"), seed=8, slow_s=1.5),
    )
    stop = threading.Event()

    def time_flies() -> None:  # 1 s of the emulator's time per 0.1 s
        while not stop.wait(0.1):
            emulator.advance_clock(1.0)

    mover = threading.Thread(target=time_flies, daemon=True)
    mover.start()
    try:
        result = load_into(
            tmp_path, emulator, refresh="async", **{**RUN, "timeout_s": 0.4, "poll_deadline_s": 60}
        )
    finally:
        stop.set()
        mover.join()
    assert result.complete, result.report
    stats = emulator.stats
    assert stats.kind("poll") > 0 and sum(stats.faults.values()) > 0, stats.as_dict()

    _, items = emulator.store.list_insights(1, {"order": "id"}, basic=False, offset=0, limit=1000)
    held = {item["id"]: orjson.loads(orjson.dumps(item)) for item in items}
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT insight_id, status, last_refresh, result_json FROM posthog_insights.insight_results_latest"  # noqa: E501
        ).fetchall()
    latest = {i: (status, refreshed, loaded) for i, status, refreshed, loaded in rows}
    assert set(latest) == set(held)
    lost = 0
    for insight_id, item in held.items():
        status, refreshed, loaded = latest[insight_id]
        if item["result"] is None:
            assert status == "error", (insight_id, status)
            continue
        same = (
            status == "ok"
            and refreshed == datetime.fromisoformat(item["last_refresh"].replace("Z", "+00:00"))
            and orjson.loads(loaded) == item["result"]
        )
        lost += not same
    figures(
        "mixed faults on async polls",
        trials=1,
        recovered=int(lost == 0),
        rows_lost=lost,
        faults=sum(stats.faults.values()),
        retries=result.report.requests["retries"],
        polls=stats.kind("poll"),
    )
    assert lost == 0
