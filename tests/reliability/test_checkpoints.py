"""Checkpoints: a run loaded as several packages equals the same run loaded as one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from posthog_emulator import Emulator
from posthog_insights import Checkpoints, ConfigError
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
    tmp_path: Path, emulators: Callable[..., Emulator], clock: Callable[[], float], ran: str, result: Any
) -> Any:
    """The same emulator spec loaded unpaced, in one package, into tmp_path/whole: asserts that the run in
    tmp_path/`ran` reported the same outcomes and left the same warehouse; returns the one-package run."""
    whole = load_into(tmp_path / "whole", emulators(clock=clock, **CONFIG))
    assert whole.packages == 1
    assert result.report.outcomes == whole.report.outcomes
    got = read_warehouse(tmp_path / ran / "warehouse.duckdb")
    assert diff_warehouses(got, read_warehouse(tmp_path / "whole" / "warehouse.duckdb")) == []
    return whole


def test_a_paced_run_loads_a_package_whenever_it_waits_and_equals_a_one_package_run(
    tmp_path: Path, emulators: Callable[..., Emulator]
) -> None:
    clock = frozen_clock()
    # ~33 requests at 10 per 1.5 s: after each window's 10 the pacer idles ~1.4 s, where a package loads
    paced = load_into(tmp_path / "paced", emulators(clock=clock, **CONFIG), rate_limit="10/1.5")
    whole = _equals_a_one_package_run(tmp_path, emulators, clock, "paced", paced)
    assert paced.report.requests["throttled"] == 0
    assert paced.packages >= 3, paced.packages
    # the run's figures add up over its packages
    assert paced.row_counts == whole.row_counts
    assert set(paced.steps) == {"extract", "normalize", "load"}
    assert sorted(paced.views) == sorted(whole.views) != []
    assert f"rows loaded (in {paced.packages} load packages):" in format_summary(paced)
    assert "rows loaded:" in format_summary(whole)
    assert set(duplicate_keys(tmp_path / "paced" / "warehouse.duckdb").values()) == {0}


def test_volume_checkpoints_cut_between_batches(
    tmp_path: Path, emulators: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    import posthog_insights.recorder as recorder

    monkeypatch.setattr(recorder, "RECORD_FLUSH_ROWS", 10)  # a batch every 10 outcomes
    clock = frozen_clock()
    cut = load_into(tmp_path / "cut", emulators(clock=clock, **CONFIG), checkpoint_mb=0.0001)
    assert cut.packages > 3
    _equals_a_one_package_run(tmp_path, emulators, clock, "cut", cut)


@pytest.mark.parametrize("value", [-1.0, float("nan"), True])
def test_checkpoint_mb_must_be_a_size(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^checkpoint_mb: must be a number of MB >= 0"):
        Checkpoints(max_mb=value)


def test_listed_results_are_recorded_while_the_window_holds_retrieves_back(
    tmp_path: Path, emulators: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing's own results (fresh, and stale ones kept as history) do not delay the first retrieve:
    they are recorded once no response is due, and a stale one before its refresh."""
    from posthog_insights.client import PostHogClient
    from posthog_insights.recorder import Recorder

    events: list[tuple[str, int, bool]] = []  # (what, insight id, final)
    record, get = Recorder.outcome, PostHogClient.get_insight

    def recording(self: Recorder, outcome: Any, meta: Any, final: bool = True) -> None:
        events.append((f"record {outcome.fetched_via}", outcome.insight_id, final))
        record(self, outcome, meta, final)

    async def getting(self: PostHogClient, project_id: int, insight_id: int, **kwargs: Any) -> Any:
        events.append(("get", int(insight_id), True))
        return await get(self, project_id, insight_id, **kwargs)

    monkeypatch.setattr(Recorder, "outcome", recording)
    monkeypatch.setattr(PostHogClient, "get_insight", getting)
    clock = frozen_clock()
    paced = load_into(tmp_path / "paced", emulators(clock=clock, **CONFIG), rate_limit="10/1.5")
    whats = [what for what, _, _ in events]
    assert whats.index("get") < whats.index("record list")  # the first retrieve did not wait for them
    for n, (what, insight_id, final) in enumerate(events):
        if what == "record list" and not final:  # a stale result: recorded before its refresh's outcome
            assert ("record retrieve", insight_id, True) not in events[:n]
    monkeypatch.undo()
    _equals_a_one_package_run(tmp_path, emulators, clock, "paced", paced)


def test_listed_results_past_the_backlog_bound_are_recorded_at_once(
    tmp_path: Path, emulators: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    import posthog_insights.harvest as harvest

    monkeypatch.setattr(harvest, "_BACKLOG_BYTES", 3_000)  # a couple of insights' worth of page
    clock = frozen_clock()
    small = load_into(tmp_path / "small", emulators(clock=clock, **CONFIG), rate_limit="10/1.5")
    monkeypatch.undo()
    _equals_a_one_package_run(tmp_path, emulators, clock, "small", small)


def test_every_idle_package_carries_the_listed_results_recorded_so_far(
    tmp_path: Path, emulators: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In an async run the first window's retrieves only start jobs: the loop waits on no outcome while
    they are in flight, and the `Idle` found after that wait came with the backlog undrained (49 listed
    results), so the package cut there held only metadata rows. Each package carries them now."""
    from posthog_insights.harvest import Harvest, Idle

    batches = Harvest.batches
    backlog_at_idle: list[int] = []

    async def watched(self: Harvest) -> Any:
        async for item in batches(self):
            if isinstance(item, Idle):
                backlog_at_idle.append(len(self._backlog))
            yield item

    monkeypatch.setattr(Harvest, "batches", watched)
    config = {"api_key": KEY, "insights": 60, "seed": 3, "async_delay_s": 0.5}  # real clock: jobs finish
    result = load_into(tmp_path / "async", emulators(**config), refresh="async", rate_limit="10/1.5")
    assert result.packages >= 2 and backlog_at_idle, (result.packages, backlog_at_idle)
    assert set(backlog_at_idle) == {0}
    assert result.report.complete
