"""Arrow schemas and primary keys of the six tidy tables.

Every table starts with the snapshot key (`project_id`, `insight_id`, `snapshot`, `variant`), then
`last_refresh` (equal to `snapshot`) and `kind`, then its own key columns, then the values. Key fields are
declared non-nullable: dlt warns on every batch otherwise.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

TS: Final = pa.timestamp("us", tz="UTC")

SNAPSHOT_KEY: Final[tuple[str, ...]] = ("project_id", "insight_id", "snapshot", "variant")
# Constant over one insight's rows in every table (the first six columns).
COMMON_COLUMNS: Final[tuple[str, ...]] = (*SNAPSHOT_KEY, "last_refresh", "kind")

_COMMON_FIELDS: Final[tuple[pa.Field, ...]] = (
    pa.field("project_id", pa.int64(), nullable=False),
    pa.field("insight_id", pa.int64(), nullable=False),
    pa.field("snapshot", TS, nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("last_refresh", TS),
    pa.field("kind", pa.string()),
)


def _schema(*fields: pa.Field) -> pa.Schema:
    return pa.schema([*_COMMON_FIELDS, *fields])


def _key(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


TIDY_SCHEMAS: Final[dict[str, pa.Schema]] = {
    "trend_points": _schema(
        _key("series_index", pa.int32()),
        _key("point_index", pa.int32()),
        pa.field("series_label", pa.string()),
        pa.field("action_id", pa.string()),
        pa.field("action_name", pa.string()),
        pa.field("math", pa.string()),
        pa.field("breakdown_value", pa.string()),
        pa.field("compare_label", pa.string()),
        pa.field("status", pa.string()),
        pa.field("day", pa.string()),
        pa.field("interval", pa.int32()),
        pa.field("date", TS),
        pa.field("label", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("series_count", pa.float64()),
        pa.field("aggregated_value", pa.float64()),
        pa.field("is_aggregate", pa.bool_()),
    ),
    "funnel_steps": _schema(
        _key("breakdown_index", pa.int32()),
        _key("step_order", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("custom_name", pa.string()),
        pa.field("action_id", pa.string()),
        pa.field("step_type", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("average_conversion_time", pa.float64()),
        pa.field("median_conversion_time", pa.float64()),
        pa.field("breakdown_value", pa.string()),
        pa.field("breakdown", pa.string()),
    ),
    "funnel_conversion_bins": _schema(
        _key("bin_index", pa.int32()),
        pa.field("bin_seconds", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("average_conversion_time", pa.float64()),
    ),
    "retention_cells": _schema(
        _key("cohort_index", pa.int32()),
        _key("period_index", pa.int32()),
        pa.field("cohort_date", TS),
        pa.field("cohort_label", pa.string()),
        pa.field("period_label", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("breakdown_value", pa.string()),
    ),
    "path_edges": _schema(
        _key("source", pa.string()),
        _key("target", pa.string()),
        pa.field("source_step", pa.int32()),
        pa.field("target_step", pa.int32()),
        pa.field("source_name", pa.string()),
        pa.field("target_name", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("average_conversion_time", pa.float64()),
        pa.field("edge_index", pa.int32()),
    ),
    "sql_rows": _schema(
        _key("row_index", pa.int32()),
        pa.field("row", pa.string()),
    ),
}

TIDY_PRIMARY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "trend_points": (*SNAPSHOT_KEY, "series_index", "point_index"),
    "funnel_steps": (*SNAPSHOT_KEY, "breakdown_index", "step_order"),
    "funnel_conversion_bins": (*SNAPSHOT_KEY, "bin_index"),
    "retention_cells": (*SNAPSHOT_KEY, "cohort_index", "period_index"),
    "path_edges": (*SNAPSHOT_KEY, "source", "target"),
    "sql_rows": (*SNAPSHOT_KEY, "row_index"),
}
