"""Seeded synthetic insights and results, in today's PostHog shapes.

Two halves. `make_query` / `query_from_filters` / `shape_of` describe *what* an insight is: the query
JSON PostHog stores today (an `InsightVizNode` around a `TrendsQuery`, `FunnelsQuery`, ..., or a
`DataVisualizationNode` / `DataTableNode` around a `HogQLQuery`), and the legacy `filters` a few old
insights still carry. `synthesize` makes *a result* for a shape: every number is drawn from a RNG
seeded by (emulator seed, insight id, cache variant, date window, compute generation), so the same
calculation always gives the same numbers, and a recompute (a new generation) or another window gives
different ones. Nothing here knows about HTTP or caching.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

INSIGHT_KINDS: tuple[str, ...] = ("TRENDS", "FUNNELS", "RETENTION", "PATHS", "STICKINESS", "LIFECYCLE", "SQL")

SOURCE_KIND_BY_INSIGHT: dict[str, str] = {
    "TRENDS": "TrendsQuery",
    "FUNNELS": "FunnelsQuery",
    "RETENTION": "RetentionQuery",
    "PATHS": "PathsQuery",
    "STICKINESS": "StickinessQuery",
    "LIFECYCLE": "LifecycleQuery",
}
INSIGHT_BY_SOURCE_KIND: dict[str, str] = {value: key for key, value in SOURCE_KIND_BY_INSIGHT.items()}
WRAPPER_KINDS: frozenset[str] = frozenset({"DataTableNode", "DataVisualizationNode", "InsightVizNode"})
# Trends displays that show one number per series (aggregated_value, no data points).
NUMBER_DISPLAYS: frozenset[str] = frozenset({"BoldNumber", "ActionsPie", "ActionsTable", "WorldMap"})

EVENTS: tuple[str, ...] = (
    "$pageview",
    "signed_up",
    "purchase",
    "$autocapture",
    "invite_sent",
    "file_uploaded",
    "subscription_started",
    "$screen",
)
BROWSERS: tuple[str, ...] = ("Chrome", "Safari", "Firefox", "Edge", "Opera")
COUNTRIES: tuple[str, ...] = ("US", "DE", "GB", "FR", "BR", "IN")
PAGES: tuple[str, ...] = (
    "/home",
    "/pricing",
    "/signup",
    "/docs",
    "/blog",
    "/product",
    "/cart",
    "/checkout",
    "/login",
    "/features",
)
LIFECYCLE_STATUSES: tuple[str, ...] = ("new", "returning", "resurrecting", "dormant")
MAX_WINDOW_DAYS = 20_000


# --------------------------------------------------------------------------------------------------
# Insight definitions
# --------------------------------------------------------------------------------------------------


def _events_node(event: str, math_: str | None = None) -> dict[str, Any]:
    node: dict[str, Any] = {"kind": "EventsNode", "event": event, "name": event}
    if math_:
        node["math"] = math_
    return node


def _properties() -> dict[str, Any]:
    return {"type": "AND", "values": [{"type": "AND", "values": []}]}


def make_query(kind: str, variant: str, rng: random.Random, points: int) -> dict[str, Any]:
    """The query JSON of a new insight of `kind` (an INSIGHT_KINDS entry) and `variant`."""
    events = rng.sample(EVENTS, 3)
    date_range = {"date_from": f"-{max(points - 1, 1)}d"}
    if kind == "SQL":
        return _sql_query(variant)
    source: dict[str, Any] = {"kind": SOURCE_KIND_BY_INSIGHT[kind], "properties": _properties()}
    if kind == "TRENDS":
        n_series = 1 if variant in ("breakdown", "compare") else rng.randint(1, 2)
        display = rng.choice(("BoldNumber", "ActionsPie")) if variant == "number" else "ActionsLineGraph"
        source |= {
            "series": [_events_node(event, rng.choice(("total", "dau"))) for event in events[:n_series]],
            "interval": "day",
            "dateRange": date_range,
            "trendsFilter": {"display": display},
            "version": 2,
        }
        if variant == "breakdown":
            source["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
        if variant == "compare":
            source["compareFilter"] = {"compare": True}
    elif kind == "STICKINESS":
        source |= {"series": [_events_node(events[0], "dau")], "interval": "day", "dateRange": date_range}
        source["stickinessFilter"] = {}
    elif kind == "LIFECYCLE":
        source |= {"series": [_events_node(events[0])], "interval": "day", "dateRange": date_range}
        source["lifecycleFilter"] = {"showValuesOnSeries": False}
    elif kind == "FUNNELS":
        n_steps = rng.randint(2, 4)
        source |= {
            "series": [_events_node(event) for event in rng.sample(EVENTS, n_steps)],
            "interval": "day",
            "dateRange": date_range,
            "funnelsFilter": {"funnelVizType": variant if variant != "breakdown" else "steps"},
        }
        if variant == "breakdown":
            source["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
    elif kind == "RETENTION":
        source["retentionFilter"] = {
            "period": "Day",
            "totalIntervals": 11,
            "retentionType": "retention_first_time",
            "targetEntity": {"id": events[0], "name": events[0], "type": "events"},
            "returningEntity": {"id": events[1], "name": events[1], "type": "events"},
            "meanRetentionCalculation": "simple",
        }
        source["dateRange"] = {"date_from": "-11d"}
        if variant == "breakdown":
            source["breakdownFilter"] = {"breakdown": "$geoip_country_code", "breakdown_type": "person"}
    elif kind == "PATHS":
        source["pathsFilter"] = {
            "includeEventTypes": ["$pageview"],
            "stepLimit": rng.randint(4, 6),
            "excludeEvents": [],
            "pathGroupings": [],
            "localPathCleaningFilters": [],
        }
    return {"kind": "InsightVizNode", "source": source, "full": True}


def _sql_query(variant: str) -> dict[str, Any]:
    if variant == "table":
        text = (
            "select event, person.properties.email, properties.$browser, count()\n"
            "from events\nwhere timestamp > now() - interval 1 day\n"
            "group by event, properties.$browser, person.properties.email\norder by count() desc"
        )
        return {"kind": "DataTableNode", "source": {"kind": "HogQLQuery", "query": text}, "full": True}
    text = (
        "SELECT toStartOfDay(timestamp) AS day, count() AS pageviews, count(DISTINCT person_id) AS users,\n"
        "       nullIf(countIf(event = 'signed_up'), 0) AS signups\n"
        "FROM events\nGROUP BY day\nORDER BY day"
    )
    return {
        "kind": "DataVisualizationNode",
        "source": {"kind": "HogQLQuery", "query": text},
        "display": "ActionsLineGraph",
        "chartSettings": {"xAxis": {"column": "day"}, "yAxis": [{"column": "pageviews"}]},
    }


def make_legacy_filters(kind: str, variant: str, rng: random.Random, points: int) -> dict[str, Any]:
    """Legacy `filters` of an old insight (stored with `query` null), as PostHog kept them before 2024."""
    events = rng.sample(EVENTS, 3)
    entities = [
        {"id": event, "type": "events", "order": index, "name": event, "math": "total"}
        for index, event in enumerate(events)
    ]
    filters: dict[str, Any] = {"insight": kind, "date_from": f"-{max(points - 1, 1)}d", "interval": "day"}
    if kind == "TRENDS":
        filters |= {"events": entities[:1], "display": "ActionsLineGraph"}
        if variant == "breakdown":
            filters |= {"breakdown": "$browser", "breakdown_type": "event"}
        if variant == "compare":
            filters["compare"] = True
        if variant == "number":
            filters["display"] = "BoldNumber"
    elif kind in ("STICKINESS", "LIFECYCLE"):
        filters["events"] = entities[:1]
        if kind == "LIFECYCLE":
            filters["shown_as"] = "Lifecycle"
    elif kind == "FUNNELS":
        filters |= {"events": entities, "funnel_viz_type": variant if variant != "breakdown" else "steps"}
        if variant == "breakdown":
            filters |= {"breakdown": "$browser", "breakdown_type": "event"}
    elif kind == "RETENTION":
        filters |= {
            "target_entity": {"id": events[0], "type": "events", "name": events[0]},
            "returning_entity": {"id": events[1], "type": "events", "name": events[1]},
            "period": "Day",
            "total_intervals": 11,
            "retention_type": "retention_first_time",
        }
    elif kind == "PATHS":
        filters |= {"include_event_types": ["$pageview"], "step_limit": 5}
    return filters


def query_from_filters(filters: dict[str, Any]) -> dict[str, Any] | None:
    """The query PostHog derives from legacy filters (its `filter_to_query`), in the same node shapes."""
    insight = str(filters.get("insight") or "TRENDS").upper()
    if insight not in SOURCE_KIND_BY_INSIGHT:
        return None
    source: dict[str, Any] = {"kind": SOURCE_KIND_BY_INSIGHT[insight], "properties": _properties()}
    if filters.get("date_from") or filters.get("date_to"):
        source["dateRange"] = {
            key: filters[key] for key in ("date_from", "date_to") if filters.get(key) is not None
        }
    if insight in ("TRENDS", "FUNNELS", "STICKINESS", "LIFECYCLE"):
        entities = filters.get("events") or [{"id": "$pageview", "name": "$pageview"}]
        source["series"] = [
            _events_node(str(entity.get("id")), entity.get("math"))
            for entity in entities
            if isinstance(entity, dict)
        ]
        source["interval"] = filters.get("interval") or "day"
    if filters.get("breakdown"):
        source["breakdownFilter"] = {
            "breakdown": filters["breakdown"],
            "breakdown_type": filters.get("breakdown_type") or "event",
        }
    if insight == "TRENDS":
        source["trendsFilter"] = {"display": filters.get("display") or "ActionsLineGraph"}
        if filters.get("compare"):
            source["compareFilter"] = {"compare": True}
    elif insight == "FUNNELS":
        source["funnelsFilter"] = {"funnelVizType": filters.get("funnel_viz_type") or "steps"}
    elif insight == "RETENTION":
        source["retentionFilter"] = {
            "period": filters.get("period") or "Day",
            "totalIntervals": filters.get("total_intervals") or 11,
            "retentionType": filters.get("retention_type") or "retention_first_time",
            "targetEntity": filters.get("target_entity"),
            "returningEntity": filters.get("returning_entity"),
        }
    elif insight == "PATHS":
        source["pathsFilter"] = {
            "includeEventTypes": filters.get("include_event_types") or ["$pageview"],
            "stepLimit": filters.get("step_limit") or 5,
        }
    elif insight == "LIFECYCLE":
        source["lifecycleFilter"] = {}
    elif insight == "STICKINESS":
        source["stickinessFilter"] = {}
    return {"kind": "InsightVizNode", "source": source, "full": True}


def insight_kind(query: dict[str, Any] | None, filters: dict[str, Any]) -> str:
    """The value of the list's `insight=` filter that matches this insight (TRENDS ... SQL, or JSON)."""
    if not query:
        return str(filters.get("insight") or "TRENDS").upper()
    source = query.get("source") if isinstance(query.get("source"), dict) else None
    if query.get("kind") in WRAPPER_KINDS and source is not None:
        if source.get("kind") == "HogQLQuery":
            return "SQL"
        if query.get("kind") == "InsightVizNode" and source.get("kind") in INSIGHT_BY_SOURCE_KIND:
            return INSIGHT_BY_SOURCE_KIND[str(source["kind"])]
    return "JSON"


@dataclass(frozen=True)
class Shape:
    """What a result looks like: kind and display variant, read from the query JSON."""

    kind: str
    variant: str
    series: tuple[str, ...]
    breakdown: bool = False
    intervals: int = 11
    step_limit: int = 5
    sql_text: str = ""
    date_from: str | None = None
    date_to: str | None = None


def shape_of(query: dict[str, Any] | None, filters: dict[str, Any]) -> Shape:
    """Read the result shape from an insight's (possibly derived) query."""
    effective = query or query_from_filters(filters) or {}
    kind = insight_kind(effective or None, filters)
    source: dict[str, Any] = effective.get("source") or {}
    date_range = source.get("dateRange") or {}
    date_from = date_range.get("date_from") if isinstance(date_range, dict) else None
    date_to = date_range.get("date_to") if isinstance(date_range, dict) else None
    series = tuple(
        str(node.get("custom_name") or node.get("name") or node.get("event") or "All events")
        for node in (source.get("series") or [])
        if isinstance(node, dict)
    ) or ("$pageview",)
    breakdown = bool((source.get("breakdownFilter") or {}).get("breakdown"))
    if kind == "SQL":
        variant = "table" if effective.get("kind") == "DataTableNode" else "viz"
        return Shape(kind, variant, (), sql_text=str(source.get("query") or ""))
    if kind == "JSON":
        return Shape(kind, "table", (), sql_text=str(source.get("kind") or effective.get("kind") or ""))
    if kind == "TRENDS":
        display = (source.get("trendsFilter") or {}).get("display") or "ActionsLineGraph"
        compare = bool((source.get("compareFilter") or {}).get("compare"))
        variant = "number" if display in NUMBER_DISPLAYS else "compare" if compare else "line"
        return Shape(kind, variant, series, breakdown, date_from=date_from, date_to=date_to)
    if kind == "FUNNELS":
        viz = (source.get("funnelsFilter") or {}).get("funnelVizType") or "steps"
        variant = viz if viz in ("steps", "time_to_convert", "trends") else "steps"
        return Shape(kind, variant, series, breakdown, date_from=date_from, date_to=date_to)
    if kind == "RETENTION":
        intervals = int((source.get("retentionFilter") or {}).get("totalIntervals") or 11)
        return Shape(kind, "cohorts", series, breakdown, intervals=max(1, min(intervals, 100)))
    if kind == "PATHS":
        step_limit = int((source.get("pathsFilter") or {}).get("stepLimit") or 5)
        return Shape(kind, "links", series, step_limit=max(2, min(step_limit, 20)))
    return Shape(kind, "series", series, date_from=date_from, date_to=date_to)


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The inclusive day range a calculation covers."""

    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def key(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"


@dataclass(frozen=True)
class Computed:
    """One calculation's output: the result plus the response fields that travel with it."""

    result: Any
    columns: list[str] | None
    types: list[list[str]] | None
    hogql: str
    has_more: bool
    resolved_date_range: dict[str, str]


def rng_for(*parts: object) -> random.Random:
    """A RNG seeded by a stable hash of `parts` (Python's own `hash` is salted per process)."""
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _label(day: date) -> str:
    """PostHog's day label, e.g. `4-Mar-2022` (English month names, whatever the locale)."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def _action(name: str, order: int) -> dict[str, Any]:
    return {
        "id": name,
        "type": "events",
        "order": order,
        "name": name,
        "custom_name": None,
        "math": None,
        "math_property": None,
        "math_group_type_index": None,
        "properties": {},
    }


def _walk(rng: random.Random, n: int, base: float) -> list[int]:
    """A plausible daily series: a weekly rhythm, a drift and noise, never negative."""
    phase = rng.random() * 7.0
    drift = rng.uniform(-0.3, 0.5) / max(n, 1)
    out: list[int] = []
    for index in range(n):
        level = base * (1.0 + drift * index) * (1.0 + 0.25 * math.sin((index + phase) * 2 * math.pi / 7))
        out.append(max(0, int(level + rng.gauss(0.0, base * 0.08))))
    return out


def synthesize(shape: Shape, window: Window, points: int, rng: random.Random) -> Computed:
    """A result of `shape` over `window`; `points` bounds the rows of SQL results."""
    days = [window.start + timedelta(days=offset) for offset in range(window.days)]
    resolved = {
        "date_from": datetime.combine(window.start, datetime.min.time()).isoformat() + "Z",
        "date_to": datetime.combine(window.end, datetime.max.time()).isoformat() + "Z",
    }
    hogql = _hogql_for(shape)
    if shape.kind in ("SQL", "JSON"):
        rows, columns, types, has_more = _sql_rows(shape, days, points, rng)
        return Computed(rows, columns, types, shape.sql_text or hogql, has_more, resolved)
    result: Any
    if shape.kind == "TRENDS":
        result = _trends(shape, days, rng)
    elif shape.kind == "STICKINESS":
        result = _stickiness(shape, len(days), rng)
    elif shape.kind == "LIFECYCLE":
        result = _lifecycle(shape, days, rng)
    elif shape.kind == "FUNNELS":
        result = _funnel(shape, days, rng)
    elif shape.kind == "RETENTION":
        result = _retention(shape, window.end, rng)
    else:
        result = _paths(shape, rng)
    return Computed(result, None, None, hogql, False, resolved)


def _trends(shape: Shape, days: list[date], rng: random.Random) -> list[dict[str, Any]]:
    iso = [day.isoformat() for day in days]
    labels = [_label(day) for day in days]
    out: list[dict[str, Any]] = []
    breakdowns: list[str | None] = list(rng.sample(BROWSERS, 3)) if shape.breakdown else [None]
    for order, name in enumerate(shape.series):
        for breakdown_value in breakdowns:
            periods = ("current", "previous") if shape.variant == "compare" else (None,)
            for compare_label in periods:
                data = _walk(rng, len(days), rng.uniform(20, 5000))
                label = name if breakdown_value is None else f"{name} - {breakdown_value}"
                series: dict[str, Any] = {"action": _action(name, order), "label": label, "count": sum(data)}
                if shape.variant == "number":
                    series |= {"data": [], "labels": [], "days": iso, "aggregated_value": sum(data)}
                else:
                    series_days, series_labels = iso, labels
                    if compare_label == "previous":
                        shifted = [day - timedelta(days=len(days)) for day in days]
                        series_days = [day.isoformat() for day in shifted]
                        series_labels = [_label(day) for day in shifted]
                    series |= {"data": data, "labels": series_labels, "days": series_days}
                if breakdown_value is not None:
                    series["breakdown_value"] = breakdown_value
                if compare_label is not None:
                    series |= {"compare": True, "compare_label": compare_label}
                out.append(series)
    return out


def _stickiness(shape: Shape, n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for order, name in enumerate(shape.series):
        total = rng.randint(100, 20000)
        data = [max(0, int(total * math.exp(-0.6 * index) * rng.uniform(0.8, 1.2))) for index in range(n)]
        out.append(
            {
                "action": _action(name, order),
                "label": name,
                "count": sum(data),
                "data": data,
                "labels": [f"{index} day" if index == 1 else f"{index} days" for index in range(1, n + 1)],
                "days": list(range(1, n + 1)),
            }
        )
    return out


def _lifecycle(shape: Shape, days: list[date], rng: random.Random) -> list[dict[str, Any]]:
    iso = [day.isoformat() for day in days]
    labels = [_label(day) for day in days]
    out = []
    for order, name in enumerate(shape.series):
        for status in LIFECYCLE_STATUSES:
            data = _walk(rng, len(days), rng.uniform(10, 800))
            if status == "dormant":
                data = [-value for value in data]
            out.append(
                {
                    "action": _action(name, order),
                    "label": f"{name} - {status}",
                    "count": sum(data),
                    "data": data,
                    "labels": labels,
                    "days": iso,
                    "status": status,
                }
            )
    return out


def _funnel_steps(shape: Shape, rng: random.Random, top: int, breakdown: str | None) -> list[dict[str, Any]]:
    steps = []
    count = top
    for order, name in enumerate(shape.series):
        if order > 0:
            count = int(count * rng.uniform(0.3, 0.9))
        average = None if order == 0 else round(rng.uniform(5.0, 5000.0), 6)
        median = None if order == 0 else round(rng.uniform(1.0, average or 1.0), 3)
        step: dict[str, Any] = {
            "action_id": name,
            "name": name,
            "custom_name": None,
            "order": order,
            "count": count,
            "type": "events",
            "average_conversion_time": average,
            "median_conversion_time": median,
        }
        if breakdown is not None:
            step |= {"breakdown": [breakdown], "breakdown_value": [breakdown]}
        steps.append(step)
    return steps


def _funnel(shape: Shape, days: list[date], rng: random.Random) -> Any:
    if shape.variant == "time_to_convert":
        width = rng.choice((60, 300, 3600))
        bins = [[index * width, rng.randint(0, 500)] for index in range(rng.randint(6, 12))]
        total = sum(count for _, count in bins) or 1
        average = sum(seconds * count for seconds, count in bins) / total
        return {"bins": bins, "average_conversion_time": round(average, 6)}
    if shape.variant == "trends":
        iso = [day.isoformat() for day in days]
        labels = [_label(day) for day in days]
        breakdowns: list[str | None] = list(rng.sample(BROWSERS, 2)) if shape.breakdown else [None]
        out = []
        for breakdown_value in breakdowns:
            data = [round(rng.uniform(0.0, 60.0), 2) for _ in days]
            item: dict[str, Any] = {"count": len(days), "data": data, "days": iso, "labels": labels}
            if breakdown_value is not None:
                item["breakdown_value"] = [breakdown_value]
            out.append(item)
        return out
    if shape.breakdown:
        return [
            _funnel_steps(shape, rng, rng.randint(100, 30000), value) for value in rng.sample(BROWSERS, 3)
        ]
    return _funnel_steps(shape, rng, rng.randint(100, 30000), None)


def _retention(shape: Shape, end: date, rng: random.Random) -> list[dict[str, Any]]:
    n = shape.intervals
    start = end - timedelta(days=n - 1)
    breakdowns: list[str | None] = list(rng.sample(COUNTRIES, 2)) if shape.breakdown else [None]
    out = []
    for breakdown_value in breakdowns:
        for cohort in range(n):
            size = rng.randint(50, 3000)
            values = []
            for period in range(n - cohort):
                rate = 1.0 if period == 0 else math.exp(-0.35 * period) * rng.uniform(0.4, 0.9)
                values.append({"count": int(size * rate), "label": f"Day {period}"})
            day = start + timedelta(days=cohort)
            item: dict[str, Any] = {
                "values": values,
                "label": f"Day {cohort}",
                "date": f"{day.isoformat()}T00:00:00Z",
            }
            if breakdown_value is not None:
                item["breakdown_value"] = breakdown_value
            out.append(item)
    return out


def _paths(shape: Shape, rng: random.Random) -> list[dict[str, Any]]:
    links: dict[tuple[str, str], dict[str, Any]] = {}
    frontier = [rng.choice(PAGES)]
    volume = rng.randint(2000, 20000)
    for step in range(1, shape.step_limit):
        next_frontier: list[str] = []
        for source in frontier:
            for target in rng.sample(PAGES, rng.randint(1, 3)):
                key = (f"{step}_{source}", f"{step + 1}_{target}")
                if key in links:
                    continue
                links[key] = {
                    "source": key[0],
                    "target": key[1],
                    "value": max(1, int(volume * rng.uniform(0.05, 0.6) / step)),
                    "average_conversion_time": round(rng.uniform(0.5, 600.0), 6),
                }
                if target not in next_frontier:
                    next_frontier.append(target)
        frontier = next_frontier[:4]
    return sorted(links.values(), key=lambda link: (-link["value"], link["source"], link["target"]))


def _sql_rows(
    shape: Shape, days: list[date], points: int, rng: random.Random
) -> tuple[list[list[Any]], list[str], list[list[str]], bool]:
    if shape.variant == "table":
        limit = 100
        n = min(points, limit)
        columns = ["event", "person.properties.email", "properties.$browser", "count()"]
        types = [
            ["event", "String"],
            ["person.properties.email", "Nullable(String)"],
            ["properties.$browser", "Nullable(String)"],
            ["count()", "UInt64"],
        ]
        rows: list[list[Any]] = [
            [
                rng.choice(EVENTS),
                f"user{rng.randint(1, 999)}@example.com",
                rng.choice(BROWSERS),
                rng.randint(1, 999),
            ]
            for _ in range(n)
        ]
        rows.sort(key=lambda row: -int(row[3]))
        return rows, columns, types, points > limit
    columns = ["day", "pageviews", "users", "signups"]
    types = [["day", "Date"], ["pageviews", "UInt64"], ["users", "UInt64"], ["signups", "Nullable(UInt64)"]]
    end = days[-1] if days else date.today()
    sql_days = [end - timedelta(days=offset) for offset in range(points - 1, -1, -1)]
    pageviews = _walk(rng, len(sql_days), rng.uniform(100, 10000))
    rows = []
    for day, views in zip(sql_days, pageviews, strict=True):
        signups = rng.randint(0, max(1, views // 20))
        rows.append([day.isoformat(), views, views // 3, signups if signups else None])
    return rows, columns, types, False


def _hogql_for(shape: Shape) -> str:
    if shape.kind == "SQL":
        return shape.sql_text
    events = ", ".join(f"'{name}'" for name in shape.series)
    return (
        "SELECT arrayMap(number -> plus(toStartOfDay(assumeNotNull(toDateTime(date_from))), "
        "toIntervalDay(number)), range(0, days)) AS date, count() AS total\n"
        f"FROM events AS e\nWHERE in(e.event, tuple({events}))\nLIMIT 50000"
    )
