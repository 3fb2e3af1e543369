"""Reading the warehouse back as pandas DataFrames, the way an analyst does.

`pipeline.dataset()` checks a query's columns against dlt's schema, which does not know the `_latest`
views (they are made with plain SQL after each load); queries here go through dlt's raw-query path so
views and tables read alike.
"""

from __future__ import annotations

from typing import Any

import dlt
import pandas as pd

from posthog_insights_cli.loader import DEFAULT_DATASET, DEFAULT_PIPELINE, make_pipeline


def open_pipeline(
    pipeline_name: str = DEFAULT_PIPELINE,
    dataset_name: str = DEFAULT_DATASET,
    destination: Any = "duckdb",
    pipelines_dir: str | None = None,
) -> dlt.Pipeline:
    """The pipeline a `posthog-insights run` with the same names loaded into."""
    return make_pipeline(pipeline_name, dataset_name, destination, pipelines_dir, progress=None)


def query(sql: str, pipeline: dlt.Pipeline | None = None) -> pd.DataFrame:
    """Run SQL (table and view names unqualified) against the pipeline's dataset."""
    pipeline = pipeline or open_pipeline()
    frame: pd.DataFrame = pipeline.dataset()(sql, _execute_raw_query=True).df()
    return frame


def table(name: str, latest: bool = True, pipeline: dlt.Pipeline | None = None) -> pd.DataFrame:
    """A whole table, or its `_latest` view (each insight's newest snapshot) when `latest`."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a table name: {name!r}")
    view = f"{name}_latest" if latest and name != "insights" else name
    return query(f"SELECT * FROM {view}", pipeline)
