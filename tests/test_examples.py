"""The scheduling examples, statically: the GitHub Actions workflow passes GitHub's workflow schema and
names only real flags and settings; the Airflow DAG and the Dagster definitions compile, import only what
exists, and keep the key out of the code; the orchestrator suite stays out of this run and in CI's.

The examples also run for real, each on its orchestrator: `make orchestrators` (orchestrators/, in
virtual environments of their own, which CI runs after this suite). Airflow and Dagster are not installed
here: they are large and pin half the world.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import py_compile
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "github-actions" / "posthog-insights.yml"
DAG_FILE = ROOT / "examples" / "airflow" / "posthog_insights_dag.py"
DAGSTER_FILE = ROOT / "examples" / "dagster" / "definitions.py"
REQUIREMENTS = [
    ROOT / "examples" / "airflow" / "requirements.txt",
    ROOT / "examples" / "dagster" / "requirements.txt",
    ROOT / "orchestrators" / "requirements.txt",
]
OURS = ("posthog_insights", "posthog_insights_cli", "posthog_emulator")


def _imports(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    ]


def _check_our_imports(path: Path) -> None:
    ours = [(m, n) for m, n in _imports(path) if m.split(".")[0] in OURS]
    assert ours, f"{path.name} should use the package"
    for module, name in ours:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def _no_key_in(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r"phx_[A-Za-z0-9]", text), f"something like a key in {path.name}"


# --- GitHub Actions ------------------------------------------------------------------------------------


def _source_settings() -> set[str]:
    from posthog_insights import posthog_insights_source

    # the decorated source keeps the original function's signature
    return set(inspect.signature(posthog_insights_source).parameters) - {"report"}


def _check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against GitHub's workflow schema (SchemaStore's, vendored in the package: no
    network): keys, types and required fields of the workflow, its jobs and steps."""
    found = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert found, "check-jsonschema is missing: it is in the dev extra (make venv)"
    return subprocess.run(
        [found, "--builtin-schema", "vendor.github-workflows", "--color", "never", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_github_workflow_passes_githubs_workflow_schema() -> None:
    done = _check_workflow(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a timeout that is not a number, and a step with neither run nor uses."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        WORKFLOW.read_text()
        .replace("timeout-minutes: 55", "timeout-minutes: soon")
        .replace("- uses: actions/checkout@v5", "- usse: actions/checkout@v5")
    )
    done = _check_workflow(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "timeout-minutes" in done.stdout


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


# --- Airflow -------------------------------------------------------------------------------------------


def test_airflow_dag_compiles_and_imports_only_what_exists() -> None:
    py_compile.compile(str(DAG_FILE), doraise=True)
    _check_our_imports(DAG_FILE)
    imported = _imports(DAG_FILE)
    # dlt's helper cannot be imported without Airflow: read its source instead
    spec = importlib.util.find_spec("dlt.helpers.airflow_helper")
    assert spec is not None and spec.origin is not None
    helper = Path(spec.origin).read_text()
    for module, name in imported:
        if module == "dlt.helpers.airflow_helper":
            assert re.search(rf"^class {name}\b", helper, re.M), name
    assert ("dlt.helpers.airflow_helper", "PipelineTasksGroup") in imported
    # Airflow 3's authoring interface, none of the paths Airflow 3 deprecated
    airflow = [m for m, _ in imported if m.split(".")[0] == "airflow"]
    assert airflow and all(m == "airflow.sdk" for m in airflow), airflow
    _no_key_in(DAG_FILE)


# --- Dagster -------------------------------------------------------------------------------------------


def test_dagster_definitions_compile_and_take_the_key_from_the_environment() -> None:
    py_compile.compile(str(DAGSTER_FILE), doraise=True)
    _check_our_imports(DAGSTER_FILE)
    imported = _imports(DAGSTER_FILE)
    assert ("dagster_dlt", "dlt_assets") in imported and ("dagster_dlt", "DagsterDltResource") in imported
    # the key is given to the resource only as dg.EnvVar(...), never as a value
    tree = ast.parse(DAGSTER_FILE.read_text())
    given = [
        kw.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg == "personal_api_key"
    ]
    env_vars = [
        v
        for v in given
        if isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "EnvVar"
    ]
    assert len(env_vars) == 1, "the resource's key should come from dg.EnvVar"
    # the rest: the per-run source takes the resource's field, the import-time one a placeholder
    others = [v for v in given if v not in env_vars]
    assert all(
        (isinstance(v, ast.Attribute) and v.attr == "personal_api_key")
        or (isinstance(v, ast.Constant) and v.value == "unused")
        for v in others
    ), [ast.dump(v) for v in others]
    _no_key_in(DAGSTER_FILE)


# --- the orchestrator suite: pinned, out of this run, in CI's -----------------------------------------


def test_orchestrator_requirements_are_pinned_to_ranges() -> None:
    for path in REQUIREMENTS:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        requirements = [Requirement(line) for line in lines if line]
        assert requirements, path
        for requirement in requirements:
            operators = {spec.operator for spec in requirement.specifier}
            assert ">=" in operators and "<" in operators, f"{path.name}: {requirement} needs a range"


def test_the_orchestrator_suite_is_not_collected_here_but_runs_in_ci() -> None:
    pytest_settings = (ROOT / "pyproject.toml").read_text().partition("[tool.pytest.ini_options]")[2]
    assert re.search(r'^testpaths = \["tests"\]$', pytest_settings, re.M)
    assert sorted(p.name for p in (ROOT / "orchestrators").glob("test_*.py")) == [
        "test_airflow.py",
        "test_dagster.py",
    ]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^orchestrators:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make orchestrators" in ci
