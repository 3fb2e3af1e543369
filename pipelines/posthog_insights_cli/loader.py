"""`load(...)` and `backfill(...)`: a run of the source into a destination, with the `_latest` views
refreshed. The Python API beside the CLI: analysts and orchestrators call these, the CLI only parses
flags into them.

A long run is loaded as it goes, in bounded runs of the source that share one session
(posthog_insights.session): each is an ordinary `pipeline.run`, a load package with the dlt state that
describes it, and ends where PostHog's rate windows would hold the run back anyway (or after
`checkpoint_mb` of data); the next picks up what it left without listing again. A run killed in its
fourth hour keeps its first three.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.configuration import inject_section, resolve_configuration
from dlt.common.configuration.specs.config_section_context import ConfigSectionContext
from dlt.common.pipeline import LoadInfo
from dlt.common.schema import Schema
from dlt.common.schema.typing import TDeleteInsertStrategyDict

from posthog_insights import (
    BackfillSettings,
    PostHogInsightsSettings,
    RunReport,
    Session,
    posthog_insights_backfill,
    posthog_insights_source,
    tables,
)
from posthog_insights.errors import ConfigError
from posthog_insights.views import create_latest_views, keeps_views
from posthog_insights_cli.duckdb_target import duckdb_destination, duckdb_path, load_settings

__all__ = ["LoadResult", "backfill", "duckdb_destination", "duckdb_path", "load", "make_pipeline"]

log = logging.getLogger("posthog_insights")

DEFAULT_PIPELINE = "posthog_insights"
DEFAULT_DATASET = "posthog_insights"
# A run ends (and loads what it has) when nothing is in flight and the pacer holds the next request at
# least this long: loading a package takes ~0.5 s of fixed work, so shorter pauses are not worth one.
SEGMENT_IDLE_S = 1.0
# And after this many MB of data: what one load holds (and DuckDB's merge of it needs) stays the same
# however large the project.
DEFAULT_CHECKPOINT_MB = 64.0


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
    packages: int = 1  # load packages (bounded runs) the run was cut into; `load_info` is the last one's
    steps: dict[str, float] = field(default_factory=dict)  # seconds per dlt step, summed over packages

    @property
    def complete(self) -> bool:
        return self.report.complete


def load(
    *,
    pipeline: dlt.Pipeline | None = None,
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
    checkpoint_mb: float | None = DEFAULT_CHECKPOINT_MB,
    **settings: Any,
) -> LoadResult:
    """Load insights and their results once; `settings` are `posthog_insights_source`'s arguments (host,
    project_ids, personal_api_key, refresh, ...), anything not given comes from dlt's configuration. A
    load package is cut whenever the rate limit holds the run back for a second or more, and every
    `checkpoint_mb` of data (None or 0: only the first)."""
    if pipeline is None:
        pipeline = make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress)
    return run_source(pipeline, posthog_insights_source, PostHogInsightsSettings, settings, checkpoint_mb)


def backfill(
    *,
    pipeline: dlt.Pipeline | None = None,
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
    progress: Any = "log",
    checkpoint_mb: float | None = DEFAULT_CHECKPOINT_MB,
    **settings: Any,
) -> LoadResult:
    """Recompute insights over past windows (`insights`, `date_from`, `date_to`, `window`, ...) into the
    same pipeline and tables as `load`."""
    if pipeline is None:
        pipeline = make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress)
    return run_source(pipeline, posthog_insights_backfill, BackfillSettings, settings, checkpoint_mb)


def resolve_settings(
    pipeline: dlt.Pipeline, spec: type[PostHogInsightsSettings], given: dict[str, Any]
) -> PostHogInsightsSettings:
    """The settings, resolved and checked once, as the source would resolve them: the arguments given,
    then dlt's configuration (pipeline-scoped sections first)."""
    unknown = sorted(set(given) - {f for f in spec.get_resolvable_fields()})
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(unknown)}")
    context = ConfigSectionContext(
        pipeline_name=pipeline.pipeline_name, sections=("sources", "posthog_insights")
    )
    with inject_section(context):
        return resolve_configuration(
            spec(), sections=("sources", "posthog_insights", "posthog_insights"), explicit_value=given
        )


# The result tables' staging data is de-duplicated by construction: the ledger emits each snapshot once per
# run. Telling dlt so skips its de-duplication (a window over every staged row, the merge's largest cost in
# time and memory). It holds only for a load that runs start to finish: see `_abort_interrupted_load`.
MERGE_AS_STAGED: TDeleteInsertStrategyDict = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}


# Every row says which load package brought it, so that an aborted package's rows can be taken back.
LOAD_SETTINGS: dict[str, Any] = {"normalize.parquet_normalizer.add_dlt_load_id": True}


def _merged_as_staged(source: Any) -> Any:
    for name in (tables.RESULTS, *tables.TIDY):
        source.resources[name].apply_hints(write_disposition=MERGE_AS_STAGED)
    return source


def _abort_interrupted_load(pipeline: dlt.Pipeline) -> None:
    """A load package whose load was cut short (a killed run) is aborted, not resumed.

    Resumed, a staging copy that committed before dlt recorded its job as done would be copied again, and
    the merge, told the staging data holds each row once, would load those rows twice. Aborted (dlt's own
    `abort_packages`), the pipeline state goes back to before the package, the rows the package merged
    already are deleted (every row carries its package's `_dlt_load_id`, see `LOAD_SETTINGS`), and this run
    fetches those results again. A package whose load never started is loaded as usual.
    """
    for load_id in pipeline.list_normalized_load_packages():
        package = pipeline.get_load_package_info(load_id)
        if not any(package.jobs.get(state) for state in ("started_jobs", "completed_jobs", "failed_jobs")):
            continue
        log.warning("a load cut short by an earlier run is aborted; this run fetches its results again")
        if keeps_views(pipeline):
            _delete_package_rows(pipeline, package.schema, load_id)
        pipeline.abort_packages()
        return


def _delete_package_rows(pipeline: dlt.Pipeline, schema: Schema, load_id: str) -> None:
    with pipeline.sql_client() as client:
        for name in (tables.INSIGHTS, tables.RESULTS, *tables.TIDY, tables.ACTIVITY):
            table = schema.tables.get(name)
            if table and "_dlt_load_id" in table.get("columns", {}):
                qualified = client.make_qualified_table_name(name)
                client.execute_sql(f"DELETE FROM {qualified} WHERE _dlt_load_id = %s", load_id)


def run_source(
    pipeline: dlt.Pipeline,
    make_source: Callable[..., Any],
    spec: type[PostHogInsightsSettings],
    given: dict[str, Any],
    checkpoint_mb: float | None = DEFAULT_CHECKPOINT_MB,
) -> LoadResult:
    """One load: bounded runs of the source on one session until it has nothing left, then the views."""
    if checkpoint_mb is not None and (isinstance(checkpoint_mb, bool) or not checkpoint_mb >= 0):
        raise ConfigError(f"checkpoint_mb: must be a number of MB >= 0, got {checkpoint_mb!r}")
    started = time.monotonic()
    settings = resolve_settings(pipeline, spec, given)
    session = Session(
        settings,
        segment_idle_s=SEGMENT_IDLE_S,
        segment_bytes=int(checkpoint_mb * 2**20) if checkpoint_mb else None,
        warn_if_incomplete=False,  # the result's report says it, and the CLI's exit code
    )
    counts: Counter[str] = Counter()
    steps: dict[str, float] = {}
    info: LoadInfo | None = None
    with dlt.config.values({**LOAD_SETTINGS, **load_settings(pipeline)}):
        _abort_interrupted_load(pipeline)
        while not session.finished:
            info = pipeline.run(_merged_as_staged(make_source(settings=settings, session=session)))
            trace = pipeline.last_trace
            assert trace is not None
            normalized = trace.last_normalize_info
            rows = {
                t: n
                for t, n in (normalized.row_counts if normalized else {}).items()
                if not t.startswith("_dlt")
            }
            counts.update(rows)
            for step in trace.steps:
                if step.step in ("extract", "normalize", "load") and step.finished_at and step.started_at:
                    seconds = (step.finished_at - step.started_at).total_seconds()
                    steps[step.step] = steps.get(step.step, 0.0) + seconds
            log.info("package %d loaded: %d rows", session.runs, sum(rows.values()))
    views = create_latest_views(pipeline)
    seconds = time.monotonic() - started
    return LoadResult(session.summary(), info, dict(counts), views, seconds, pipeline, session.runs, steps)
