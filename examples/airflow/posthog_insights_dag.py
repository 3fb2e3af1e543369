"""Airflow 3 DAG: PostHog saved insights and their results into a warehouse every hour, with dlt's helper.

Install this project on the Airflow workers with its `postgres` extra, beside Airflow 3
(`examples/airflow/requirements.txt` holds the versions CI runs this DAG with, `airflow dags test` on
SQLite, end to end)::

    pip install -r requirements.txt "posthog-insights[postgres] @ git+https://github.com/<you>/posthog-insights"

Nothing secret lives in this file; dlt resolves everything when the task runs, the way it always does:

- Secrets: the Airflow Variable `dlt_secrets_toml`, a TOML document that dlt reads inside Airflow (set
  it in the UI, with `airflow variables set`, from a secrets backend, or as the environment variable
  `AIRFLOW_VAR_DLT_SECRETS_TOML` on the scheduler and the workers)::

      [sources.posthog_insights]
      personal_api_key = "phx_..."

      [destination.postgres]
      credentials = "postgresql://loader:password@warehouse.internal:5432/analytics"

  (or the environment variables SOURCES__POSTHOG_INSIGHTS__PERSONAL_API_KEY and
  DESTINATION__POSTGRES__CREDENTIALS on the workers).
- Settings: `.dlt/config.toml` in the dags folder (PipelineTasksGroup makes it dlt's project folder)::

      [sources.posthog_insights]
      host = "https://eu.posthog.com"
      project_ids = [12345]
      refresh = "blocking"
      max_requests = 1100     # optional: a project too big for one hour finishes over several runs

- The destination: `POSTHOG_INSIGHTS_DESTINATION` on the scheduler and the workers (default postgres).

The first task runs the source; the second recreates the `<table>_latest` views, which `posthog-insights
run` and `load()` do by themselves but dlt's helper does not know about. The worker's local pipeline folder
is wiped after each task: dlt restores the pipeline state (what `max_requests` left for the next run) and
the schema from the destination, so use a warehouse destination, not a DuckDB file local to one worker.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import dlt
import pendulum
from airflow.sdk import dag, task
from dlt.helpers.airflow_helper import PipelineTasksGroup

from posthog_insights import posthog_insights_source
from posthog_insights.views import create_latest_views

PIPELINE_NAME = "posthog_insights"
DATASET_NAME = "posthog_insights"
# Any dlt destination that keeps SQL views: postgres, bigquery, snowflake, motherduck, ...
DESTINATION = os.environ.get("POSTHOG_INSIGHTS_DESTINATION", "postgres")


@task
def latest_views() -> list[str]:
    """Recreate the `_latest` views; the worker first reads the schema back from the destination."""
    with tempfile.TemporaryDirectory(prefix="dlt_views_") as folder:
        pipeline = dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            destination=DESTINATION,
            dataset_name=DATASET_NAME,
            pipelines_dir=folder,
        )
        pipeline.sync_destination()
        return create_latest_views(pipeline)


@dag(
    schedule="17 * * * *",  # hourly, off the hour; PostHog's 1200 requests/hour window is per key
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs at once would share the key's rate limit and the pipeline state
    default_args={"owner": "data", "retries": 1, "retry_delay": timedelta(minutes=5)},
    tags=["posthog", "dlt"],
)
def posthog_insights_hourly() -> None:
    # the group must exist before the pipeline: it gives the pipeline a fresh working folder
    tasks = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False, wipe_local_data=True)
    pipeline = dlt.pipeline(pipeline_name=PIPELINE_NAME, destination=DESTINATION, dataset_name=DATASET_NAME)
    # the source factory itself, not a source: called in the task, so its configuration and secrets are
    # resolved on the worker at run time, never when the scheduler parses this file
    load_tasks = tasks.add_run(pipeline, posthog_insights_source, decompose="none", retries=0)
    load_tasks[-1] >> latest_views()


posthog_insights_hourly()
