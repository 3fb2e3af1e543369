"""End-to-end runs over HTTP: ours (`posthog_insights_cli.load`) and the baseline a user would write from
dlt's documentation (`rest_api_source`: list with an offset paginator, then GET every insight).

Both run in this process against an emulator in another one, each into its own DuckDB file, and both are
timed from the start of the run to loaded (every package: extract, normalize, load). Requests are counted by
the server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt

from benchmarks.emulator import Counters, EmulatorProcess


@dataclass(frozen=True)
class RunFigures:
    seconds: float
    counters: Counters
    row_counts: dict[str, int] = field(default_factory=dict)
    client_requests: dict[str, Any] = field(default_factory=dict)  # ours: RunReport.requests
    insights_retrieved: int = 0  # baseline: distinct insights it GETs (its list order is not stable)
    complete: bool = True
    note: str = ""
    steps: dict[str, float] = field(default_factory=dict)  # seconds per dlt step, summed over packages
    packages: int = 1  # load packages the run was cut into (ours: checkpoints)
    final_load_s: float = 0.0  # ours: the last package's normalize and load, which no pacing can overlap

    @property
    def rows(self) -> int:
        return sum(self.row_counts.values())


def make_pipeline(workdir: Path, name: str, *, ours: bool) -> dlt.Pipeline:
    """A pipeline whose state and DuckDB file live in `workdir` (the same name reopens the same state).

    `ours` opens DuckDB with the CLI's settings (posthog_insights_cli.loader.duckdb_destination); the
    baselines keep DuckDB's defaults, as a user following dlt's documentation would.
    """
    from posthog_insights_cli.loader import duckdb_destination

    workdir.mkdir(parents=True, exist_ok=True)
    path = str(workdir / f"{name.replace('_', '-')}.duckdb")
    pipeline: dlt.Pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=duckdb_destination(path) if ours else dlt.destinations.duckdb(path),
        dataset_name="bench",
        pipelines_dir=str(workdir / "pipelines"),
    )
    return pipeline


def _row_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    trace = pipeline.last_trace
    if trace is None or trace.last_normalize_info is None:
        return {}
    counts = trace.last_normalize_info.row_counts
    return {table: rows for table, rows in counts.items() if not table.startswith("_dlt")}


def _steps(pipeline: dlt.Pipeline) -> dict[str, float]:
    trace = pipeline.last_trace
    if trace is None:
        return {}
    out: dict[str, float] = {}
    for step in trace.steps:
        if step.step in ("extract", "normalize", "load") and step.finished_at is not None:
            out[step.step] = out.get(step.step, 0.0) + (step.finished_at - step.started_at).total_seconds()
    return out


def run_ours(
    emulator: EmulatorProcess,
    workdir: Path,
    name: str,
    *,
    refresh: str = "blocking",
    rate_limit: str = "off",
    **source_args: Any,
) -> RunFigures:
    from posthog_insights_cli.loader import load

    pipeline = make_pipeline(workdir, name, ours=True)
    before = emulator.stats()
    started = time.perf_counter()
    result = load(
        pipeline=pipeline,
        host=emulator.base_url,
        project_ids=[1],
        personal_api_key=emulator.api_key,
        refresh=refresh,
        rate_limit=rate_limit,
        **source_args,
    )
    seconds = time.perf_counter() - started
    counters = Counters.between(before, emulator.stats())
    report = result.report
    note = "" if report.complete else f"incomplete: {report.stopped_early or report.unfetched[:3]}"
    return RunFigures(
        seconds=seconds,
        counters=counters,
        row_counts=dict(result.row_counts),
        client_requests=dict(report.requests),
        insights_retrieved=int(report.retrieves_planned),
        complete=report.complete,
        note=note,
        steps=result.steps,
        packages=result.packages,
        final_load_s=_final_load_s(result.pipeline),
    )


def _final_load_s(pipeline: Any) -> float:
    trace = pipeline.last_trace if pipeline is not None else None
    steps = trace.steps if trace is not None else []
    return sum(
        (step.finished_at - step.started_at).total_seconds()
        for step in steps
        if step.step in ("normalize", "load") and step.finished_at and step.started_at
    )


def baseline_config(base_url: str, api_key: str, refresh: str, project_id: int = 1) -> dict[str, Any]:
    """What dlt's REST API docs lead to: an offset paginator over the list, a dependent GET per item.

    `total_path="count"` is the one setting the docs' default (`total`) cannot guess for PostHog's list.
    Everything else is left at dlt's defaults (sequential dependent resource, append, requests' retries).
    """
    return {
        "client": {
            "base_url": f"{base_url}/api/projects/{project_id}/",
            "auth": {"type": "bearer", "token": api_key},
        },
        "resources": [
            {
                "name": "insights",
                "endpoint": {
                    "path": "insights/",
                    "data_selector": "results",
                    "paginator": {"type": "offset", "limit": 100, "total_path": "count"},
                },
            },
            {
                "name": "insight_details",
                "endpoint": {
                    "path": "insights/{resources.insights.id}/",
                    "params": {"refresh": refresh},
                },
            },
        ],
    }


def run_baseline(
    emulator: EmulatorProcess, workdir: Path, name: str, *, refresh: str = "blocking"
) -> RunFigures:
    from dlt.sources.rest_api import rest_api_source

    pipeline = make_pipeline(workdir, name, ours=False)
    source = rest_api_source(baseline_config(emulator.base_url, emulator.api_key, refresh))  # type: ignore[arg-type]
    before = emulator.stats()
    started = time.perf_counter()
    note = ""
    try:
        pipeline.run(source)
    except Exception as exc:  # the figure is what it spent; a run that gives up still spent it
        note = f"failed: {type(exc).__name__}"
    seconds = time.perf_counter() - started
    counters = Counters.between(before, emulator.stats())
    distinct = 0
    if not note:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("insight_details")
            rows = client.execute_sql(f"SELECT COUNT(DISTINCT id) FROM {table}") or [(0,)]
        distinct = int(rows[0][0])
    return RunFigures(
        seconds=seconds,
        counters=counters,
        row_counts=_row_counts(pipeline),
        insights_retrieved=distinct,
        complete=not note,
        note=note,
        steps=_steps(pipeline),
    )
