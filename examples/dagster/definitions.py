"""Dagster: PostHog saved insights and their results as Dagster assets, one per table, every hour.

`@dlt_assets` (dagster-dlt) turns each table the source loads (`insights`, `insight_results`,
`trend_points`, `funnel_steps`, ...) into an asset of one multi-asset: a run loads them together, in one
dlt load, or the subset you select. A second asset recreates the `<table>_latest` views after them,
which `posthog-insights run` and `load()` do by themselves but dagster-dlt does not know about.

Install beside this project (`requirements.txt` holds the versions CI materialises these assets with;
add `dagster-webserver` for the UI)::

    pip install -r requirements.txt "posthog-insights[postgres] @ git+https://github.com/<you>/posthog-insights"
    dagster dev -f definitions.py

Nothing secret lives in this file. The key reaches the source only through the `posthog` resource, which
Dagster fills from environment variables when a run starts (`dg.EnvVar`: the UI and the run's config show
the variable's name, never its value):

- `POSTHOG_PERSONAL_API_KEY`: a personal API key with the insight:read scope.
- `POSTHOG_HOST`: https://us.posthog.com, https://eu.posthog.com or your own.
- `POSTHOG_PROJECT_IDS`: 12345 or 12345,67890.
- The destination: `POSTHOG_INSIGHTS_DESTINATION` (default postgres) and dlt's own settings for it,
  e.g. `DESTINATION__POSTGRES__CREDENTIALS`. Any other setting of the source comes from dlt's
  configuration as usual (`SOURCES__POSTHOG_INSIGHTS__MAX_REQUESTS=1100`, `.dlt/config.toml`).

Runs never overlap their loads if the instance limits the `posthog_insights` pool to one
(`dagster instance concurrency set posthog_insights 1`): two at once would share the key's rate limit and
the pipeline state. dagster-dlt drops the local pipeline folder before each run and dlt restores the
state (what `max_requests` left for the next run) and the schema from the destination, so use a
warehouse destination, not a DuckDB file local to one machine.
"""

import os
import tempfile
from collections.abc import Iterator
from typing import Any

import dagster as dg
import dlt
from dagster_dlt import DagsterDltResource, dlt_assets
from dlt.extract import DltSource

from posthog_insights import posthog_insights_source
from posthog_insights.views import create_latest_views

PIPELINE_NAME = "posthog_insights"
DATASET_NAME = "posthog_insights"
# Any dlt destination that keeps SQL views: postgres, bigquery, snowflake, motherduck, ...
DESTINATION = os.environ.get("POSTHOG_INSIGHTS_DESTINATION", "postgres")


class PostHogResource(dg.ConfigurableResource):
    """Where and as whom the source reads PostHog; builds a fresh source for each run."""

    personal_api_key: str
    host: str = "https://us.posthog.com"
    project_ids: str  # "12345" or "12345,67890"
    refresh: str = "blocking"

    def source(self) -> DltSource:
        return posthog_insights_source(
            personal_api_key=self.personal_api_key,
            host=self.host,
            project_ids=self.project_ids,
            refresh=self.refresh,
            include_activity=False,  # the same tables as the assets below
        )


def pipeline() -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name=PIPELINE_NAME, destination=DESTINATION, dataset_name=DATASET_NAME)


# `@dlt_assets` reads the tables (one asset each) from a source when this file is imported. This one
# never runs, so it needs no key: every materialisation runs `posthog.source()` instead, made when the run
# starts with the key Dagster resolved from the environment.
_TABLES = posthog_insights_source(personal_api_key="unused", project_ids="1", include_activity=False)


@dlt_assets(
    dlt_source=_TABLES,
    dlt_pipeline=pipeline(),
    name="posthog_insights",
    group_name="posthog_insights",
    pool="posthog_insights",
)
def posthog_insights_tables(
    context: dg.AssetExecutionContext, dlt: DagsterDltResource, posthog: PostHogResource
) -> Iterator[Any]:
    yield from dlt.run(context=context, dlt_source=posthog.source())


@dg.asset(deps=posthog_insights_tables.keys, group_name="posthog_insights", kinds={"dlt"})
def posthog_insights_latest_views() -> dg.MaterializeResult:
    """The `<table>_latest` views: each insight's newest state, recreated after every load."""
    with tempfile.TemporaryDirectory(prefix="dlt_views_") as folder:
        views = dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            destination=DESTINATION,
            dataset_name=DATASET_NAME,
            pipelines_dir=folder,
        )
        views.sync_destination()  # the schema, read back from the destination
        created = create_latest_views(views)
    return dg.MaterializeResult(metadata={"views": dg.MetadataValue.json(created)})


posthog_insights_hourly = dg.define_asset_job(
    "posthog_insights_hourly", selection=[posthog_insights_tables, posthog_insights_latest_views]
)

defs = dg.Definitions(
    assets=[posthog_insights_tables, posthog_insights_latest_views],
    jobs=[posthog_insights_hourly],
    schedules=[
        # hourly, off the hour; PostHog's 1200 requests/hour window is per key
        dg.ScheduleDefinition(job=posthog_insights_hourly, cron_schedule="17 * * * *")
    ],
    resources={
        "dlt": DagsterDltResource(),
        "posthog": PostHogResource(
            personal_api_key=dg.EnvVar("POSTHOG_PERSONAL_API_KEY"),
            host=dg.EnvVar("POSTHOG_HOST"),
            project_ids=dg.EnvVar("POSTHOG_PROJECT_IDS"),
        ),
    },
)
