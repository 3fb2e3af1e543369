"""`TidyRows`: accumulate the tidy rows of many insights, hand them over as Arrow tables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pyarrow as pa

from ._buffer import SPECS, Chunk, TableBuffer
from ._kind import insight_kind
from ._parsers import PARSERS, Build
from ._values import Unrecognised, micros

_NOTE_MAX: Final = 300


@dataclass(frozen=True)
class SnapshotRef:
    """Which snapshot of which insight the rows belong to (the first four key columns of every table)."""

    project_id: int
    insight_id: int
    snapshot: datetime  # tz-aware UTC; the result's last_refresh (a naive one is read as UTC)
    variant: str = ""  # "" for a plain retrieve; e.g. "dashboard=12" or "window=2024-01-01..2024-01-31"


@dataclass(frozen=True)
class ShapeOutcome:
    rows: int  # tidy rows added for this insight
    recognised: bool  # False: unknown kind or shape; nothing added, the caller keeps the raw JSON
    # trends, trends_aggregate, trends_calendar_heatmap, trends_box_plot, funnel_trends, funnel_steps,
    # funnel_steps_breakdown, funnel_steps_compare, funnel_time_to_convert, funnel_time_to_convert_compare,
    # retention, paths, sql, table; or "empty", "unknown"
    shape: str
    note: str | None = None  # why not recognised


def _result(response: Mapping[str, Any]) -> Any:
    if not isinstance(response, Mapping):
        raise Unrecognised(f"response is a {type(response).__name__}, not an object")
    if "result" not in response and "results" in response:  # a /query response rather than an insight
        return response["results"]
    return response.get("result")


def _common(ref: SnapshotRef, kind: str) -> tuple[Any, ...]:
    for name in ("project_id", "insight_id"):
        value = getattr(ref, name)
        if type(value) is not int or not -(2**63) <= value < 2**63:
            raise TypeError(f"SnapshotRef.{name} must be an int64, got {value!r}")
    if not isinstance(ref.snapshot, datetime):
        raise TypeError(f"SnapshotRef.snapshot must be a datetime, got {ref.snapshot!r}")
    if type(ref.variant) is not str:
        raise TypeError(f"SnapshotRef.variant must be a str, got {ref.variant!r}")
    snapshot = micros(ref.snapshot)
    return (ref.project_id, ref.insight_id, snapshot, ref.variant, snapshot, kind)


def _note(error: Exception) -> str:
    message = str(error) if isinstance(error, Unrecognised) else f"{type(error).__name__}: {error}"
    return message if len(message) <= _NOTE_MAX else message[: _NOTE_MAX - 3] + "..."


class TidyRows:
    """Accumulates rows column-wise for all six tidy tables across many insights.

    `add()` never raises on a bad payload: an insight is either added whole or not at all. `take()` hands
    the rows over as one Arrow table per non-empty table and starts afresh, so a caller can flush in
    batches of `row_count()` rows (dlt spends its time per yielded item, not per row).
    """

    def __init__(self) -> None:
        self._tables = {name: TableBuffer(spec) for name, spec in SPECS.items()}

    def add(self, ref: SnapshotRef, insight: Mapping[str, Any], response: Mapping[str, Any]) -> ShapeOutcome:
        try:
            result = _result(response)
            if result is None or (isinstance(result, list) and not result):
                return ShapeOutcome(0, True, "empty")
            kind = insight_kind(insight)
            parser = PARSERS.get(kind)
            if parser is None:
                return ShapeOutcome(0, False, "unknown", f"unknown insight kind ({kind})")
            common = _common(ref, kind)
            build = Build()
            shape = parser(result, build, insight, response)
            finished: list[tuple[TableBuffer, Chunk]] = []
            for table, stage in build.stages.items():
                chunk = stage.finish()
                if chunk is not None:
                    finished.append((self._tables[table], chunk))
        except Exception as error:  # a bad payload must not stop the run: report it, keep nothing of it
            return ShapeOutcome(0, False, "unknown", _note(error))
        rows = 0
        for buffer, chunk in finished:
            buffer.append(common, chunk)
            rows += chunk.rows
        return ShapeOutcome(rows, True, shape)

    def row_count(self) -> int:
        """Rows accumulated and not yet taken, over all tables."""
        return sum(buffer.rows for buffer in self._tables.values())

    def take(self) -> dict[str, pa.Table]:
        """Table name -> Arrow table, only for tables with rows; the buffers are empty afterwards."""
        tables: dict[str, pa.Table] = {}
        for name, buffer in self._tables.items():
            table = buffer.take()
            if table is not None:
                tables[name] = table
        return tables
