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
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
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
# Trends displays with a result of their own shape.
CALENDAR_HEATMAP_DISPLAY = "CalendarHeatmap"
BOX_PLOT_DISPLAY = "BoxPlot"
# A sampled retention's factor: counts are scaled back up by 1 / factor, so they come back as floats.
SAMPLING_FACTOR = 0.1
# The columns PostHog's UI saves for an events table (frontend mock dataTableEvents.json).
EVENTS_QUERY_COLUMNS: tuple[str, ...] = (
    "*",
    "event",
    "person",
    "coalesce(properties.$current_url, properties.$screen_name) -- Url / Screen",
    "properties.$lib",
    "timestamp",
)
JSON_VARIANT_BY_SOURCE: dict[str, str] = {
    "EventsQuery": "events",
    "WebOverviewQuery": "web_overview",
    "WebStatsTableQuery": "web_stats",
}
INTERVALS: tuple[str, ...] = ("minute", "hour", "day", "week", "month")


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


def make_query(
    kind: str,
    variant: str,
    rng: random.Random,
    points: int,
    *,
    interval: str = "day",
    date_range: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The query JSON of a new insight of `kind` (an INSIGHT_KINDS entry, or JSON) and `variant`.

    `interval` is the time series' interval (a retention's period); `date_range` replaces the
    default relative range (about `points` intervals up to today).
    """
    events = rng.sample(EVENTS, 3)
    date_range = date_range or default_date_range(interval, points)
    if kind == "SQL":
        return _sql_query(variant)
    if kind == "JSON":
        return _json_query(variant)
    source: dict[str, Any] = {"kind": SOURCE_KIND_BY_INSIGHT[kind], "properties": _properties()}
    if kind == "TRENDS":
        source |= {"interval": interval, "dateRange": date_range, "version": 2}
        if variant == "calendar_heatmap":
            # PostHog's heatmap runner always buckets by day of week and hour: the interval is day.
            source |= {"series": [_events_node(events[0], "total")], "interval": "day"}
            source["trendsFilter"] = {"display": "CalendarHeatmap"}
        elif variant == "boxplot":
            node = _events_node("purchase", "sum") | {"math_property": "revenue"}
            source |= {"series": [node], "trendsFilter": {"display": "BoxPlot"}}
        else:
            n_series = 1 if variant in ("breakdown", "compare") else rng.randint(1, 2)
            display = rng.choice(("BoldNumber", "ActionsPie")) if variant == "number" else "ActionsLineGraph"
            series = [_events_node(event, rng.choice(("total", "dau"))) for event in events[:n_series]]
            source |= {"series": series, "trendsFilter": {"display": display}}
        if variant == "breakdown":
            source["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
        if variant == "compare":
            source["compareFilter"] = {"compare": True}
    elif kind == "STICKINESS":
        source |= {"series": [_events_node(events[0], "dau")], "interval": interval, "dateRange": date_range}
        source["stickinessFilter"] = {}
    elif kind == "LIFECYCLE":
        source |= {"series": [_events_node(events[0])], "interval": interval, "dateRange": date_range}
        source["lifecycleFilter"] = {"showValuesOnSeries": False}
    elif kind == "FUNNELS":
        n_steps = rng.randint(2, 4)
        source |= {
            "series": [_events_node(event) for event in rng.sample(EVENTS, n_steps)],
            "interval": interval,
            "dateRange": date_range,
            "funnelsFilter": {"funnelVizType": variant if variant != "breakdown" else "steps"},
        }
        if variant == "breakdown":
            source["breakdownFilter"] = {"breakdown": "$browser", "breakdown_type": "event"}
    elif kind == "RETENTION":
        source["retentionFilter"] = {
            "period": interval.capitalize(),
            "totalIntervals": 11,
            "retentionType": "retention_first_time",
            "targetEntity": {"id": events[0], "name": events[0], "type": "events"},
            "returningEntity": {"id": events[1], "name": events[1], "type": "events"},
            "meanRetentionCalculation": "simple",
        }
        source["dateRange"] = date_range if "date_to" in date_range else {"date_from": f"-11{interval[0]}"}
        if variant == "breakdown":
            source["breakdownFilter"] = {"breakdown": "$geoip_country_code", "breakdown_type": "person"}
        if variant == "sampled":
            source["samplingFactor"] = SAMPLING_FACTOR
    elif kind == "PATHS":
        source["pathsFilter"] = {
            "includeEventTypes": ["$pageview"],
            "stepLimit": rng.randint(4, 6),
            "excludeEvents": [],
            "pathGroupings": [],
            "localPathCleaningFilters": [],
        }
    return {"kind": "InsightVizNode", "source": source, "full": True}


def default_date_range(interval: str, points: int) -> dict[str, Any]:
    """A relative range of about `points` intervals up to now, in the forms PostHog's UI saves."""
    if interval in ("hour", "minute"):
        return {"date_from": f"-{max(points, 2)}h"}
    if interval == "week":
        return {"date_from": f"-{max(points, 2)}w"}
    if interval == "month":
        return {"date_from": f"-{max(points, 2)}m"}
    return {"date_from": f"-{max(points - 1, 1)}d"}


def _json_query(variant: str) -> dict[str, Any]:
    """A saved DataTableNode over a source that is neither HogQL nor an insight query."""
    if variant == "events":
        source: dict[str, Any] = {
            "kind": "EventsQuery",
            "select": list(EVENTS_QUERY_COLUMNS),
            "orderBy": ["timestamp DESC"],
            "after": "-24h",
        }
    elif variant == "web_overview":
        source = {
            "kind": "WebOverviewQuery",
            "dateRange": {"date_from": "-7d"},
            "properties": [],
            "compareFilter": {"compare": True},
        }
    else:
        source = {
            "kind": "WebStatsTableQuery",
            "breakdownBy": "Browser",
            "dateRange": {"date_from": "-7d"},
            "properties": [],
            "compareFilter": {"compare": True},
            "limit": 10,
        }
    return {"kind": "DataTableNode", "source": source, "full": True}


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


def make_legacy_filters(
    kind: str, variant: str, rng: random.Random, points: int, *, interval: str = "day"
) -> dict[str, Any]:
    """Legacy `filters` of an old insight (stored with `query` null), as PostHog kept them before 2024."""
    events = rng.sample(EVENTS, 3)
    entities = [
        {"id": event, "type": "events", "order": index, "name": event, "math": "total"}
        for index, event in enumerate(events)
    ]
    date_from = default_date_range(interval, points)["date_from"]
    filters: dict[str, Any] = {"insight": kind, "date_from": date_from, "interval": interval}
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
            "period": interval.capitalize(),
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
    """What a result looks like: kind and display variant, read from the query JSON.

    `interval` is what PostHog's staleness rules go by: the query's interval, a retention's period
    lower-cased, "day" for SQL, None for paths and the other (JSON) sources.
    """

    kind: str
    variant: str
    series: tuple[str, ...]
    breakdown: bool = False
    intervals: int = 11
    step_limit: int = 5
    sql_text: str = ""
    date_from: str | None = None
    date_to: str | None = None
    interval: str | None = "day"
    math_properties: tuple[str | None, ...] = ()
    sampling: float | None = None
    columns: tuple[str, ...] = ()
    breakdown_by: str = ""
    compare: bool = False
    limit: int = 10


def _range(source: dict[str, Any]) -> tuple[str | None, str | None]:
    date_range = source.get("dateRange") or {}
    if not isinstance(date_range, dict):
        return None, None
    return date_range.get("date_from"), date_range.get("date_to")


def _interval(value: Any, default: str | None = "day") -> str | None:
    text = str(value).lower() if value else default
    return text


def shape_of(query: dict[str, Any] | None, filters: dict[str, Any]) -> Shape:
    """Read the result shape from an insight's (possibly derived) query."""
    effective = query or query_from_filters(filters) or {}
    kind = insight_kind(effective or None, filters)
    source: dict[str, Any] = effective.get("source") or {}
    date_from, date_to = _range(source)
    nodes = [node for node in (source.get("series") or []) if isinstance(node, dict)]
    series = tuple(
        str(node.get("custom_name") or node.get("name") or node.get("event") or "All events")
        for node in nodes
    ) or ("$pageview",)
    math_properties = tuple(node.get("math_property") for node in nodes) or (None,)
    breakdown = bool((source.get("breakdownFilter") or {}).get("breakdown"))
    interval = _interval(source.get("interval"))
    if kind == "SQL":
        variant = "table" if effective.get("kind") == "DataTableNode" else "viz"
        return Shape(kind, variant, (), sql_text=str(source.get("query") or ""))
    if kind == "JSON":
        source_kind = str(source.get("kind") or effective.get("kind") or "")
        return Shape(
            kind,
            JSON_VARIANT_BY_SOURCE.get(source_kind, "table"),
            (),
            sql_text=source_kind,
            date_from=date_from or source.get("after"),
            date_to=date_to or source.get("before"),
            interval=None,
            columns=tuple(str(column) for column in source.get("select") or EVENTS_QUERY_COLUMNS),
            breakdown_by=str(source.get("breakdownBy") or "Browser"),
            compare=bool((source.get("compareFilter") or {}).get("compare")),
            limit=max(1, min(int(source.get("limit") or 10), 100)),
        )
    common: dict[str, Any] = {"date_from": date_from, "date_to": date_to, "interval": interval}
    if kind == "TRENDS":
        display = (source.get("trendsFilter") or {}).get("display") or "ActionsLineGraph"
        compare = bool((source.get("compareFilter") or {}).get("compare"))
        if display == CALENDAR_HEATMAP_DISPLAY:
            variant = "calendar_heatmap"
        elif display == BOX_PLOT_DISPLAY:
            variant = "boxplot"
        else:
            variant = "number" if display in NUMBER_DISPLAYS else "compare" if compare else "line"
        return Shape(kind, variant, series, breakdown, math_properties=math_properties, **common)
    if kind == "FUNNELS":
        viz = (source.get("funnelsFilter") or {}).get("funnelVizType") or "steps"
        variant = viz if viz in ("steps", "time_to_convert", "trends") else "steps"
        return Shape(kind, variant, series, breakdown, **common)
    if kind == "RETENTION":
        retention = source.get("retentionFilter") or {}
        intervals = int(retention.get("totalIntervals") or 11)
        sampling = source.get("samplingFactor")
        return Shape(
            kind,
            "sampled" if sampling else "cohorts",
            series,
            breakdown,
            intervals=max(1, min(intervals, 100)),
            date_from=date_from,
            date_to=date_to,
            interval=_interval(retention.get("period")),
            sampling=float(sampling) if sampling else None,
        )
    if kind == "PATHS":
        step_limit = int((source.get("pathsFilter") or {}).get("stepLimit") or 5)
        return Shape(kind, "links", series, step_limit=max(2, min(step_limit, 20)), interval=None)
    return Shape(kind, "series", series, **common)


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

    def end_timestamp(self) -> float:
        """The window's resolved `date_to` (its last microsecond), as epoch seconds."""
        return datetime.combine(self.end, time.max, UTC).timestamp()


@dataclass(frozen=True)
class Computed:
    """One calculation's output: the result plus the response fields that travel with it."""

    result: Any
    columns: list[str] | None
    types: list[Any] | None
    hogql: str
    has_more: bool | None
    resolved_date_range: dict[str, str]


def rng_for(*parts: object) -> random.Random:
    """A RNG seeded by a stable hash of `parts` (Python's own `hash` is salted per process)."""
    digest = hashlib.sha256("|".join(str(part) for part in parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Minute buckets are capped: a minute insight over a long window would otherwise be enormous.
MAX_MINUTE_BUCKETS = 1440


def _label(day: date) -> str:
    """PostHog's day label, e.g. `4-Mar-2022` (English month names, whatever the locale)."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def _month_start(moment: date, offset: int = 0) -> date:
    index = moment.year * 12 + moment.month - 1 + offset
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Buckets:
    """The interval starts a time series covers, with PostHog's `days` strings and labels."""

    interval: str
    starts: tuple[datetime, ...]

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def timed(self) -> bool:
        return self.interval in ("hour", "minute")

    def day(self, moment: datetime) -> str:
        """A `days` entry: an ISO date, with a time for hour and minute intervals."""
        return moment.strftime("%Y-%m-%d %H:%M:%S") if self.timed else moment.date().isoformat()

    def label(self, moment: datetime) -> str:
        if self.timed:
            return f"{_label(moment.date())} {moment.strftime('%H:%M')}"
        if self.interval == "month":
            return f"{_MONTHS[moment.month - 1]} {moment.year}"
        return _label(moment.date())

    @property
    def days(self) -> list[str]:
        return [self.day(moment) for moment in self.starts]

    @property
    def labels(self) -> list[str]:
        return [self.label(moment) for moment in self.starts]

    def previous(self) -> Buckets:
        """The same number of intervals right before these (a compare's previous period)."""
        n = len(self.starts)
        if self.interval == "month":
            shifted = tuple(
                datetime.combine(_month_start(moment.date(), -n), time.min, UTC) for moment in self.starts
            )
        else:
            step = _STEPS.get(self.interval, timedelta(days=1))
            shifted = tuple(moment - n * step for moment in self.starts)
        return Buckets(self.interval, shifted)


_STEPS: dict[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


def buckets(window: Window, interval: str | None) -> Buckets:
    """PostHog's interval starts over a window: hours and minutes of its days, weeks starting on
    Sunday (PostHog's default week start), months from their first day."""
    name = interval if interval in INTERVALS else "day"
    first = datetime.combine(window.start, time.min, UTC)
    last = datetime.combine(window.end, time.max, UTC)
    starts: list[datetime] = []
    if name == "month":
        month = _month_start(window.start)
        while month <= window.end:
            starts.append(datetime.combine(month, time.min, UTC))
            month = _month_start(month, 1)
        return Buckets(name, tuple(starts))
    if name == "week":
        first -= timedelta(days=(window.start.weekday() + 1) % 7)
    if name == "minute":
        first = max(first, last.replace(second=0, microsecond=0) - (MAX_MINUTE_BUCKETS - 1) * _STEPS[name])
    step = _STEPS[name]
    moment = first
    while moment <= last:
        starts.append(moment)
        moment += step
    return Buckets(name, tuple(starts))


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
    """A plausible series: a weekly rhythm, a drift and noise, never negative."""
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
    spans = buckets(window, shape.interval)
    first = spans.starts[0] if spans.starts and shape.kind != "RETENTION" else None
    resolved = {
        "date_from": (first or datetime.combine(window.start, time.min)).replace(tzinfo=None).isoformat()
        + "Z",
        "date_to": datetime.combine(window.end, time.max).isoformat() + "Z",
    }
    hogql = _hogql_for(shape)
    if shape.kind == "JSON" and shape.variant != "table":
        return _json_result(shape, window, points, rng, resolved)
    if shape.kind in ("SQL", "JSON"):
        rows, columns, types, has_more = _sql_rows(shape, days, points, rng)
        return Computed(rows, columns, types, shape.sql_text or hogql, has_more, resolved)
    result: Any
    if shape.kind == "TRENDS":
        if shape.variant == "calendar_heatmap":
            result = _calendar_heatmap(shape, window, rng)
        elif shape.variant == "boxplot":
            result = _boxplot(shape, spans, rng)
        else:
            result = _trends(shape, spans, rng)
    elif shape.kind == "STICKINESS":
        result = _stickiness(shape, len(spans), spans.interval, rng)
    elif shape.kind == "LIFECYCLE":
        result = _lifecycle(shape, spans, rng)
    elif shape.kind == "FUNNELS":
        result = _funnel(shape, spans, rng)
    elif shape.kind == "RETENTION":
        result = _retention(shape, window.end, rng)
    else:
        result = _paths(shape, rng)
    return Computed(result, None, None, hogql, False, resolved)


def _trends(shape: Shape, spans: Buckets, rng: random.Random) -> list[dict[str, Any]]:
    iso, labels = spans.days, spans.labels
    out: list[dict[str, Any]] = []
    breakdowns: list[str | None] = list(rng.sample(BROWSERS, 3)) if shape.breakdown else [None]
    for order, name in enumerate(shape.series):
        for breakdown_value in breakdowns:
            periods = ("current", "previous") if shape.variant == "compare" else (None,)
            for compare_label in periods:
                data = _walk(rng, len(spans), rng.uniform(20, 5000))
                label = name if breakdown_value is None else f"{name} - {breakdown_value}"
                series: dict[str, Any] = {"action": _action(name, order), "label": label, "count": sum(data)}
                if shape.variant == "number":
                    series |= {"data": [], "labels": [], "days": iso, "aggregated_value": sum(data)}
                else:
                    series_days, series_labels = iso, labels
                    if compare_label == "previous":
                        previous = spans.previous()
                        series_days, series_labels = previous.days, previous.labels
                    series |= {"data": data, "labels": series_labels, "days": series_days}
                if breakdown_value is not None:
                    series["breakdown_value"] = breakdown_value
                if compare_label is not None:
                    series |= {"compare": True, "compare_label": compare_label}
                out.append(series)
    return out


def _calendar_heatmap(shape: Shape, window: Window, rng: random.Random) -> list[dict[str, Any]]:
    """`CalendarHeatmapTrendsQueryRunner`'s one series: no data points, the total as aggregated_value,
    and the day-of-week (row, 1 = Monday, ClickHouse's toDayOfWeek) x hour (column, 0-23) grid."""
    name = shape.series[0]
    weeks = max(1.0, window.days / 7)
    base = rng.uniform(2, 60) * weeks
    cells: list[dict[str, int]] = []
    for row in range(1, 8):
        weekday_factor = 0.45 if row >= 6 else 1.0
        for column in range(24):
            daylight = max(0.02, math.sin(math.pi * max(0, column - 6) / 17)) if 6 <= column <= 23 else 0.02
            value = int(base * weekday_factor * daylight * rng.uniform(0.6, 1.4))
            if value > 0:  # ClickHouse's sumMap leaves out empty cells
                cells.append({"row": row, "column": column, "value": value})
    by_row: dict[int, int] = {}
    by_column: dict[int, int] = {}
    for cell in cells:
        by_row[cell["row"]] = by_row.get(cell["row"], 0) + cell["value"]
        by_column[cell["column"]] = by_column.get(cell["column"], 0) + cell["value"]
    total = sum(cell["value"] for cell in cells)
    return [
        {
            "action": {"id": name, "type": "events", "order": 0, "name": name, "math": "total"},
            "label": name,
            "data": [],
            "aggregated_value": total,
            "calendar_heatmap_data": {
                "data": cells,
                "rowAggregations": [{"row": row, "value": value} for row, value in sorted(by_row.items())],
                "columnAggregations": [
                    {"column": column, "value": value} for column, value in sorted(by_column.items())
                ],
                "allAggregations": total,
            },
            "count": total,
        }
    ]


def _boxplot(shape: Shape, spans: Buckets, rng: random.Random) -> list[dict[str, Any]]:
    """`BoxPlotTrendsQueryRunner`'s boxes: one per interval per series (zeros where nothing
    happened), series after series."""
    out: list[dict[str, Any]] = []
    day_format = "%Y-%m-%d %H:%M:%S" if spans.timed else "%Y-%m-%d"
    for index, name in enumerate(shape.series):
        prop = shape.math_properties[index] if index < len(shape.math_properties) else None
        series_label = f"{name} - {prop}" if prop else name
        scale = rng.uniform(10, 500)
        for moment in spans.starts:
            stats = {"min": 0.0, "p25": 0.0, "median": 0.0, "p75": 0.0, "max": 0.0, "mean": 0.0}
            if rng.random() > 0.08:
                sample = sorted(rng.lognormvariate(0.0, 0.6) * scale for _ in range(9))
                stats = {
                    "min": round(sample[0], 2),
                    "p25": round(sample[2], 2),
                    "median": round(sample[4], 2),
                    "p75": round(sample[6], 2),
                    "max": round(sample[8], 2),
                    "mean": round(sum(sample) / len(sample), 2),
                }
            out.append(
                {
                    "day": moment.strftime(day_format),
                    "label": spans.label(moment),
                    **stats,
                    "series_index": index,
                    "series_label": series_label,
                }
            )
    return out


def _stickiness(shape: Shape, n: int, interval: str, rng: random.Random) -> list[dict[str, Any]]:
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
                "labels": [f"{index} {interval}" + ("" if index == 1 else "s") for index in range(1, n + 1)],
                "days": list(range(1, n + 1)),
            }
        )
    return out


def _lifecycle(shape: Shape, spans: Buckets, rng: random.Random) -> list[dict[str, Any]]:
    iso, labels = spans.days, spans.labels
    out = []
    for order, name in enumerate(shape.series):
        for status in LIFECYCLE_STATUSES:
            data = _walk(rng, len(spans), rng.uniform(10, 800))
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


def _funnel(shape: Shape, spans: Buckets, rng: random.Random) -> Any:
    if shape.variant == "time_to_convert":
        width = rng.choice((60, 300, 3600))
        bins = [[index * width, rng.randint(0, 500)] for index in range(rng.randint(6, 12))]
        total = sum(count for _, count in bins) or 1
        average = sum(seconds * count for seconds, count in bins) / total
        return {"bins": bins, "average_conversion_time": round(average, 6)}
    if shape.variant == "trends":
        iso, labels = spans.days, spans.labels
        breakdowns: list[str | None] = list(rng.sample(BROWSERS, 2)) if shape.breakdown else [None]
        out = []
        for breakdown_value in breakdowns:
            data = [round(rng.uniform(0.0, 60.0), 2) for _ in iso]
            item: dict[str, Any] = {"count": len(iso), "data": data, "days": iso, "labels": labels}
            if breakdown_value is not None:
                item["breakdown_value"] = [breakdown_value]
            out.append(item)
        return out
    if shape.breakdown:
        return [
            _funnel_steps(shape, rng, rng.randint(100, 30000), value) for value in rng.sample(BROWSERS, 3)
        ]
    return _funnel_steps(shape, rng, rng.randint(100, 30000), None)


def _period_start(end: date, period: str, back: int) -> datetime:
    """The start of the period `back` periods before the one holding `end`."""
    if period == "month":
        return datetime.combine(_month_start(end, -back), time.min, UTC)
    if period == "week":
        sunday = end - timedelta(days=(end.weekday() + 1) % 7)
        return datetime.combine(sunday - timedelta(weeks=back), time.min, UTC)
    if period == "hour":
        return datetime.combine(end, time(23), UTC) - timedelta(hours=back)
    return datetime.combine(end - timedelta(days=back), time.min, UTC)


def _retention(shape: Shape, end: date, rng: random.Random) -> list[dict[str, Any]]:
    """Cohorts over `intervals` periods; a sampled retention's counts are scaled by 1 / factor in
    floating point, as ClickHouse does, so they are floats (not always whole ones)."""
    n = shape.intervals
    period = shape.interval if shape.interval in ("hour", "day", "week", "month") else "day"
    title = period.capitalize()
    breakdowns: list[str | None] = list(rng.sample(COUNTRIES, 2)) if shape.breakdown else [None]
    out = []
    for breakdown_value in breakdowns:
        for cohort in range(n):
            size = rng.randint(50, 3000)
            values = []
            for offset in range(n - cohort):
                rate = 1.0 if offset == 0 else math.exp(-0.35 * offset) * rng.uniform(0.4, 0.9)
                count: float = int(size * rate)
                if shape.sampling:
                    count = int(count * shape.sampling) / shape.sampling
                values.append({"count": count, "label": f"{title} {offset}"})
            start = _period_start(end, period, n - 1 - cohort)
            item: dict[str, Any] = {
                "values": values,
                "label": f"{title} {cohort}",
                "date": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
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
) -> tuple[list[list[Any]], list[str], list[Any], bool]:
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


# --------------------------------------------------------------------------------------------------
# Other (JSON) sources
# --------------------------------------------------------------------------------------------------

# What the EventsQuery runner's columns come back as (its `types` are bare ClickHouse types, not
# [name, type] pairs). The `*` and `person` tuples are abbreviated: read from the runner, not seen live.
_EVENTS_COLUMN_TYPES: dict[str, str] = {
    "*": "Tuple(UUID, String, String, DateTime64(6, 'UTC'), Int64, String, String, DateTime64(6, 'UTC'))",
    "event": "String",
    "person": "Tuple(UUID, DateTime64(3, 'UTC'), String, String)",
    "timestamp": "DateTime64(6, 'UTC')",
}
_EVENTS_LIMIT = 100
WEB_STATS_COLUMNS: tuple[str, ...] = (
    "context.columns.breakdown_value",
    "context.columns.visitors",
    "context.columns.views",
    "context.columns.ui_fill_fraction",
    "context.columns.cross_sell",
)
_WEB_BREAKDOWN_VALUES: dict[str, tuple[str, ...]] = {
    "Browser": BROWSERS,
    "Page": PAGES,
    "InitialPage": PAGES,
    "Country": COUNTRIES,
}


def _json_result(
    shape: Shape, window: Window, points: int, rng: random.Random, resolved: dict[str, str]
) -> Computed:
    if shape.variant == "events":
        return _events_rows(shape, window, points, rng, resolved)
    if shape.variant == "web_overview":
        return Computed(_web_overview(shape, rng), None, None, _hogql_for(shape), None, resolved)
    return _web_stats(shape, rng, resolved)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _events_rows(
    shape: Shape, window: Window, points: int, rng: random.Random, resolved: dict[str, str]
) -> Computed:
    """EventsQuery rows, newest first: `*` is the event as a dict, `person` the person as a dict."""
    n_found = points * 3
    end = datetime.combine(window.end, time(12), UTC)
    moments = sorted(
        (end - timedelta(seconds=rng.uniform(0, 86400)) for _ in range(min(n_found, _EVENTS_LIMIT))),
        reverse=True,
    )
    rows: list[list[Any]] = []
    for moment in moments:
        event = rng.choice(EVENTS)
        distinct_id = f"user-{rng.randint(1, 400)}"
        url = f"https://example.com{rng.choice(PAGES)}"
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        properties = {"$current_url": url, "$lib": "web", "$browser": rng.choice(BROWSERS)}
        row: list[Any] = []
        for column in shape.columns:
            if column == "*":
                row.append(
                    {
                        "uuid": _uuid(rng),
                        "event": event,
                        "properties": properties,
                        "timestamp": stamp,
                        "team_id": 1,
                        "distinct_id": distinct_id,
                        "elements_chain": "",
                        "created_at": stamp,
                    }
                )
            elif column == "event":
                row.append(event)
            elif column == "person":
                row.append(
                    {
                        "uuid": _uuid(rng),
                        "created_at": stamp,
                        "properties": {"email": f"{distinct_id}@example.com"},
                        "distinct_id": distinct_id,
                    }
                )
            elif column == "timestamp":
                row.append(stamp)
            elif "$current_url" in column:
                row.append(url)
            elif column.startswith("properties."):
                row.append(properties.get(column.removeprefix("properties.")))
            else:
                row.append(None)
        rows.append(row)
    types = [_EVENTS_COLUMN_TYPES.get(column, "Nullable(String)") for column in shape.columns]
    return Computed(rows, list(shape.columns), types, _hogql_for(shape), n_found > _EVENTS_LIMIT, resolved)


def _web_item(
    key: str, kind: str, value: float, previous: float | None, increase_bad: bool | None
) -> dict[str, Any]:
    """The web overview runner's `to_data`: percentages times 100, the change rounded to a whole percent."""
    if kind == "percentage":
        value *= 100
        previous = previous * 100 if previous is not None else None
    change = round(100 * (value - previous) / previous) if previous else None
    return {
        "key": key,
        "kind": kind,
        "isIncreaseBad": increase_bad,
        "value": value,
        "previous": previous,
        "changeFromPreviousPct": change,
    }


def _web_overview(shape: Shape, rng: random.Random) -> list[dict[str, Any]]:
    visitors = rng.randint(200, 20000)
    views = int(visitors * rng.uniform(1.5, 4.0))
    sessions = int(visitors * rng.uniform(1.1, 1.8))
    duration = round(rng.uniform(30.0, 600.0), 6)
    bounce = round(rng.uniform(0.2, 0.7), 6)

    def prev(value: float, whole: bool = True) -> float | None:
        if not shape.compare:
            return None
        moved = value * rng.uniform(0.7, 1.3)
        return int(moved) if whole else round(moved, 6)

    return [
        _web_item("visitors", "unit", visitors, prev(visitors), None),
        _web_item("views", "unit", views, prev(views), None),
        _web_item("sessions", "unit", sessions, prev(sessions), None),
        _web_item("session duration", "duration_s", duration, prev(duration, False), None),
        _web_item("bounce rate", "percentage", bounce, prev(bounce, False), True),
    ]


def _web_stats(shape: Shape, rng: random.Random, resolved: dict[str, str]) -> Computed:
    """WebStatsTableQuery rows: the breakdown value, then (current, previous) pairs (previous null
    without compare), the fill fraction of the first metric, and the cross-sell column."""
    pool = _WEB_BREAKDOWN_VALUES.get(shape.breakdown_by, BROWSERS)
    values = rng.sample(pool, min(len(pool), shape.limit))
    visitors = sorted((rng.randint(5, 5000) for _ in values), reverse=True)
    total = sum(visitors) or 1
    rows: list[list[Any]] = []
    for value, count in zip(values, visitors, strict=True):
        views = int(count * rng.uniform(1.2, 3.5))
        previous = (
            (int(count * rng.uniform(0.7, 1.3)), int(views * rng.uniform(0.7, 1.3)))
            if shape.compare
            else (None, None)
        )
        rows.append([value, [count, previous[0]], [views, previous[1]], count / total, ""])
    types = [
        ["context.columns.breakdown_value", "Nullable(String)"],
        ["context.columns.visitors", "Tuple(UInt64, UInt64)"],
        ["context.columns.views", "Tuple(UInt64, UInt64)"],
        ["context.columns.ui_fill_fraction", "Float64"],
        ["context.columns.cross_sell", "String"],
    ]
    return Computed(rows, list(WEB_STATS_COLUMNS), types, _hogql_for(shape), False, resolved)


def _hogql_for(shape: Shape) -> str:
    if shape.kind == "SQL":
        return shape.sql_text
    if shape.kind == "JSON":
        if shape.variant == "events":
            return "SELECT " + ", ".join(shape.columns) + "\nFROM events\nORDER BY timestamp DESC\nLIMIT 101"
        return f"-- {shape.sql_text}\nSELECT uniq(person_id) AS visitors, count() AS views\nFROM events"
    events = ", ".join(f"'{name}'" for name in shape.series)
    return (
        "SELECT arrayMap(number -> plus(toStartOfDay(assumeNotNull(toDateTime(date_from))), "
        "toIntervalDay(number)), range(0, days)) AS date, count() AS total\n"
        f"FROM events AS e\nWHERE in(e.event, tuple({events}))\nLIMIT 50000"
    )
