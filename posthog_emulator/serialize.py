"""PostHog's representations: the insight's `InsightSerializer` (retrieve, list) and
`InsightBasicSerializer` (`basic=true`, my_last_viewed); the dashboard's `DashboardBasicSerializer` (list)
and `DashboardSerializer` (retrieve, with its tiles).

Field names and order follow PostHog's serializers; the result fields come in from the store as one
dict (`result` ... `filters_hash`), already resolved for the request's refresh mode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from posthog_emulator.models import BASE, CAN_EDIT, EVERYONE_CAN_EDIT, Dashboard, Insight, Variant
from posthog_emulator.timeutil import iso

UserLookup = Callable[[int], dict[str, Any]]


def tiles(insight: Insight) -> list[dict[str, Any]]:
    """`DashboardTileBasicSerializer` over `DashboardTile.objects` (live tiles on live dashboards)."""
    return [
        {"id": tile_id, "dashboard_id": dashboard_id, "deleted": None}
        for tile_id, dashboard_id in insight.live_tiles
    ]


def filters_and_query(insight: Insight, variant: Variant) -> tuple[dict[str, Any], Any]:
    """The `filters` and `query` a request sees: dashboard or override dates applied, like PostHog's
    `apply_dashboard_filters_to_dict`; a legacy insight shows its filters and the derived query."""
    query = insight.effective_query
    filters = insight.filters
    if variant.filters:
        overrides = {k: v for k, v in variant.filters.items() if k in ("date_from", "date_to", "properties")}
        if query is not None and ("date_from" in overrides or "date_to" in overrides):
            query = copy.deepcopy(query)
            source = query.get("source")
            if isinstance(source, dict) and query.get("kind") == "InsightVizNode":
                source["dateRange"] = {
                    "date_from": overrides.get("date_from"),
                    "date_to": overrides.get("date_to"),
                }
        if not insight.query:
            filters = {**filters, **overrides}
    return filters, query


def full(
    insight: Insight, fields: dict[str, Any], user: UserLookup, variant: Variant = BASE
) -> dict[str, Any]:
    """InsightSerializer's representation (the retrieve and the non-basic list)."""
    filters, query = filters_and_query(insight, variant)
    representation = {
        "id": insight.id,
        "short_id": insight.short_id,
        "name": insight.name,
        "derived_name": insight.derived_name,
        "filters": filters,
        "query": query,
        "order": insight.order,
        "deleted": insight.deleted,
        "dashboards": list(insight.dashboards),
        "dashboard_tiles": tiles(insight),
        "last_refresh": fields["last_refresh"],
        "cache_target_age": fields["cache_target_age"],
        "next_allowed_client_refresh": fields["next_allowed_client_refresh"],
        "result": fields["result"],
        "hasMore": fields["hasMore"],
        "columns": fields["columns"],
        "created_at": iso(insight.created_at),
        "created_by": user(insight.created_by),
        "description": insight.description,
        "updated_at": iso(insight.updated_at),
        "tags": list(insight.tags),
        "favorited": insight.favorited,
        "saved": insight.saved,
        "last_modified_at": iso(insight.last_modified_at),
        "last_modified_by": user(insight.last_modified_by),
        "is_sample": False,
        "effective_restriction_level": 21,
        "effective_privilege_level": 37,
        "user_access_level": "editor",
        "timezone": fields["timezone"],
        "is_cached": fields["is_cached"],
        "query_status": fields["query_status"],
        "hogql": fields["hogql"],
        "types": fields["types"],
        "resolved_date_range": fields["resolved_date_range"],
        "alerts": [],
        "last_viewed_at": iso(insight.last_viewed_at),
        "filters_hash": fields["filters_hash"],
    }
    if variant.dashboard_id is not None:  # PostHog adds the tile's look when read from a dashboard
        representation["color"] = None
        representation["layouts"] = {}
    return representation


def basic(insight: Insight, user: UserLookup) -> dict[str, Any]:
    """InsightBasicSerializer's representation (`basic=true`): metadata only.

    `last_refresh` here is the model's deprecated column, which current PostHog no longer writes:
    it is null, so a client cannot mistake it for the cache's freshness.
    """
    return {
        "id": insight.id,
        "short_id": insight.short_id,
        "name": insight.name,
        "derived_name": insight.derived_name,
        "filters": insight.filters,
        "query": insight.effective_query,
        "dashboards": list(insight.dashboards),
        "dashboard_tiles": tiles(insight),
        "description": insight.description,
        "last_refresh": None,
        "refreshing": False,
        "saved": insight.saved,
        "tags": list(insight.tags),
        "updated_at": iso(insight.updated_at),
        "created_by": user(insight.created_by),
        "created_at": iso(insight.created_at),
        "last_modified_at": iso(insight.last_modified_at),
        "favorited": insight.favorited,
        "user_access_level": "editor",
        "last_viewed_at": iso(insight.last_viewed_at),
    }


def dashboard_basic(dashboard: Dashboard, user: UserLookup) -> dict[str, Any]:
    """DashboardBasicSerializer's representation (the list): metadata only, no filters, no tiles."""
    return {
        "id": dashboard.id,
        "name": dashboard.name,
        "description": dashboard.description,
        "pinned": dashboard.pinned,
        "created_at": iso(dashboard.created_at),
        "created_by": user(dashboard.created_by),
        "last_accessed_at": iso(dashboard.last_accessed_at),
        "last_viewed_at": None,  # this user's own views (the file system's view log): none here
        "is_shared": False,
        "deleted": dashboard.deleted,
        "creation_mode": dashboard.creation_mode,
        "tags": list(dashboard.tags),
        "restriction_level": EVERYONE_CAN_EDIT,
        "effective_restriction_level": EVERYONE_CAN_EDIT,
        "effective_privilege_level": CAN_EDIT,
        "user_access_level": "editor",
        "access_control_version": "v2",
        "last_refresh": None,
        "team_id": dashboard.project_id,
    }


def dashboard_full(
    dashboard: Dashboard, user: UserLookup, tile_insights: list[tuple[int, dict[str, Any]]]
) -> dict[str, Any]:
    """DashboardSerializer's representation (the retrieve): DASHBOARD_SHARED_FIELDS and the tiles, each
    with its insight's whole representation (result included) as `tile_insights` gives them."""
    basic = dashboard_basic(dashboard, user)
    head = ("id", "name", "description", "pinned", "created_at", "created_by", "last_accessed_at")
    tail = ("tags", "restriction_level", "effective_restriction_level", "effective_privilege_level")
    representation: dict[str, Any] = {key: basic[key] for key in head}
    representation |= {key: basic[key] for key in ("last_viewed_at", "is_shared", "deleted", "creation_mode")}
    representation |= {
        "filters": dict(dashboard.filters),
        "variables": dict(dashboard.variables),
        "breakdown_colors": [],
        "data_color_theme_id": None,
    }
    representation |= {key: basic[key] for key in tail}
    representation |= {
        "user_access_level": basic["user_access_level"],
        "access_control_version": basic["access_control_version"],
        "last_refresh": None,
        "persisted_filters": dict(dashboard.filters) or None,
        "persisted_variables": dict(dashboard.variables) or None,
        "team_id": dashboard.project_id,
        "quick_filter_ids": [],
        "tiles": [],
    }
    for order, (tile_id, insight) in enumerate(tile_insights):
        representation["tiles"].append(
            {
                "id": tile_id,
                "insight": insight,
                "text": None,
                "button_tile": None,
                "layouts": {},
                "color": None,
                "filters_overrides": {},
                "show_description": None,
                "transparent_background": None,
                "order": order,
                "last_refresh": insight.get("last_refresh"),
                "is_cached": insight.get("is_cached", False),
            }
        )
    return representation
