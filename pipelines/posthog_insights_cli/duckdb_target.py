"""The embedded default destination: where the DuckDB file lives, how it is opened, how a load uses it."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from posthog_insights.errors import exception_chain

log = logging.getLogger("posthog_insights")

# One DuckDB file takes one writer at a time: dlt's parallel load jobs (20 by default) only made DuckDB run
# several big inserts at once, each with its own buffers (peak 790-875 MiB at 10,000 x 1,000 insights x
# points against 703-729 MiB one job at a time). Jobs one after another cost no time once they share one
# connection (`one_connection`).
DUCKDB_LOAD_CONFIG: dict[str, Any] = {"load.workers": 1}
DUCKDB_MEMORY_LIMIT_ENV = "POSTHOG_INSIGHTS_DUCKDB_MEMORY_LIMIT"
# Unset, the limit starts here and doubles whenever a load runs out of it (`_load_with_headroom`): 160MB
# loads the memory benchmark (10,000 insights x 1,000 points) with a peak of ~470 MiB for the whole process
# against 557 at 256MB. 128MB ran out of memory on it, copying the raw result JSON from staging to the final
# table: how much a load needs depends on how big the results are, hence the doubling.
DEFAULT_DUCKDB_MEMORY_LIMIT = "160MB"


class AutomaticMemoryLimit(dict[str, Any]):
    """DuckDB settings whose memory limit the user left alone, so `_load_with_headroom` may raise it."""

    def double(self) -> tuple[str, str] | None:
        """Doubles the memory limit: (old, new), or None at half the machine's memory, where it stops."""
        current_mb = int(str(self["memory_limit"]).removesuffix("MB"))
        ceiling_mb = _machine_memory_mb() // 2
        if current_mb >= ceiling_mb:
            return None
        self["memory_limit"] = f"{min(current_mb * 2, ceiling_mb)}MB"
        return f"{current_mb}MB", self["memory_limit"]


def _machine_memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume a small machine
        return 4096


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
    chosen = os.environ.get(DUCKDB_MEMORY_LIMIT_ENV)
    if chosen is None:
        return AutomaticMemoryLimit(preserve_insertion_order=False, memory_limit=DEFAULT_DUCKDB_MEMORY_LIMIT)
    config: dict[str, Any] = {"preserve_insertion_order": False}
    if chosen.strip().lower() not in ("", "off"):
        config["memory_limit"] = chosen.strip()
    return config


def duckdb_destination(path: str) -> Destination[Any, Any]:
    """The DuckDB file at `path`, opened with `duckdb_settings()`."""
    credentials = DuckDbCredentials(path)
    credentials.global_config = duckdb_settings()
    return dlt.destinations.duckdb(credentials)


def is_out_of_memory(exc: BaseException) -> bool:
    """DuckDB ran out of its memory limit somewhere in `exc`'s chain (dlt wraps it once or twice)."""
    return any("Out of Memory Error" in str(current) for current in exception_chain(exc))


def _load_with_headroom(pipeline: dlt.Pipeline, connection: Any, settings: object) -> LoadInfo:
    """`pipeline.load()`; when DuckDB runs out of an automatic memory limit (the setting unset), the limit
    doubles and the pending package is loaded again.

    Nothing is lost or loaded twice: the job that failed rolled back and stays pending, the jobs that
    succeeded are not run again. The grown limit stays for the rest of the run.
    """
    while True:
        try:
            return pipeline.load()
        except Exception as exc:
            if not isinstance(settings, AutomaticMemoryLimit) or not is_out_of_memory(exc):
                raise
            doubled = settings.double()  # kept for the run's next packages
            if doubled is None:
                raise
            log.warning("DuckDB ran out of its %s memory limit; loading again with %s", *doubled)
            connection.execute(f"SET GLOBAL memory_limit = '{doubled[1]}'")


@contextmanager
def one_connection(pipeline: dlt.Pipeline) -> Iterator[Callable[[], LoadInfo]]:
    """Within: every load job of a DuckDB pipeline runs on one open connection to the file. Yields the
    load to call: `pipeline.load()`, and for DuckDB one that raises an automatic memory limit the load
    runs out of (`_load_with_headroom`).

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
        yield pipeline.load  # not DuckDB, or already an external connection
        return
    settings = getattr(credentials, "global_config", None)
    with pipeline.sql_client() as client:
        connection = client.native_connection
        destination.config_params["credentials"] = connection
        try:
            yield functools.partial(_load_with_headroom, pipeline, connection, settings)
        finally:
            if credentials is None:
                destination.config_params.pop("credentials", None)
            else:
                destination.config_params["credentials"] = credentials
