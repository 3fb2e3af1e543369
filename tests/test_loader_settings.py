"""The CLI's own DuckDB: capped memory that grows when a load needs it, no insertion order, settable
through one environment variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from posthog_emulator import Emulator
from posthog_insights_cli import duckdb_target
from posthog_insights_cli.loader import DUCKDB_MEMORY_LIMIT_ENV, duckdb_settings
from tests.conftest import load_with_the_cli_duckdb


def _settings_after_a_load(emulator: Emulator, root: Path) -> tuple[str, bool]:
    result, limit, keeps_order = load_with_the_cli_duckdb(emulator, root)
    assert result.row_counts.get("insight_results", 0) > 0
    return limit, keeps_order


def test_the_default_duckdb_is_capped(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DUCKDB_MEMORY_LIMIT_ENV, raising=False)
    limit, keeps_order = _settings_after_a_load(start_emulator(), tmp_path)
    assert limit == "152.5 MiB"  # 160MB as DuckDB shows it
    assert keeps_order is False
    assert (tmp_path / "posthog-insights.duckdb").exists()


def test_the_memory_limit_follows_the_environment(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "1GB")
    limit, _ = _settings_after_a_load(start_emulator(), tmp_path)
    assert limit == "953.6 MiB"


@pytest.mark.parametrize("word", ["off", "OFF", " "])
def test_off_leaves_duckdb_its_own_default(word: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, word)
    assert "memory_limit" not in duckdb_settings()


def test_a_limit_the_user_chose_is_never_raised(
    start_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DUCKDB_MEMORY_LIMIT_ENV, "1MB")
    with pytest.raises(Exception, match="Out of Memory Error") as failure:
        _settings_after_a_load(start_emulator(insights=60, points=400), tmp_path)
    assert duckdb_target.is_out_of_memory(failure.value)
