"""`load(...)`: one run of the source into a destination, with the `_latest` views refreshed.

The Python API beside the CLI: analysts and orchestrators call this, the CLI only parses flags into it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from posthog_insights import RunReport, posthog_insights_backfill, posthog_insights_source
from posthog_insights.recovery import dedupe_resumed_packages
from posthog_insights.views import create_latest_views

DEFAULT_PIPELINE = "posthog_insights"
DEFAULT_DATASET = "posthog_insights"
# The source cuts its own batches (recorder.py: 50k tidy rows, or 8 MiB of raw results) and yields them as
# Arrow tables: dlt's extract buffer on top (5,000 rows by default) held ~350 MB of raw results at 10,000
# insights x 1,000 points. With one item, each batch goes to its parquet file as it comes.
EXTRACT_CONFIG: dict[str, Any] = {"sources.data_writer.buffer_max_items": 1}
# One DuckDB file takes one writer at a time: dlt's parallel load jobs (20 by default) only made DuckDB run
# several big inserts at once, each with its own buffers (peak 790-875 MiB at 10,000 x 1,000 insights x
# points against 703-729 MiB one job at a time). The cost: ~0.4 s more per load of many small tables.
DUCKDB_LOAD_CONFIG: dict[str, Any] = {"load.workers": 1}
DUCKDB_MEMORY_LIMIT_ENV = "POSTHOG_INSIGHTS_DUCKDB_MEMORY_LIMIT"
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"


def duckdb_path(pipeline_name: str) -> str:
    """Default DuckDB file: named after the pipeline, but never equal to the dataset name.

    A file whose stem equals the dataset name makes `"ds"."table"` ambiguous in DuckDB (catalog vs
    schema), so the pipeline's name is written with hyphens.
    """
    return str(Path.cwd() / f"{pipeline_name.replace('_', '-')}.duckdb")


def duckdb_settings() -> dict[str, Any]:
    """DuckDB settings for the loader's connection.

    DuckDB caches every block it writes up to its memory limit, 80% of RAM by default, so a loader left
    alone grows with the data it has loaded (2 GB at 10,000 insights x 1,000 points); capped, it spills to
    a temporary folder beside the file instead. Rows carry their own keys, so insertion order is not kept:
    that lets DuckDB insert in parallel with less memory (a fifth less load time measured).
    """
    config: dict[str, Any] = {"preserve_insertion_order": False}
    limit = os.environ.get(DUCKDB_MEMORY_LIMIT_ENV, DEFAULT_DUCKDB_MEMORY_LIMIT).strip()
    if limit.lower() not in ("", "off"):
        config["memory_limit"] = limit
    return config


def duckdb_destination(path: str) -> Destination[Any, Any]:
    """The DuckDB file at `path`, opened with `duckdb_settings()`."""
    credentials = DuckDbCredentials(path)
    credentials.global_config = duckdb_settings()
    return dlt.destinations.duckdb(credentials)


def make_pipeline(
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
) -> dlt.Pipeline:
    if destination == "duckdb":  # the embedded default: the file named by dlt's variable, else ours
        destination = duckdb_destination(
            os.environ.get("DESTINATION__DUCKDB__CREDENTIALS") or duckdb_path(pipeline_name)
        )
    extra: dict[str, Any] = {"pipelines_dir": pipelines_dir} if pipelines_dir else {}
    pipeline: dlt.Pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination,
        dataset_name=dataset_name,
        progress=progress,
        **extra,
    )
    return pipeline


@dataclass
class LoadResult:
    report: RunReport
    load_info: LoadInfo | None
    row_counts: dict[str, int] = field(default_factory=dict)
    views: list[str] = field(default_factory=list)
    seconds: float = 0.0
    pipeline: dlt.Pipeline | None = None

    @property
    def complete(self) -> bool:
        return self.report.complete


def finish_pending(pipeline: dlt.Pipeline) -> None:
    """A run killed after extract left packages behind: load them first, so nothing is lost or redone."""
    if pipeline.has_pending_data:
        dedupe_resumed_packages(pipeline)
        pipeline.run()


def load(
    *,
    pipeline: dlt.Pipeline | None = None,
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
    **source_args: Any,
) -> LoadResult:
    """Run the source once and refresh the views. `source_args` go to `posthog_insights_source`
    (host, project_ids, personal_api_key, refresh, ...); anything not given comes from dlt's config."""
    if pipeline is None:
        pipeline = make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress)
    return run_source(pipeline, posthog_insights_source, source_args)


def backfill(
    *,
    pipeline: dlt.Pipeline | None = None,
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
    **source_args: Any,
) -> LoadResult:
    """Recompute insights over past windows (`insights`, `date_from`, `date_to`, `window`, ...) into the
    same pipeline and tables as `load`."""
    if pipeline is None:
        pipeline = make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress)
    return run_source(pipeline, posthog_insights_backfill, source_args)


def run_source(
    pipeline: dlt.Pipeline, make_source: Callable[..., Any], source_args: dict[str, Any]
) -> LoadResult:
    started = time.monotonic()
    report = RunReport()
    source = make_source(report=report, **source_args)
    config = dict(EXTRACT_CONFIG)
    if pipeline.destination is not None and pipeline.destination.destination_name == "duckdb":
        config.update(DUCKDB_LOAD_CONFIG)
    with dlt.config.values(config):
        finish_pending(pipeline)
        info = pipeline.run(source)
    trace = pipeline.last_trace
    counts: dict[str, int] = {}
    if trace is not None and trace.last_normalize_info is not None:
        counts = {
            table: rows
            for table, rows in trace.last_normalize_info.row_counts.items()
            if not table.startswith("_dlt")
        }
    views = create_latest_views(pipeline)
    return LoadResult(report, info, counts, views, time.monotonic() - started, pipeline)
