"""Checkpoints: a run loaded as several packages equals the same run loaded as one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from posthog_emulator import Emulator
from posthog_insights import Checkpoints, ConfigError
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
    "cache_ttl_s": 86_400.0,
}


def test_a_paced_run_loads_a_package_whenever_it_waits_and_equals_a_one_package_run(
    tmp_path: Path, emulators: Callable[..., Emulator]
) -> None:
    clock = frozen_clock()
    # ~33 requests at 10 per 1.5 s: after each window's 10 the pacer idles ~1.4 s, where a package loads
    paced = load_into(tmp_path / "paced", emulators(clock=clock, **CONFIG), rate_limit="10/1.5")
    whole = load_into(tmp_path / "whole", emulators(clock=clock, **CONFIG), rate_limit="off")
    assert paced.report.requests["throttled"] == 0
    assert whole.packages == 1
    assert paced.packages >= 3, paced.packages
    # the run's figures add up over its packages
    assert paced.row_counts == whole.row_counts
    assert set(paced.steps) == {"extract", "normalize", "load"}
    assert sorted(paced.views) == sorted(whole.views) != []
    got = read_warehouse(tmp_path / "paced" / "warehouse.duckdb")
    assert diff_warehouses(got, read_warehouse(tmp_path / "whole" / "warehouse.duckdb")) == []
    assert set(duplicate_keys(tmp_path / "paced" / "warehouse.duckdb").values()) == {0}


def test_volume_checkpoints_cut_between_batches(
    tmp_path: Path, emulators: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    import posthog_insights.recorder as recorder

    monkeypatch.setattr(recorder, "RECORD_FLUSH_ROWS", 10)  # a batch every 10 outcomes
    clock = frozen_clock()
    cut = load_into(tmp_path / "cut", emulators(clock=clock, **CONFIG), checkpoint_mb=0.0001)
    whole = load_into(tmp_path / "whole", emulators(clock=clock, **CONFIG), checkpoint_mb=None)
    assert cut.packages > 3 and whole.packages == 1
    got = read_warehouse(tmp_path / "cut" / "warehouse.duckdb")
    assert diff_warehouses(got, read_warehouse(tmp_path / "whole" / "warehouse.duckdb")) == []


@pytest.mark.parametrize("value", [-1.0, float("nan"), True])
def test_checkpoint_mb_must_be_a_size(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^checkpoint_mb: must be a number of MB >= 0"):
        Checkpoints(max_mb=value)
