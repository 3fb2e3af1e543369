"""The orchestrator suite's shared parts: the emulator, a clean environment, and the warehouse checks.

Each test file runs in its own orchestrator's virtual environment (Airflow and Dagster pin conflicting
versions of the same packages), which has this project installed too, so the emulator and DuckDB are
importable here. A skipped test fails the session: nothing in this suite may pass by not running.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from posthog_emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
INSIGHTS = 50
# The tables every run of the source loads from the emulator's seed (it has every kind of insight).
# More may come (e.g. `dashboards`); the checks below ask for these, not for exactly these.
TABLES = (
    "insights",
    "insight_results",
    "trend_points",
    "funnel_steps",
    "funnel_conversion_bins",
    "retention_cells",
    "path_edges",
    "sql_rows",
)
RESULT_TABLES = TABLES[1:]
# settings of ours that the tests' child processes must not inherit from the developer's shell
OWN_PREFIXES = ("SOURCES__", "DESTINATION__", "DLT_", "AIRFLOW", "DAGSTER", "POSTHOG_", "RUNTIME__")


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A PostHog emulator on 127.0.0.1 with a key made for this test (so logs can be searched for it)."""
    key = f"phx_{secrets.token_hex(16)}"
    config = EmulatorConfig(api_key=key, projects=(1,), insights=INSIGHTS, seed=7, error_share=0.0)
    with Emulator(config) as running:
        yield running


def clean_env(**settings: str) -> dict[str, str]:
    """The environment for an orchestrator's command: this one without our settings, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_PREFIXES)}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # tests reach 127.0.0.1 only
    env.update(settings)
    return env


def sql(warehouse: Path, query: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET search_path = 'posthog_insights'")
        return con.execute(query).fetchall()


def relations(warehouse: Path) -> dict[str, str]:
    """Table and view names of the dataset, with their type (BASE TABLE or VIEW)."""
    rows = sql(
        warehouse,
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_schema = 'posthog_insights'",
    )
    return {str(name): str(kind) for name, kind in rows}


def check_warehouse(warehouse: Path) -> dict[str, int]:
    """What one full load of the emulator must leave: every table with rows, an `ok` result for every
    insight, and the `_latest` views over them. Returns the row count of each table."""
    found = relations(warehouse)
    missing = [t for t in TABLES if found.get(t) != "BASE TABLE"]
    assert not missing, f"tables not loaded: {missing}; found {sorted(found)}"
    counts = {t: int(sql(warehouse, f"SELECT COUNT(*) FROM {t}")[0][0]) for t in TABLES}
    assert all(n > 0 for n in counts.values()), counts
    assert counts["insights"] == INSIGHTS

    without = sql(
        warehouse,
        "SELECT COUNT(*) FROM insights i WHERE NOT EXISTS (SELECT 1 FROM insight_results r "
        "WHERE r.project_id = i.project_id AND r.insight_id = i.id)",
    )
    assert without == [(0,)], "insights without a result row"
    assert sql(warehouse, "SELECT DISTINCT status FROM insight_results") == [("ok",)]

    views = [f"{t}_latest" for t in RESULT_TABLES]
    assert all(found.get(v) == "VIEW" for v in views), sorted(found)
    assert sql(warehouse, "SELECT COUNT(*) FROM insight_results_latest") == [(INSIGHTS,)]
    assert sql(warehouse, "SELECT COUNT(*) FROM trend_points_latest")[0][0] > 0
    return counts


def assert_key_nowhere(key: str, texts: list[str], folders: list[Path]) -> None:
    """The key appears in no output and in no file the orchestrator wrote (logs, its database)."""
    assert key, "no key to look for"
    for text in texts:
        assert key not in text, "the key was printed"
    needle = key.encode()
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"the key was written to {path}"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A skipped test, or none at all, fails the run: these tests exist to prove the examples work."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats = getattr(reporter, "stats", {}) if reporter is not None else {}
    if stats.get("skipped") or stats.get("xfailed") or stats.get("xpassed"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif exitstatus == pytest.ExitCode.OK and not stats.get("passed"):
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
