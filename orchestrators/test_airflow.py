"""The Airflow example on real Airflow 3: `airflow dags test` of the DAG, end to end against the emulator.

Runs in `.venv-airflow` (`make orchestrators-airflow`). Airflow's own commands do the work: a metadata
database on SQLite (`airflow db migrate`), the DAG parsed from a dags folder laid out as the DAG's
docstring says (the DAG file as shipped, `.dlt/config.toml` beside it with the settings), the key only in
the Airflow Variable `dlt_secrets_toml` (given as AIRFLOW_VAR_DLT_SECRETS_TOML, one of Airflow's own ways
to set a Variable), and the run's outcome read back from Airflow's database. Two runs: the second starts
from a wiped local pipeline folder, as on a fresh worker, and restores the state from the destination.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import EXAMPLES, INSIGHTS, assert_key_nowhere, check_warehouse, clean_env, sql

from posthog_emulator import Emulator

DAG_FILE = EXAMPLES / "airflow" / "posthog_insights_dag.py"
DAG_ID = "posthog_insights_hourly"
AIRFLOW = Path(sys.executable).with_name("airflow")


class Airflow:
    """Airflow's CLI with one AIRFLOW_HOME; keeps everything it printed."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.printed: list[str] = []

    def __call__(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(AIRFLOW), *args],
            env=self.env,
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.printed += [done.stdout, done.stderr]
        assert done.returncode == 0, f"airflow {' '.join(args)}: {done.returncode}\n{done.stderr[-8000:]}"
        return done.stdout

    def json(self, *args: str) -> Any:
        out = self(*args, "-o", "json")
        # the JSON document is the last line; Airflow may log before it
        return json.loads(out.strip().splitlines()[-1])


def test_the_dag_runs_end_to_end_on_real_airflow(emulator: Emulator, tmp_path: Path) -> None:
    home = tmp_path / "airflow-home"
    dags = tmp_path / "dags"
    (dags / ".dlt").mkdir(parents=True)
    home.mkdir()
    shutil.copy2(DAG_FILE, dags / DAG_FILE.name)
    # settings where the DAG's docstring puts them: .dlt/config.toml in the dags folder
    (dags / ".dlt" / "config.toml").write_text(
        "[sources.posthog_insights]\n"
        f'host = "{emulator.base_url}"\n'
        "project_ids = [1]\n"
        'refresh = "blocking"\n'
        "max_requests = 1100\n"
        'rate_limit = "off"  # the emulator has no rate limit; PostHog does\n'
    )
    warehouse = tmp_path / "warehouse.duckdb"
    work = tmp_path / "worker-tmp"  # where dlt's helper makes the pipeline's working folders
    work.mkdir()
    airflow = Airflow(
        clean_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
            # the secret where the docstring puts it: the Airflow Variable dlt_secrets_toml
            AIRFLOW_VAR_DLT_SECRETS_TOML=(
                f'[sources.posthog_insights]\npersonal_api_key = "{emulator.api_key}"\n'
            ),
            POSTHOG_INSIGHTS_DESTINATION="duckdb",
            DESTINATION__DUCKDB__CREDENTIALS=str(warehouse),
            TMPDIR=str(work),
        ),
        cwd=tmp_path,
    )

    airflow("db", "migrate")
    airflow("dags", "reserialize")  # parse the dags folder as Airflow's DAG processor does
    assert airflow.json("dags", "list-import-errors") == []
    listed = airflow.json("dags", "list")
    assert [d["dag_id"] for d in listed] == [DAG_ID]

    airflow("dags", "test", DAG_ID, timeout=600)
    runs = airflow.json("dags", "list-runs", DAG_ID)
    assert [r["state"] for r in runs] == ["success"], runs
    states = airflow.json("tasks", "states-for-dag-run", DAG_ID, runs[0]["run_id"])
    assert {s["task_id"]: s["state"] for s in states} == {
        "posthog_insights.posthog_insights": "success",
        "latest_views": "success",
    }, states

    first = check_warehouse(warehouse)

    # The next run, on a fresh worker and with the settings changed to compute every insight again
    # (`force_blocking`). dlt's helper wiped the first run's local pipeline folder: the state comes back
    # from the destination, the merge keys keep `insights` free of duplicates, and the new snapshots add
    # result rows while the `_latest` views still show one result per insight.
    config = dags / ".dlt" / "config.toml"
    config.write_text(config.read_text().replace('"blocking"', '"force_blocking"'))
    airflow("dags", "test", DAG_ID, timeout=600)
    runs = airflow.json("dags", "list-runs", DAG_ID)
    assert sorted(r["state"] for r in runs) == ["success", "success"], runs
    second = check_warehouse(warehouse)
    assert second["insights"] == first["insights"] == INSIGHTS
    assert second["insight_results"] > first["insight_results"], (first, second)
    loads = sql(warehouse, "SELECT status, COUNT(*) FROM _dlt_loads GROUP BY status")
    assert loads == [(0, 2)], loads
    # dlt's helper wiped each task's working folder: what is left are the empty pipelines that parsing the
    # DAG creates (no schema, no state of a run, no load package)
    left = [p for p in work.rglob("*") if p.is_file()]
    assert {p.name for p in left} <= {"state.json"}, left
    assert all(json.loads(p.read_text())["default_schema_name"] is None for p in left), left

    assert_key_nowhere(emulator.api_key, airflow.printed, [home, dags, work])
