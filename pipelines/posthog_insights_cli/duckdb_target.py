"""The embedded default destination: where the DuckDB file lives, how it is opened, how a load uses it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

# One DuckDB file takes one writer at a time: dlt's parallel load jobs (20 by default) only made DuckDB run
# several big inserts at once, each with its own buffers (peak 790-875 MiB at 10,000 x 1,000 insights x
# points against 703-729 MiB one job at a time). Jobs one after another cost no time once they share one
# connection (`one_connection`).
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


@contextmanager
def one_connection(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Within: every load job of a DuckDB pipeline runs on one open connection to the file.

    dlt gives each job its own connection pool, so with jobs one at a time the file was opened, and
    checkpointed on close, once per job: ~30 ms each, half the load of a small package (0.48 s against
    0.21 s for 8 merged tables). Held only around a load, so the file is free for analysts meanwhile. The
    connection is borrowed from dlt's own client (its settings, time zone and statements applied) and
    handed to the destination as an external one, which dlt duplicates per job and never closes.
    """
    destination = pipeline.destination
    credentials = destination.config_params.get("credentials") if destination is not None else None
    if (
        destination is None
        or destination.destination_name != "duckdb"
        or not isinstance(credentials, DuckDbCredentials | str | None)
    ):
        yield  # not DuckDB, or already an external connection
        return
    with pipeline.sql_client() as client:
        destination.config_params["credentials"] = client.native_connection
        try:
            yield
        finally:
            if credentials is None:
                destination.config_params.pop("credentials", None)
            else:
                destination.config_params["credentials"] = credentials
