"""What a chart is drawn from: an insight's definition (its row in `insights`) and its latest rows.

The definition decides the picture: the trends display (`source.trendsFilter.display`), the breakdown
(its type names cohorts, its property titles retention panels), compare, the interval (how dates are
written on the axis), the funnel's visualisation. Legacy insights carry these in `filters` instead; both
are read, the query first, as PostHog does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _json(text: Any) -> Mapping[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        return _mapping(json.loads(text))
    except ValueError:
        return {}


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text or None


@dataclass(frozen=True)
class Insight:
    """One row of the `insights` table, with its query and filters parsed."""

    project_id: int
    id: int
    name: str
    kind: str
    query: Mapping[str, Any] = field(default_factory=dict)
    filters: Mapping[str, Any] = field(default_factory=dict)
    short_id: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Insight:
        insight_id = int(row["id"])
        name = _text(row.get("name")) or _text(row.get("derived_name")) or f"Insight {insight_id}"
        return cls(
            project_id=int(row["project_id"]),
            id=insight_id,
            name=name,
            kind=_text(row.get("kind")) or "unknown",
            query=_json(row.get("query_json")),
            filters=_json(row.get("filters_json")),
            short_id=_text(row.get("short_id")),
        )

    @property
    def source(self) -> Mapping[str, Any]:
        """The insight query inside its wrapper node (InsightVizNode, DataTableNode...), or the bare query."""
        inner = self.query.get("source")
        return _mapping(inner) if isinstance(inner, Mapping) else self.query

    @property
    def display(self) -> str | None:
        """The chart PostHog draws: trends' or stickiness' display, a SQL visualisation's, the legacy one."""
        for holder in ("trendsFilter", "stickinessFilter"):
            found = _mapping(self.source.get(holder)).get("display")
            if isinstance(found, str) and found:
                return found
        found = self.query.get("display") or self.filters.get("display")
        return found if isinstance(found, str) and found else None

    @property
    def breakdown_filter(self) -> Mapping[str, Any]:
        found = _mapping(self.source.get("breakdownFilter"))
        if found:
            return found
        keys = ("breakdown", "breakdown_type", "breakdowns", "breakdown_histogram_bin_count")
        return {key: self.filters[key] for key in keys if key in self.filters}

    @property
    def breakdown_type(self) -> str | None:
        found = self.breakdown_filter.get("breakdown_type")
        return found if isinstance(found, str) else None

    @property
    def breakdown_name(self) -> str | None:
        """What the insight is broken down by, for titles: `$browser`, `$browser / $os`, `cohort`."""
        found = self.breakdown_filter
        if found.get("breakdown_type") == "cohort":
            return "cohort"
        many = found.get("breakdowns")
        if isinstance(many, list) and many:
            names = [str(_mapping(item).get("property") or "") for item in many]
            return " / ".join(name for name in names if name) or None
        single = found.get("breakdown")
        if isinstance(single, list):
            return " / ".join(str(item) for item in single) or None
        return str(single) if single not in (None, "") else None

    @property
    def histogram(self) -> bool:
        return bool(self.breakdown_filter.get("breakdown_histogram_bin_count"))

    @property
    def compare(self) -> bool:
        return bool(_mapping(self.source.get("compareFilter")).get("compare") or self.filters.get("compare"))

    @property
    def interval(self) -> str | None:
        """The time series' interval (a retention's period), lower-case: hour, day, week, month."""
        period = _mapping(self.source.get("retentionFilter")).get("period") or self.filters.get("period")
        found = self.source.get("interval") or period or self.filters.get("interval")
        return str(found).lower() if found else None

    @property
    def funnel_viz(self) -> str | None:
        found = _mapping(self.source.get("funnelsFilter")).get("funnelVizType") or self.filters.get(
            "funnel_viz_type"
        )
        return found if isinstance(found, str) else None

    @property
    def chart_settings(self) -> Mapping[str, Any]:
        """A SQL visualisation's axes (`chartSettings.xAxis.column`, `yAxis[].column`)."""
        return _mapping(self.query.get("chartSettings"))


@dataclass(frozen=True)
class Snapshot:
    """An insight and its rows from each tidy table's `_latest` view (only tables that hold some).

    `status` and `error` are the latest attempt's (from `insight_results_latest`): a panel without rows
    says why.
    """

    insight: Insight
    tables: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    status: str | None = None
    error: str | None = None
    last_refresh: pd.Timestamp | None = None

    def rows(self, table: str) -> pd.DataFrame:
        found = self.tables.get(table)
        return found if found is not None else pd.DataFrame()

    @property
    def empty(self) -> bool:
        return not any(len(frame) for frame in self.tables.values())
