"""The CLI's own DuckDB: capped memory, no insertion order, settable through one environment variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from posthog_emulator import Emulator
from posthog_insights_cli.loader import DUCKDB_MEMORY_LIMIT_ENV, duckdb_settings, load
from tests.conftest import TEST_KEY


def _settings_after_a_load(emulator: Emulator, root: Path) -> tuple[str, bool]:
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
    monkeypatch.chdir(tmp_path)  # the default DuckDB file lands in the working directory
    monkeypatch.delenv(DUCKDB_MEMORY_LIMIT_ENV, raising=False)
    limit, keeps_order = _settings_after_a_load(start_emulator(), tmp_path)
    assert limit == "244.1 MiB"  # 256MB as DuckDB shows it
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
