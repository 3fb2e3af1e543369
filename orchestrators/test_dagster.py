"""The Dagster example on real Dagster with dagster-dlt: its job materialised end to end against the emulator.

Runs in `.venv-dagster` (`make orchestrators-dagster`). The job runs through Dagster's own CLI on a real
instance (DAGSTER_HOME in a temp folder, SQLite storage, the multiprocess executor: each step in its own
process, importing `definitions.py` afresh with only the environment, as a deployed run does); the outcome
is read back from the instance's event log. The key reaches the run only through `dg.EnvVar`. A second
test loads the definitions in this process: one asset per table, and a subset that loads only its table.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import dagster as dg
import pytest
from conftest import (
    EXAMPLES,
    INSIGHTS,
    TABLES,
    assert_key_nowhere,
    check_warehouse,
    clean_env,
    relations,
    sql,
)

from posthog_emulator import Emulator

DEFINITIONS = EXAMPLES / "dagster" / "definitions.py"
DAGSTER = Path(sys.executable).with_name("dagster")
JOB = "posthog_insights_hourly"
VIEWS = dg.AssetKey("posthog_insights_latest_views")


def table_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(f"dlt_posthog_insights_{table}")  # dagster-dlt's default: dlt_<source>_<resource>


def settings(emulator: Emulator, root: Path) -> dict[str, str]:
    """What a deployment sets: the key and where to read for the `posthog` resource's EnvVars, the
    destination for dlt, and one setting of the source through dlt's own configuration."""
    home = root / "dagster-home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return {
        "DAGSTER_HOME": str(home),
        "POSTHOG_PERSONAL_API_KEY": emulator.api_key,
        "POSTHOG_HOST": emulator.base_url,
        "POSTHOG_PROJECT_IDS": "1",
        "SOURCES__POSTHOG_INSIGHTS__RATE_LIMIT": "off",  # the emulator has no rate limit; PostHog does
        "POSTHOG_INSIGHTS_DESTINATION": "duckdb",
        "DESTINATION__DUCKDB__CREDENTIALS": str(root / "warehouse.duckdb"),
        "DLT_DATA_DIR": str(root / "dlt"),  # dlt's local pipeline folders
    }


def dagster(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(DAGSTER), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"dagster {' '.join(args)}: {done.returncode}\n{done.stderr[-8000:]}"
    return done


def test_the_job_materialises_every_table_on_a_real_instance(emulator: Emulator, tmp_path: Path) -> None:
    env = clean_env(**settings(emulator, tmp_path))
    warehouse = Path(env["DESTINATION__DUCKDB__CREDENTIALS"])
    printed: list[str] = []
    for args in (
        ("definitions", "validate", "-f", str(DEFINITIONS)),
        ("job", "execute", "-f", str(DEFINITIONS), "-j", JOB),
    ):
        done = dagster(env, tmp_path, *args)
        printed += [done.stdout, done.stderr]

    check_warehouse(warehouse)

    home = Path(env["DAGSTER_HOME"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert [(r.job_name, r.status) for r in runs] == [(JOB, dg.DagsterRunStatus.SUCCESS)]
        run_id = runs[0].run_id
        materialized = {
            event.asset_key: event.materialization
            for event in (
                record.event_log_entry.dagster_event
                for record in instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ).records
            )
            if event is not None
        }
    # one asset per table, each materialised by the run, then the views after them
    assert {table_key(t) for t in TABLES} | {VIEWS} <= set(materialized), sorted(materialized)
    insights = materialized[table_key("insights")]
    assert insights is not None and insights.metadata["rows_loaded"].value == INSIGHTS
    views = materialized[VIEWS]
    assert views is not None and "insight_results_latest" in views.metadata["views"].value

    assert_key_nowhere(emulator.api_key, printed, [home, tmp_path / "dlt"])


def load_definitions(monkeypatch: pytest.MonkeyPatch, emulator: Emulator, root: Path) -> ModuleType:
    for name, value in clean_env(**settings(emulator, root)).items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("posthog_insights_dagster_definitions", DEFINITIONS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_asset_per_table_and_a_subset_loads_only_its_table(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_definitions(monkeypatch, emulator, tmp_path)
    defs: dg.Definitions = module.defs
    tables = module.posthog_insights_tables
    # exactly the tables the source loads, one asset each
    loaded = {r.name for r in module._TABLES.selected_resources.values()}
    assert set(TABLES) <= loaded
    assert set(tables.keys) == {table_key(t) for t in loaded}
    # the two resources that talk to PostHog load nothing, so they are no assets
    assert not {table_key("insight_listing"), table_key("insight_retrieval")} & set(tables.keys)
    assert defs.resolve_job_def(JOB) is not None
    # the key is configured as an environment variable, not as a value
    key_setting = defs.resources["posthog"].personal_api_key
    assert isinstance(key_setting, dg.EnvVar) and key_setting.env_var_name == "POSTHOG_PERSONAL_API_KEY"

    warehouse = tmp_path / "warehouse.duckdb"
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [tables],
            selection=[table_key("insights")],
            resources=defs.resources,
            instance=instance,
        )
    assert result.success
    assert [m.asset_key for m in result.get_asset_materialization_events()] == [table_key("insights")]
    assert sql(warehouse, "SELECT COUNT(*) FROM insights") == [(INSIGHTS,)]
    assert not set(TABLES[1:]) & set(relations(warehouse)), "a table outside the subset was loaded"
