"""The embedded default destination: where the DuckDB file lives and the settings it loads with.

The settings are dlt's own, so a user sees and changes them where dlt reads DuckDB's: a key set in
`[destination.duckdb.credentials] global_config` (or `DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG`, a
JSON object) wins over the same key below, and `[load] workers` over one load job at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import dlt
from dlt.common.destination import Destination
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

# Rows carry their own keys, so insertion order is not kept: DuckDB then inserts in parallel with less
# memory. The memory limit bounds DuckDB's block cache, which otherwise grows to 80% of the machine with
# the data loaded; past it DuckDB spills to a temporary folder beside the file.
DUCKDB_SETTINGS: Final[dict[str, Any]] = {"preserve_insertion_order": False, "memory_limit": "128MB"}
# One DuckDB file takes one writer at a time: parallel load jobs only made DuckDB run several big inserts
# at once, each with its own buffers.
DUCKDB_LOAD: Final[dict[str, Any]] = {"load.workers": 1}


def duckdb_path(pipeline_name: str) -> str:
    """Default DuckDB file: named after the pipeline, but never equal to the dataset name.

    A file whose stem equals the dataset name makes `"ds"."table"` ambiguous in DuckDB (catalog vs
    schema), so the pipeline's name is written with hyphens.
    """
    return str(Path.cwd() / f"{pipeline_name.replace('_', '-')}.duckdb")


def duckdb_destination(path: str) -> Destination[Any, Any]:
    """The DuckDB file at `path`, with `DUCKDB_SETTINGS` under what dlt's configuration sets."""
    configured = dlt.config.get("destination.duckdb.credentials.global_config", dict) or {}
    credentials = DuckDbCredentials(path)
    credentials.global_config = {**DUCKDB_SETTINGS, **configured}
    return dlt.destinations.duckdb(credentials)


def load_settings(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """dlt settings a load of `pipeline` runs with: for DuckDB one load job at a time, unless configured."""
    destination = pipeline.destination
    if destination is None or destination.destination_name != "duckdb":
        return {}
    return {} if dlt.config.get("load.workers") is not None else dict(DUCKDB_LOAD)
