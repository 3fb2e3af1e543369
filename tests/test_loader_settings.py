"""The CLI's own DuckDB: its settings are dlt's, with defaults that dlt's configuration overrides."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from posthog_emulator import Emulator
from posthog_insights_cli.duckdb_target import DUCKDB_SETTINGS
from tests.conftest import load_with_the_cli_duckdb


def test_the_default_duckdb_is_capped_and_keeps_no_insertion_order(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", raising=False)
    result, limit, keeps_order = load_with_the_cli_duckdb(start_emulator(), tmp_path)
    assert result.row_counts.get("insight_results", 0) > 0
    assert DUCKDB_SETTINGS["memory_limit"] == "128MB" and limit == "122.0 MiB"  # as DuckDB shows it
    assert keeps_order is False
    assert (tmp_path / "posthog-insights.duckdb").exists()


def test_dlts_own_configuration_overrides_the_defaults(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
        json.dumps({"memory_limit": "2GB", "preserve_insertion_order": True}),
    )
    _, limit, keeps_order = load_with_the_cli_duckdb(start_emulator(), tmp_path)
    assert limit == "1.8 GiB" and keeps_order is True


def test_a_limit_too_small_fails_with_the_setting_named(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from posthog_insights_cli.main import _duckdb_memory_message

    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", json.dumps({"memory_limit": "1MB"}))
    with pytest.raises(Exception, match="Out of Memory Error") as failure:
        load_with_the_cli_duckdb(start_emulator(insights=60, points=400), tmp_path)
    message = _duckdb_memory_message(failure.value)
    assert message is not None and "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG" in message
