"""Bounded runs: a load cut into several packages (one bounded run of the source each) equals the same
load in one package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from posthog_emulator import Emulator
from posthog_insights import ConfigError
from posthog_insights_cli.summary import format_summary
from tests.reliability.support import (
    KEY,
    diff_warehouses,
    duplicate_keys,
    frozen_clock,
    load_into,
    read_warehouse,
)

CONFIG: dict[str, Any] = {
    "api_key": KEY,
    "insights": 40,
    "seed": 11,
    "points": 6,
    "fresh_share": 0.2,
    "stale_share": 0.6,
    "error_share": 0.05,
}


def _equals_a_one_package_run(
    tmp_path: Path,
    emulators: Callable[..., Emulator],
    clock: Callable[[], float],
    ran: str,
    result: Any,
    refresh_via: str = "list",
    **config: Any,
) -> Any:
    """The same emulator spec loaded unpaced, in one package, into tmp_path/whole: asserts that the run in
    tmp_path/`ran` reported the same outcomes and left the same warehouse; returns the one-package run."""
    whole = load_into(
        tmp_path / "whole", emulators(clock=clock, **(config or CONFIG)), refresh_via=refresh_via
    )
    assert whole.packages == 1
    assert result.report.outcomes == whole.report.outcomes
    got = read_warehouse(tmp_path / ran / "warehouse.duckdb")
    assert diff_warehouses(got, read_warehouse(tmp_path / "whole" / "warehouse.duckdb")) == []
    return whole


def test_a_paced_run_loads_a_package_whenever_it_waits_and_equals_a_one_package_run(
    tmp_path: Path, emulators: Callable[..., Emulator]
) -> None:
    clock = frozen_clock()
    # ~33 requests (a retrieve per stale insight) at 10 per 1.5 s: after each window's 10 the pacer idles
    # ~1.4 s, where a package loads
    paced = load_into(
        tmp_path / "paced",
        emulators(clock=clock, **CONFIG),
        rate_limit="10/1.5",
        refresh_via="retrieve",
    )
    whole = _equals_a_one_package_run(tmp_path, emulators, clock, "paced", paced, "retrieve")
    assert paced.report.requests["throttled"] == 0
    assert paced.packages >= 3, paced.packages
    # the run's figures add up over its packages
    assert paced.row_counts == whole.row_counts
    assert set(paced.steps) == {"extract", "normalize", "load"}
    assert sorted(paced.views) == sorted(whole.views) != []
    assert f"rows loaded (in {paced.packages} load packages):" in format_summary(paced)
    assert "rows loaded:" in format_summary(whole)
    assert set(duplicate_keys(tmp_path / "paced" / "warehouse.duckdb").values()) == {0}


@pytest.mark.parametrize(("refresh_via", "more_than"), [("retrieve", 3), ("list", 1)])
def test_volume_cuts_packages_once_the_listing_is_done(
    tmp_path: Path,
    emulators: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
    refresh_via: str,
    more_than: int,
) -> None:
    import posthog_insights.ledger as ledger

    monkeypatch.setattr(ledger, "RECORD_FLUSH_ROWS", 5)  # a batch every 5 outcomes
    clock = frozen_clock()
    # a little latency, so that the table side records (and the run fills up) while retrieves go on
    slow = {**CONFIG, "insights": 120, "latency_ms": 20.0}
    cut = load_into(
        tmp_path / "cut", emulators(clock=clock, **slow), checkpoint_mb=0.0001, refresh_via=refresh_via
    )
    assert cut.packages > more_than  # (a list read answers ten at once: fewer places to cut)
    _equals_a_one_package_run(tmp_path, emulators, clock, "cut", cut, refresh_via, **slow)


def test_an_async_run_polls_its_jobs_on_in_the_next_package(
    tmp_path: Path, emulators: Callable[..., Emulator]
) -> None:
    """Jobs started in one package are polled to their end in the next, not started again."""
    emulator = emulators(**{**CONFIG, "async_delay_s": 0.6})
    paced = load_into(
        tmp_path / "paced", emulator, refresh="async", rate_limit="12/1.5", refresh_via="retrieve"
    )
    assert paced.complete, paced.report
    assert paced.packages >= 2
    stats = emulator.stats.as_dict()
    needing = paced.report.retrieves_planned
    assert stats["by_kind"]["retrieve"] == needing  # each candidate retrieved once, whatever the packages
    db = tmp_path / "paced" / "warehouse.duckdb"
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        statuses = con.execute(
            "SELECT DISTINCT status FROM posthog_insights.insight_results_latest"
        ).fetchall()
    assert {s for (s,) in statuses} <= {"ok", "error"}


@pytest.mark.parametrize("value", [-1.0, float("nan"), True])
def test_checkpoint_mb_must_be_a_size(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^checkpoint_mb: must be a number of MB >= 0"):
        load_into(tmp_path, None, host="http://127.0.0.1:9", project_ids=[1], checkpoint_mb=value)
