"""Shared fixtures: an emulator on 127.0.0.1 and a loader into a DuckDB file in a temp folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from posthog_emulator import Emulator, EmulatorConfig
from posthog_insights import tables
from posthog_insights_cli.loader import LoadResult, load

TEST_KEY = "phx_test_key_0123456789"

# Tests reach 127.0.0.1 only: dlt's usage telemetry (on by default) stays off here and in every child
# process a test starts.
os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"


def load_with_the_cli_duckdb(emulator: Emulator, root: Path) -> tuple[LoadResult, str, bool]:
    """One run into root/posthog-insights.duckdb, the CLI's own DuckDB, with its settings; returns the
    result and DuckDB's memory limit and insertion-order setting after it."""
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)  # the CLI's DuckDB file lands in the working directory
    result = load(
        host=emulator.base_url,
        project_ids=[1],
        personal_api_key=emulator.config.api_key,
        rate_limit="off",
        pipelines_dir=str(root / "pipelines"),
        progress=None,
    )
    assert result.pipeline is not None
    with result.pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT current_setting('memory_limit'), current_setting('preserve_insertion_order')"
        )
    assert rows is not None
    return result, str(rows[0][0]), bool(rows[0][1])


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(**overrides: Any) -> Emulator:
        config: dict[str, Any] = {"api_key": TEST_KEY, "projects": (1,), "insights": 40, "seed": 3}
        config.update(overrides)
        emulator = Emulator(EmulatorConfig(**config))
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


class Warehouse:
    """A pipeline into its own DuckDB file, and SQL over it."""

    def __init__(self, root: Path, name: str = "t") -> None:
        self.root = root
        self.path = root / f"{name}-warehouse.duckdb"
        self.pipelines_dir = root / "pipelines"
        self.pipeline_name = f"pi_{name}"

    def pipeline(self) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=self.pipeline_name,
            destination=dlt.destinations.duckdb(str(self.path)),
            dataset_name="posthog_insights",
            pipelines_dir=str(self.pipelines_dir),
        )

    def load(self, emulator: Emulator, **source_args: Any) -> LoadResult:
        args: dict[str, Any] = {
            "host": emulator.base_url,
            "project_ids": [1],
            "personal_api_key": TEST_KEY,
            "rate_limit": "off",
            "retry_backoff_s": 0.01,
        }
        args.update(source_args)
        return load(pipeline=self.pipeline(), **args)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("SET search_path = 'posthog_insights'")
            return con.execute(query, list(params)).fetchall()

    def count(self, table: str) -> int:
        return int(self.sql(f"SELECT COUNT(*) FROM {table}")[0][0])

    def tables(self) -> set[str]:
        rows = self.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'posthog_insights'"
        )
        return {r[0] for r in rows}


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path)


def needing_refresh(emulator: Emulator) -> int:
    store = emulator.store
    return sum(1 for i in store.insight_ids(1) if store.insight(1, i)["_emulator"]["cache_state"] != "fresh")


def loaded_shape(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """What a run loaded, insight by insight: each one's latest status, and its rows per tidy table
    (the numbers themselves depend on when the emulator computed them)."""
    shape = {"status": sorted(wh.sql("SELECT insight_id, status FROM insight_results_latest"))}
    for table in tables.TIDY:
        if table in wh.tables():
            shape[table] = sorted(wh.sql(f"SELECT insight_id, COUNT(*) FROM {table}_latest GROUP BY 1"))
    return shape


def half_stale_emulator(**config: Any) -> Emulator:
    """A started emulator of 600 insights (seed 5), half of them fresh, a quarter stale, a quarter
    missing, none failing; `config` changes any of it. The caller stops it."""
    base: dict[str, Any] = {
        "api_key": TEST_KEY,
        "insights": 600,
        "seed": 5,
        "error_share": 0.0,
        "fresh_share": 0.5,
        "stale_share": 0.25,
    }
    emulator = Emulator(EmulatorConfig(**{**base, **config}))
    emulator.start()
    return emulator
