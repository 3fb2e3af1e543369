"""A load that outgrows DuckDB's automatic memory limit: the limit doubles, and nothing is lost or doubled."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from posthog_emulator import Emulator
from posthog_insights_cli import duckdb_target
from posthog_insights_cli.loader import DUCKDB_MEMORY_LIMIT_ENV
from tests.conftest import load_with_the_cli_duckdb
from tests.reliability.support import KEY, diff_warehouses, duplicate_keys, frozen_clock, read_warehouse

CONFIG: dict[str, Any] = {"api_key": KEY, "insights": 60, "seed": 5, "points": 400}


def test_a_load_that_outgrows_the_automatic_limit_doubles_it_and_equals_an_unlimited_load(
    emulators: Callable[..., Emulator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.chdir(tmp_path)
    clock = frozen_clock()
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "off")
    load_with_the_cli_duckdb(emulators(clock=clock, **CONFIG), tmp_path / "unlimited")

    monkeypatch.delenv(DUCKDB_MEMORY_LIMIT_ENV)
    monkeypatch.setattr(duckdb_target, "DEFAULT_DUCKDB_MEMORY_LIMIT", "1MB")  # far too little for this load
    with caplog.at_level(logging.WARNING, logger="posthog_insights"):
        _, limit, _ = load_with_the_cli_duckdb(emulators(clock=clock, **CONFIG), tmp_path / "grown")
    grown = [r.getMessage() for r in caplog.records if "loading again with" in r.getMessage()]
    assert grown[:2] == [
        "DuckDB ran out of its 1MB memory limit; loading again with 2MB",
        "DuckDB ran out of its 2MB memory limit; loading again with 4MB",
    ], grown
    assert limit not in ("1.0 MiB", "152.5 MiB"), limit  # the grown limit stays for the rest of the run
    warehouse = tmp_path / "grown" / "posthog-insights.duckdb"
    unlimited = read_warehouse(tmp_path / "unlimited" / "posthog-insights.duckdb")
    assert diff_warehouses(read_warehouse(warehouse), unlimited) == []
    assert set(duplicate_keys(warehouse).values()) == {0}


def test_a_limit_the_user_chose_is_never_raised(
    emulators: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "1MB")
    with pytest.raises(Exception, match="Out of Memory Error") as failure:
        load_with_the_cli_duckdb(emulators(clock=frozen_clock(), **CONFIG), tmp_path / "chosen")
    assert duckdb_target.is_out_of_memory(failure.value)
