"""`load(...)`: one run of the source into a destination, with the `_latest` views refreshed.

The Python API beside the CLI: analysts and orchestrators call this, the CLI only parses flags into it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo, NormalizeInfo

from posthog_insights import RunReport, posthog_insights_backfill, posthog_insights_source
from posthog_insights.checkpoints import DEFAULT_CHECKPOINT_MB, Checkpoints
from posthog_insights.recovery import dedupe_resumed_packages
from posthog_insights.views import create_latest_views
from posthog_insights_cli.duckdb_target import (
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DUCKDB_LOAD_CONFIG,
    DUCKDB_MEMORY_LIMIT_ENV,
    duckdb_destination,
    duckdb_path,
    duckdb_settings,
    one_connection,
)
from posthog_insights_cli.process_memory import return_freed_memory

__all__ = [
    "DEFAULT_DUCKDB_MEMORY_LIMIT",
    "DUCKDB_MEMORY_LIMIT_ENV",
    "LoadResult",
    "backfill",
    "duckdb_destination",
    "duckdb_path",
    "duckdb_settings",
    "load",
    "make_pipeline",
]

log = logging.getLogger("posthog_insights")

DEFAULT_PIPELINE = "posthog_insights"
DEFAULT_DATASET = "posthog_insights"
# The source cuts its own batches (recorder.py: 50k tidy rows, or 8 MiB of raw results) and yields them as
# Arrow tables: dlt's extract buffer on top (5,000 rows by default) held ~350 MB of raw results at 10,000
# insights x 1,000 points. With one item, each batch goes to its parquet file as it comes.
EXTRACT_CONFIG: dict[str, Any] = {"sources.data_writer.buffer_max_items": 1}


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
    packages: int = 1  # load packages the run was cut into (checkpoints); `load_info` is the last one's
    steps: dict[str, float] = field(default_factory=dict)  # seconds per dlt step, summed over packages

    @property
    def complete(self) -> bool:
        return self.report.complete


def _data_rows(info: NormalizeInfo | None) -> Counter[str]:
    rows = info.row_counts if info is not None else {}
    return Counter({table: n for table, n in rows.items() if not table.startswith("_dlt")})


@contextmanager
def _timed(steps: dict[str, float], step: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        steps[step] = steps.get(step, 0.0) + time.monotonic() - started


def finish_pending(pipeline: dlt.Pipeline) -> None:
    """A run killed after extract left packages behind: load them first, so nothing is lost or redone."""
    if pipeline.has_pending_data:
        dedupe_resumed_packages(pipeline)
        pipeline.normalize()
        with one_connection(pipeline) as load_package:
            load_package()


def load(
    *,
    pipeline: dlt.Pipeline | None = None,
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
    checkpoint_mb: float | None = DEFAULT_CHECKPOINT_MB,
    **source_args: Any,
) -> LoadResult:
    """Run the source once and refresh the views. `source_args` go to `posthog_insights_source`
    (host, project_ids, personal_api_key, refresh, ...); anything not given comes from dlt's config.
    A load package is cut every `checkpoint_mb` of data and whenever the rate limit leaves the run idle
    for a second or more (None or 0: volume never cuts)."""
    if pipeline is None:
        pipeline = make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress)
    return run_source(pipeline, posthog_insights_source, source_args, checkpoint_mb)


def backfill(
    *,
    pipeline: dlt.Pipeline | None = None,
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
    checkpoint_mb: float | None = DEFAULT_CHECKPOINT_MB,
    **source_args: Any,
) -> LoadResult:
    """Recompute insights over past windows (`insights`, `date_from`, `date_to`, `window`, ...) into the
    same pipeline and tables as `load`."""
    if pipeline is None:
        pipeline = make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress)
    return run_source(pipeline, posthog_insights_backfill, source_args, checkpoint_mb)


def run_source(
    pipeline: dlt.Pipeline,
    make_source: Callable[..., Any],
    source_args: dict[str, Any],
    checkpoint_mb: float | None = DEFAULT_CHECKPOINT_MB,
) -> LoadResult:
    """One run, loaded a checkpoint at a time (posthog_insights.checkpoints), so a run killed late keeps
    what its earlier packages loaded.

    The steps `pipeline.run` would take, taken one by one: the state is synced from the destination once
    per run rather than once per package, and each load gets one DuckDB connection (`one_connection`).
    """
    started = time.monotonic()
    report = RunReport()
    checkpoints = Checkpoints(max_mb=checkpoint_mb)
    source = make_source(report=report, checkpoints=checkpoints, **source_args)  # validates the settings
    config = dict(EXTRACT_CONFIG)
    if pipeline.destination is not None and pipeline.destination.destination_name == "duckdb":
        config.update(DUCKDB_LOAD_CONFIG)
    counts: Counter[str] = Counter()
    steps: dict[str, float] = {}
    info: LoadInfo | None = None
    views: list[str] = []
    try:
        with dlt.config.values(config):
            if pipeline.config.restore_from_destination:
                pipeline.sync_destination()
            finish_pending(pipeline)
            while True:
                package: dict[str, float] = {}
                with _timed(package, "extract"):
                    pipeline.extract(source)
                    return_freed_memory()  # before the load allocates its own (process_memory.py)
                with _timed(package, "normalize"):
                    rows = _data_rows(pipeline.normalize())
                with _timed(package, "load"), one_connection(pipeline) as load_package:
                    info = load_package()
                    if checkpoints.finished:  # on the same connection: one open of the file less
                        views = create_latest_views(pipeline)
                counts += rows
                steps = {step: steps.get(step, 0.0) + s for step, s in package.items()}
                log.info(
                    "package %d loaded: %d rows (extract %.1f s, normalize %.1f s, load %.1f s)",
                    checkpoints.packages,
                    rows.total(),
                    *package.values(),
                )
                if checkpoints.finished:
                    break
                source = make_source(report=report, checkpoints=checkpoints, **source_args)
    finally:
        checkpoints.close()
    seconds = time.monotonic() - started
    return LoadResult(report, info, dict(counts), views, seconds, pipeline, checkpoints.packages, steps)
