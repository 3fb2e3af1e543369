"""What kind of insight a payload is, from its query (current) or its filters (legacy)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

_QUERY_KINDS: Final[dict[str, str]] = {
    "TrendsQuery": "trends",
    "StickinessQuery": "stickiness",
    "LifecycleQuery": "lifecycle",
    "FunnelsQuery": "funnels",
    "RetentionQuery": "retention",
    "PathsQuery": "paths",
    "HogQLQuery": "sql",
    # a trends query with the CalendarHeatmap display, as its own query kind (web analytics' active hours);
    # its result is the heatmap grid itself
    "CalendarHeatmapQuery": "trends",
}
_TABLE_NODES: Final = frozenset({"DataTableNode", "DataVisualizationNode"})
# Sources whose result is a table of rows (arrays with `columns`, or objects), when saved bare, without
# their DataTableNode wrapper. Wrapped, any source other than HogQLQuery is a table.
_TABLE_SOURCES: Final = frozenset(
    {
        "EventsQuery",
        "ActorsQuery",
        "PersonsNode",
        "GroupsQuery",
        "SessionsQuery",
        "HogQuery",
        "WebOverviewQuery",
        "WebStatsTableQuery",
        "WebGoalsQuery",
        "WebExternalClicksTableQuery",
        "SessionAttributionExplorerQuery",
    }
)
_LEGACY_KINDS: Final[dict[str, str]] = {
    "TRENDS": "trends",
    "STICKINESS": "stickiness",
    "LIFECYCLE": "lifecycle",
    "FUNNELS": "funnels",
    "RETENTION": "retention",
    "PATHS": "paths",
}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _from_query(query: Mapping[str, Any]) -> str | None:
    kind = query.get("kind")
    source = _mapping(query.get("source"))
    source_kind = source.get("kind")
    if kind == "InsightVizNode":
        found = _QUERY_KINDS.get(source_kind) if isinstance(source_kind, str) else None
        return found if found != "sql" else None
    if kind in _TABLE_NODES:
        if not isinstance(source_kind, str) or not source_kind:
            return None
        return "sql" if source_kind == "HogQLQuery" else "table"
    # A bare source without its wrapper (insights created through the API can be saved so).
    if not isinstance(kind, str):
        return None
    return "table" if kind in _TABLE_SOURCES else _QUERY_KINDS.get(kind)


def insight_kind(insight: Mapping[str, Any]) -> str:
    """The insight's kind: trends, stickiness, lifecycle, funnels, retention, paths, sql, table or unknown.

    `sql` is a HogQL query (in a DataTableNode / DataVisualizationNode, or bare); `table` a DataTableNode /
    DataVisualizationNode over any other source (events, persons, web analytics, Hog...), or such a source
    bare. The query wins over the legacy filters: current PostHog keeps `filters` as `{}` beside the query.
    """
    if not isinstance(insight, Mapping):
        return "unknown"
    found = _from_query(_mapping(insight.get("query")))
    if found is not None:
        return found
    legacy = _mapping(insight.get("filters")).get("insight")
    if isinstance(legacy, str):
        return _LEGACY_KINDS.get(legacy.upper(), "unknown")
    return "unknown"


def funnel_viz_type(insight: Mapping[str, Any]) -> str | None:
    """The funnel viz type asked for (steps, time_to_convert, trends) or None; only ever a hint."""
    source = _mapping(_mapping(insight.get("query")).get("source"))
    viz = _mapping(source.get("funnelsFilter")).get("funnelVizType")
    if not isinstance(viz, str):
        viz = _mapping(insight.get("filters")).get("funnel_viz_type")
    return viz if isinstance(viz, str) else None
