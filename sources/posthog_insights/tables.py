"""The tables users query, by name, with their keys: part of the interface (names never change)."""

from __future__ import annotations

from typing import Final

from posthog_insights.shapes import TIDY_PRIMARY_KEYS

INSIGHTS: Final = "insights"
RESULTS: Final = "insight_results"
ACTIVITY: Final = "insight_activity"
DASHBOARDS: Final = "dashboards"
DASHBOARD_TILES: Final = "dashboard_tiles"
TIDY: Final[tuple[str, ...]] = (
    "trend_points",
    "funnel_steps",
    "funnel_conversion_bins",
    "retention_cells",
    "path_edges",
    "sql_rows",
)

# Outcome statuses in `insight_results`.
STATUS_OK: Final = "ok"
STATUS_CACHE_MISS: Final = "cache_miss"
STATUS_PENDING: Final = "pending"
STATUS_ERROR: Final = "error"

# A snapshot never changes once PostHog computed it: result tables are merged a whole snapshot at a time
# (delete-insert on this merge key), so a re-run never duplicates and history accumulates.
SNAPSHOT_KEY: Final[tuple[str, ...]] = ("project_id", "insight_id", "snapshot", "variant")
PRIMARY_KEYS: Final[dict[str, tuple[str, ...]]] = {
    INSIGHTS: ("project_id", "id"),
    RESULTS: SNAPSHOT_KEY,
    ACTIVITY: ("project_id", "id"),
    DASHBOARDS: ("project_id", "id"),
    # a tile's id is PostHog's primary key: a tile moved to another dashboard keeps it
    DASHBOARD_TILES: ("project_id", "tile_id"),
    **TIDY_PRIMARY_KEYS,
}
