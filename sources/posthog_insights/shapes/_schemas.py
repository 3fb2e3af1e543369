"""Arrow schemas and primary keys of the six tidy tables.

Every table starts with the snapshot key (`project_id`, `insight_id`, `snapshot`, `variant`), then
`last_refresh` (equal to `snapshot`) and `kind`, then its own key columns, then the values. Key fields are
declared non-nullable: dlt warns on every batch otherwise.

Schemas only grow: a column added later is nullable and goes after the values that were there before, so
that a warehouse loaded by an older version keeps its columns and types.

trend_points, beyond series of points:
- a calendar heatmap (trends display `CalendarHeatmap`) has one row per cell of its day-of-week x hour
  grid: `weekday` is PostHog's own day number, ClickHouse `toDayOfWeek` (1 = Monday ... 7 = Sunday), `hour`
  is 0-23 (both in the project's time zone, as PostHog computes them); `value` is the cell's value and
  `point_index` the cell's position in the payload. The grid's margins (per-day and per-hour aggregations)
  are not rows: the overall figure is the series' `aggregated_value`, the margins stay in the raw JSON.
- a box plot (trends display `BoxPlot`) has one row per box: `value` is the mean, `box_min` ... `box_max`
  the five figures, `day`/`date`/`label` the box's interval, `point_index` the box's position in its series.
funnel_steps: `breakdown_index` is the position of the group of steps in the result (a breakdown value, or
a period of a compared funnel: 0 = current, 1 = previous); `compare_label` says which period.
funnel_conversion_bins: a compared funnel numbers its bins on across both periods; `compare_label` says
which period a bin belongs to.
retention_cells: `value` is the exact count (a float when PostHog corrects for sampling), `count` the same
rounded half up to an integer.
sql_rows: also the rows of a saved data table over any other source (events, persons, web analytics...).
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
        pa.field("weekday", pa.int32()),
        pa.field("hour", pa.int32()),
        pa.field("box_min", pa.float64()),
        pa.field("box_p25", pa.float64()),
        pa.field("box_median", pa.float64()),
        pa.field("box_p75", pa.float64()),
        pa.field("box_max", pa.float64()),
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
        pa.field("compare_label", pa.string()),
    ),
    "funnel_conversion_bins": _schema(
        _key("bin_index", pa.int32()),
        pa.field("bin_seconds", pa.float64()),
        pa.field("count", pa.int64()),
        pa.field("average_conversion_time", pa.float64()),
        pa.field("compare_label", pa.string()),
    ),
    "retention_cells": _schema(
        _key("cohort_index", pa.int32()),
        _key("period_index", pa.int32()),
        pa.field("cohort_date", TS),
        pa.field("cohort_label", pa.string()),
        pa.field("period_label", pa.string()),
        pa.field("count", pa.int64()),
        pa.field("breakdown_value", pa.string()),
        pa.field("value", pa.float64()),
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
