"""Arrow schemas and row builders of the two per-insight tables, `insights` (metadata) and
`insight_results` (outcomes), and of the dashboards' two, `dashboards` and `dashboard_tiles`; the
per-number tidy tables are built column-wise in `shapes`.

They hold one row per insight, dashboard or tile, so building them from dicts is cheap. JSON-valued
fields are stored as compact JSON text, which every destination accepts and analysts can cast
(`query_json::JSON` in DuckDB, `::jsonb` in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from posthog_insights.planner import parse_time
from posthog_insights.shapes import ShapeOutcome, insight_kind

_TS = pa.timestamp("us", tz="UTC")


def json_text(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


INSIGHTS_SCHEMA = pa.schema(
    [
        pa.field("project_id", pa.int64(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("short_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("derived_name", pa.string()),
        pa.field("description", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("query_json", pa.string()),
        pa.field("filters_json", pa.string()),
        pa.field("tags_json", pa.string()),
        pa.field("dashboards_json", pa.string()),
        pa.field("saved", pa.bool_()),
        pa.field("favorited", pa.bool_()),
        pa.field("created_at", _TS),
        pa.field("created_by_email", pa.string()),
        pa.field("last_modified_at", _TS),
        pa.field("last_modified_by_email", pa.string()),
        pa.field("deleted", pa.bool_(), nullable=False),
        pa.field("seen_at", _TS, nullable=False),
    ]
)


def _email(user: Any) -> str | None:
    return user.get("email") if isinstance(user, Mapping) else None


def insight_row(project_id: int, item: Mapping[str, Any], seen_at: datetime, deleted: bool) -> dict[str, Any]:
    """One `insights` row; `deleted` is ours to decide (PostHog's list never shows deleted ones)."""
    dashboards = item.get("dashboards")
    if dashboards is None and isinstance(item.get("dashboard_tiles"), list):
        dashboards = [t.get("dashboard_id") for t in item["dashboard_tiles"] if isinstance(t, Mapping)]
    return {
        "project_id": project_id,
        "id": int(item["id"]),
        "short_id": item.get("short_id"),
        "name": item.get("name"),
        "derived_name": item.get("derived_name"),
        "description": item.get("description"),
        "kind": insight_kind(item),
        "query_json": json_text(item.get("query")),
        "filters_json": json_text(item.get("filters")),
        "tags_json": json_text(item.get("tags") or []),
        "dashboards_json": json_text(dashboards or []),
        "saved": item.get("saved"),
        "favorited": item.get("favorited"),
        "created_at": parse_time(item.get("created_at")),
        "created_by_email": _email(item.get("created_by")),
        "last_modified_at": parse_time(item.get("last_modified_at")),
        "last_modified_by_email": _email(item.get("last_modified_by")),
        "deleted": bool(deleted or item.get("deleted")),
        "seen_at": seen_at,
    }


RESULTS_SCHEMA = pa.schema(
    [
        pa.field("project_id", pa.int64(), nullable=False),
        pa.field("insight_id", pa.int64(), nullable=False),
        pa.field("snapshot", _TS, nullable=False),
        pa.field("variant", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_message", pa.string()),
        pa.field("refresh_mode", pa.string(), nullable=False),
        pa.field("fetched_via", pa.string(), nullable=False),
        pa.field("kind", pa.string()),
        pa.field("shape", pa.string()),
        pa.field("shape_recognised", pa.bool_()),
        pa.field("tidy_rows", pa.int64()),
        pa.field("is_cached", pa.bool_()),
        pa.field("last_refresh", _TS),
        pa.field("seen_at", _TS, nullable=False),
        pa.field("cache_target_age", _TS),
        pa.field("next_allowed_client_refresh", _TS),
        pa.field("timezone", pa.string()),
        pa.field("columns_json", pa.string()),
        pa.field("types_json", pa.string()),
        pa.field("hogql", pa.string()),
        pa.field("has_more", pa.bool_()),
        pa.field("filters_hash", pa.string()),
        pa.field("query_id", pa.string()),
        pa.field("from_dashboard", pa.int64()),
        pa.field("result_json", pa.string()),
    ]
)


@dataclass(frozen=True)
class Outcome:
    """What one insight came back as in this run; becomes one `insight_results` row."""

    project_id: int
    insight_id: int
    status: str
    seen_at: datetime
    refresh_mode: str
    fetched_via: str  # list | retrieve | poll
    response: Mapping[str, Any] | None = None
    error_message: str | None = None
    query_id: str | None = None
    variant: str = ""
    from_dashboard: int | None = None

    @property
    def last_refresh(self) -> datetime | None:
        return parse_time(self.response.get("last_refresh")) if self.response else None


def result_row(
    outcome: Outcome, snapshot: datetime, kind: str, shaped: ShapeOutcome | None, result_json: str | None
) -> dict[str, Any]:
    """One `insight_results` row. An `ok` result whose shape is not turned into tidy rows says why in
    `error_message`: its numbers are only in `result_json`."""
    response = outcome.response or {}
    note = None
    if shaped is not None and not shaped.recognised:
        note = f"result shape not turned into rows ({shaped.note or shaped.shape}); see result_json"
    return {
        "project_id": outcome.project_id,
        "insight_id": outcome.insight_id,
        "snapshot": snapshot,
        "variant": outcome.variant,
        "status": outcome.status,
        "error_message": outcome.error_message or note,
        "refresh_mode": outcome.refresh_mode,
        "fetched_via": outcome.fetched_via,
        "kind": kind,
        "shape": shaped.shape if shaped else None,
        "shape_recognised": shaped.recognised if shaped else None,
        "tidy_rows": shaped.rows if shaped else 0,
        "is_cached": response.get("is_cached"),
        "last_refresh": outcome.last_refresh,
        "seen_at": outcome.seen_at,
        "cache_target_age": parse_time(response.get("cache_target_age")),
        "next_allowed_client_refresh": parse_time(response.get("next_allowed_client_refresh")),
        "timezone": response.get("timezone"),
        "columns_json": json_text(response.get("columns")),
        "types_json": json_text(response.get("types")),
        "hogql": response.get("hogql"),
        "has_more": response.get("hasMore"),
        "filters_hash": response.get("filters_hash"),
        "query_id": outcome.query_id,
        "from_dashboard": outcome.from_dashboard,
        "result_json": result_json,
    }


def table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


DASHBOARDS_SCHEMA = pa.schema(
    [
        pa.field("project_id", pa.int64(), nullable=False),
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("description", pa.string()),
        pa.field("pinned", pa.bool_()),
        pa.field("tags_json", pa.string()),
        pa.field("creation_mode", pa.string()),
        pa.field("is_shared", pa.bool_()),
        pa.field("created_at", _TS),
        pa.field("created_by_email", pa.string()),
        pa.field("last_accessed_at", _TS),
        pa.field("deleted", pa.bool_(), nullable=False),
        pa.field("seen_at", _TS, nullable=False),
    ]
)


def dashboard_row(project_id: int, item: Mapping[str, Any], seen_at: datetime) -> dict[str, Any]:
    """One `dashboards` row from an item of PostHog's dashboards list (which never shows deleted ones)."""
    return {
        "project_id": project_id,
        "id": int(item["id"]),
        "name": item.get("name"),
        "description": item.get("description"),
        "pinned": item.get("pinned"),
        "tags_json": json_text(item.get("tags") or []),
        "creation_mode": item.get("creation_mode"),
        "is_shared": item.get("is_shared"),
        "created_at": parse_time(item.get("created_at")),
        "created_by_email": _email(item.get("created_by")),
        "last_accessed_at": parse_time(item.get("last_accessed_at")),
        "deleted": bool(item.get("deleted")),
        "seen_at": seen_at,
    }


DASHBOARD_TILES_SCHEMA = pa.schema(
    [
        pa.field("project_id", pa.int64(), nullable=False),
        pa.field("tile_id", pa.int64(), nullable=False),
        pa.field("dashboard_id", pa.int64(), nullable=False),
        pa.field("insight_id", pa.int64(), nullable=False),
        pa.field("deleted", pa.bool_(), nullable=False),
        pa.field("seen_at", _TS, nullable=False),
    ]
)


def tile_row(
    project_id: int, tile_id: int, dashboard_id: int, insight_id: int, seen_at: datetime, deleted: bool
) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "tile_id": tile_id,
        "dashboard_id": dashboard_id,
        "insight_id": insight_id,
        "deleted": deleted,
        "seen_at": seen_at,
    }
