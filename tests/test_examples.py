"""The scheduling examples: the GitHub Actions workflow parses and names only real flags and settings; the
Airflow DAG compiles, imports only what exists, and runs end to end on a stand-in for Airflow.

Airflow itself is not installed (it is large and pins half the world). The stand-in below provides the few
classes dlt's `airflow_helper` and the DAG touch, including `Variable`, so the run reads its secrets from a
`dlt_secrets_toml` variable through dlt's own Airflow provider, the way it would on a real worker. It runs
in a child process (this file run as a script) so that the fake modules and the environment changes
`PipelineTasksGroup` makes never reach the other tests.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import py_compile
import re
import shlex
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "github-actions" / "posthog-insights.yml"
DAG_FILE = ROOT / "examples" / "airflow" / "posthog_insights_dag.py"


# --- GitHub Actions ------------------------------------------------------------------------------------


def _source_settings() -> set[str]:
    from posthog_insights import posthog_insights_source

    # the decorated source keeps the original function's signature
    return set(inspect.signature(posthog_insights_source).parameters) - {"report"}


def test_github_workflow_parses_and_uses_real_flags_and_settings() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert crons and all(len(cron.split()) == 5 for cron in crons)
    assert workflow["concurrency"]["cancel-in-progress"] is False

    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = [step for step in steps if "posthog-insights run" in step.get("run", "")]
    assert len(runs) == 1
    step = runs[0]

    # every flag of the command is one the CLI accepts
    from posthog_insights_cli.main import build_parser

    line = next(line for line in step["run"].splitlines() if line.strip().startswith("posthog-insights run"))
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert args.command == "run"

    # secrets come from the secret store, under the names dlt reads
    env: dict[str, str] = step["env"]
    settings = _source_settings()
    for name, value in env.items():
        section, _, key = name.partition("__")
        if section == "SOURCES":
            source, _, setting = key.partition("__")
            assert source == "POSTHOG_INSIGHTS" and setting.lower() in settings, name
        else:
            assert section == "DESTINATION", name
        assert re.fullmatch(r"\$\{\{ (secrets|vars)\.[A-Z_]+ \}\}", value), (name, value)
    assert env["SOURCES__POSTHOG_INSIGHTS__PERSONAL_API_KEY"].startswith("${{ secrets.")
    assert env[f"DESTINATION__{args.destination.upper()}__CREDENTIALS"].startswith("${{ secrets.")
    assert "phx_" not in WORKFLOW.read_text().replace("phx_...", "")


# --- Airflow: static ---------------------------------------------------------------------------------


def test_airflow_dag_compiles_and_imports_only_what_exists() -> None:
    py_compile.compile(str(DAG_FILE), doraise=True)
    tree = ast.parse(DAG_FILE.read_text())
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    ]
    ours = [(m, n) for m, n in imported if m.split(".")[0] in ("posthog_insights", "posthog_insights_cli")]
    assert ours, "the DAG should use the package"
    for module, name in ours:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"
    # dlt's helper cannot be imported without Airflow: read its source instead
    spec = importlib.util.find_spec("dlt.helpers.airflow_helper")
    assert spec is not None and spec.origin is not None
    helper = Path(spec.origin).read_text()
    for module, name in imported:
        if module == "dlt.helpers.airflow_helper":
            assert re.search(rf"^class {name}\b", helper, re.M), name
    assert ("dlt.helpers.airflow_helper", "PipelineTasksGroup") in imported


# --- Airflow: a run on a stand-in ----------------------------------------------------------------------


def test_airflow_dag_runs_on_a_stand_in_airflow(start_emulator: Any, tmp_path: Path) -> None:
    emulator = start_emulator(insights=25, error_share=0.0)
    dags = tmp_path / "dags"
    (dags / ".dlt").mkdir(parents=True)
    # settings where the DAG's docstring says: .dlt/config.toml in the dags folder
    (dags / ".dlt" / "config.toml").write_text(
        "[sources.posthog_insights]\n"
        f'host = "{emulator.base_url}"\n'
        "project_ids = [1]\n"
        'refresh = "force_cache"\n'
        'rate_limit = "off"\n'
    )
    warehouse = tmp_path / "warehouse.duckdb"
    # secrets where it says: the Airflow Variable dlt_secrets_toml
    variables = {
        "dlt_secrets_toml": (
            "[sources.posthog_insights]\n"
            f'personal_api_key = "{emulator.api_key}"\n'
            "[destination.duckdb]\n"
            f'credentials = "{warehouse}"\n'
        )
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "DLT_"))}
    env.update(POSTHOG_INSIGHTS_DESTINATION="duckdb", POSTHOG_PERSONAL_API_KEY="")
    done = subprocess.run(
        [sys.executable, __file__, str(DAG_FILE), str(dags), json.dumps(variables)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["tasks"] == ["posthog_insights.posthog_insights", "latest_views"]
    assert report["edges"] == [["posthog_insights.posthog_insights", "latest_views"]]
    assert "insight_results_latest" in report["views"] and len(report["views"]) >= 5

    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET search_path = 'posthog_insights'")
        assert con.execute("SELECT COUNT(*) FROM insights").fetchone() == (25,)
        latest = con.execute("SELECT COUNT(*) FROM insight_results_latest").fetchone()
        assert latest == (25,)


# --- the stand-in (runs in the child process) -----------------------------------------------------------


def _install_stand_in_airflow(dags_folder: str, variables: dict[str, str]) -> list[Any]:
    """Fake `airflow` modules with just what dlt's helper and the DAG use; returns the operator registry."""
    registry: list[Any] = []
    groups: list[Any] = []

    class BaseOperator:
        def __init__(self, task_id: str, **kwargs: Any) -> None:
            prefix = f"{groups[-1].group_id}." if groups else ""
            self.task_id = prefix + task_id
            self.kwargs = kwargs
            self.downstream: list[BaseOperator] = []
            registry.append(self)

        def __rshift__(self, other: BaseOperator) -> BaseOperator:
            self.downstream.append(other)
            return other

    class PythonOperator(BaseOperator):
        def __init__(self, task_id: str, python_callable: Callable[[], Any], **kwargs: Any) -> None:
            super().__init__(task_id, **kwargs)
            self.python_callable = python_callable

    class EmptyOperator(BaseOperator):
        pass

    class TaskGroup:
        def __init__(self, group_id: str, **kwargs: Any) -> None:
            self.group_id = group_id

        def __enter__(self) -> TaskGroup:
            groups.append(self)
            return self

        def __exit__(self, *exc: object) -> None:
            groups.pop()

    class Variable:
        @staticmethod
        def get(key: str, default_var: Any = None) -> Any:
            return variables.get(key, default_var)

    class Conf:
        def get(self, section: str, key: str) -> str:
            assert (section, key) == ("core", "dags_folder")
            return dags_folder

    def dag(**kwargs: Any) -> Callable[[Callable[[], None]], Callable[[], None]]:
        def decorate(build: Callable[[], None]) -> Callable[[], None]:
            return build

        return decorate

    def get_current_context() -> dict[str, Any]:
        return {"ti": types.SimpleNamespace()}

    modules = {
        "airflow": {},
        "airflow.configuration": {"conf": Conf()},
        "airflow.models": {"BaseOperator": BaseOperator, "TaskInstance": object, "Variable": Variable},
        "airflow.utils": {},
        "airflow.utils.task_group": {"TaskGroup": TaskGroup},
        "airflow.operators": {},
        "airflow.operators.empty": {"EmptyOperator": EmptyOperator},
        "airflow.operators.python": {
            "PythonOperator": PythonOperator,
            "get_current_context": get_current_context,
        },
        "airflow.decorators": {"dag": dag},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        module.__path__ = []  # type: ignore[attr-defined]
        sys.modules[name] = module

    import importlib.metadata

    real_version = importlib.metadata.version

    def version(name: str) -> str:
        return "2.10.5" if name == "apache-airflow" else real_version(name)

    importlib.metadata.version = version
    return registry


def _run_dag(dag_file: str, dags_folder: str, variables_json: str) -> None:
    """Parse the DAG as the scheduler would, then run its tasks in order as the workers would."""
    registry = _install_stand_in_airflow(dags_folder, json.loads(variables_json))
    spec = importlib.util.spec_from_file_location("posthog_insights_dag", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = {task.task_id: task.python_callable() for task in registry}
    report = {
        "tasks": [task.task_id for task in registry],
        "edges": [[task.task_id, d.task_id] for task in registry for d in task.downstream],
        "views": results["latest_views"],
    }
    print(json.dumps(report))


if __name__ == "__main__":
    _run_dag(*sys.argv[1:4])
