"""The CLI's own DuckDB: capped memory that grows when a load needs it, no insertion order, settable
through one environment variable."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from posthog_emulator import Emulator
from posthog_insights_cli import duckdb_target
from posthog_insights_cli.loader import DUCKDB_MEMORY_LIMIT_ENV, duckdb_settings, load
from tests.conftest import TEST_KEY


def _settings_after_a_load(emulator: Emulator, root: Path) -> tuple[str, bool]:
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)  # the default DuckDB file lands in the working directory
    result = load(
        host=emulator.base_url,
        project_ids=[1],
        personal_api_key=TEST_KEY,
        rate_limit="off",
        pipelines_dir=str(root / "pipelines"),
        progress=None,
    )
    assert result.pipeline is not None
    assert result.row_counts.get("insight_results", 0) > 0
    with result.pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
        )
    assert rows is not None
    return str(rows[0][0]), bool(rows[0][1])


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
