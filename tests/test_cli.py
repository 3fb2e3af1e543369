"""The `posthog-insights run` and `backfill` commands as users run them: config, summary, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from posthog_insights.backfill import date_windows
from tests.conftest import TEST_KEY


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    ours = ("SOURCES__", "DESTINATION__", "POSTHOG_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    return subprocess.run(
        [sys.executable, "-m", "posthog_insights_cli.main", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _count(path: Path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return int(con.execute(f"SELECT COUNT(*) FROM posthog_insights.{table}").fetchone()[0])  # type: ignore[index]


def test_run_reads_dlt_env_config_and_prints_a_summary(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(insights=30, projects=(1, 2), error_share=0.0)
    env = {
        "SOURCES__POSTHOG_INSIGHTS__HOST": emulator.base_url,
        "SOURCES__POSTHOG_INSIGHTS__PROJECT_IDS": "1,2",
        "SOURCES__POSTHOG_INSIGHTS__PERSONAL_API_KEY": TEST_KEY,
        "SOURCES__POSTHOG_INSIGHTS__RATE_LIMIT": "off",
    }
    done = _cli(["run", "--pipelines-dir", str(tmp_path / "p")], tmp_path, env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "insights listed: 60" in out
    assert "429s met: 0" in out
    for table in ("insights", "insight_results", "trend_points", "dashboards", "dashboard_tiles"):
        assert table in out
    assert "(dashboards 2, list " in out  # a dashboards list per project, beside the insights' reads
    assert "project 1: listed 30 insights" in done.stderr  # progress while it runs
    assert "project 2: listed 3 dashboards" in done.stderr
    database = tmp_path / "posthog-insights.duckdb"  # named after the pipeline, not the dataset
    assert _count(database, "insights") == 60


def test_run_reads_config_toml_and_key_env(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(insights=12, error_share=0.0)
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        "[sources.posthog_insights]\n"
        f'host = "{emulator.base_url}"\nproject_ids = [1]\nrefresh = "force_cache"\n'
    )
    database = tmp_path / "custom.duckdb"
    env = {"POSTHOG_PERSONAL_API_KEY": TEST_KEY, "DESTINATION__DUCKDB__CREDENTIALS": str(database)}
    done = _cli(["run", "--rate-limit", "off", "--pipelines-dir", str(tmp_path / "p")], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert emulator.stats.by_kind.get("retrieve", 0) == 0  # refresh came from config.toml
    assert _count(database, "insights") == 12


def test_exit_code_is_non_zero_when_a_project_cannot_be_fetched(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(insights=10, projects=(1,), forbidden_projects=(2,), error_share=0.0)
    env = {"POSTHOG_PERSONAL_API_KEY": TEST_KEY}
    args = ["run", "--host", emulator.base_url, "--project-id", "1", "--project-id", "2"]
    args += ["--rate-limit", "off"]
    done = _cli([*args, "--pipelines-dir", str(tmp_path / "p")], tmp_path, env)
    assert done.returncode == 1, done.stderr
    assert "NOT FETCHED: project 2" in done.stdout and "403" in done.stdout
    assert _count(tmp_path / "posthog-insights.duckdb", "insights") == 10  # project 1 still loaded


def test_duckdb_out_of_memory_names_the_setting_and_the_next_run_finishes(
    start_emulator: Any, tmp_path: Path
) -> None:
    emulator = start_emulator(insights=60, points=400, error_share=0.0)
    args = ["run", "--host", emulator.base_url, "--project-id", "1", "--rate-limit", "off"]
    args += ["--refresh", "force_cache", "--pipelines-dir", str(tmp_path / "p")]
    starved = {
        "POSTHOG_PERSONAL_API_KEY": TEST_KEY,
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "1MB"}',
    }
    done = _cli(args, tmp_path, starved)
    assert done.returncode == 3, done.stderr  # the run failed; nothing is lost
    last = done.stderr.strip().splitlines()[-1]
    assert "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG" in last and "memory limit" in last, last
    done = _cli(args, tmp_path, {"POSTHOG_PERSONAL_API_KEY": TEST_KEY})
    assert done.returncode == 0, done.stderr
    assert _count(tmp_path / "posthog-insights.duckdb", "insights") == 60
    assert _count(tmp_path / "posthog-insights.duckdb", "insight_results") == 60


def test_backfill_runs_as_a_command(start_emulator: Any, tmp_path: Path) -> None:
    """`backfill` as a command, end to end."""
    emulator = start_emulator(insights=5, error_share=0.0)
    args = ["backfill", "--host", emulator.base_url, "--project-id", "1", "--insight", "1"]
    args += ["--from", "2026-10-01", "--to", "2026-10-21", "--window", "week", "--rate-limit", "off"]
    done = _cli(
        [*args, "--pipelines-dir", str(tmp_path / "p")], tmp_path, {"POSTHOG_PERSONAL_API_KEY": TEST_KEY}
    )
    assert done.returncode == 0, done.stderr
    weeks = date_windows(date(2026, 10, 1), date(2026, 10, 21), "week")
    assert _count(tmp_path / "posthog-insights.duckdb", "insight_results") == len(weeks) == 4


def test_backfill_of_a_dashboard_runs_as_a_command(start_emulator: Any, tmp_path: Path) -> None:
    """`backfill --dashboard` as a command: no --insight needed; --kind narrows it."""
    emulator = start_emulator(insights=40, error_share=0.0)
    store = emulator.store
    dashboard = max(store.dashboard_ids(1), key=lambda d: len(store.dashboard(1, d)["_emulator"]["tiles"]))
    on_it = [i for _, i in store.dashboard(1, dashboard)["_emulator"]["tiles"]]
    kind = store.insight(1, on_it[0])["_emulator"]["kind"]
    of_kind = [i for i in on_it if store.insight(1, i)["_emulator"]["kind"] == kind]
    args = ["backfill", "--host", emulator.base_url, "--project-id", "1", "--dashboard", str(dashboard)]
    args += ["--kind", kind, "--from", "2026-10-01", "--to", "2026-10-21", "--window", "month"]
    args += ["--rate-limit", "off", "--pipelines-dir", str(tmp_path / "p")]
    done = _cli(args, tmp_path, {"POSTHOG_PERSONAL_API_KEY": TEST_KEY})
    assert done.returncode == 0, done.stderr
    assert _count(tmp_path / "posthog-insights.duckdb", "insight_results") == len(of_kind)


def test_backfill_with_neither_insight_nor_dashboard_is_one_line(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(insights=5)
    args = ["backfill", "--host", emulator.base_url, "--project-id", "1", "--from", "2026-10-01"]
    args += ["--to", "2026-10-21", "--pipelines-dir", str(tmp_path / "p")]
    done = _cli(args, tmp_path, {"POSTHOG_PERSONAL_API_KEY": TEST_KEY})
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("posthog-insights: error:")]
    assert errors == [
        "posthog-insights: error: insight: no insight given; pass --insight ID_OR_SHORT_ID, or --dashboard ID"
        " for every insight on a dashboard"
    ]
    assert emulator.stats.total == 0
