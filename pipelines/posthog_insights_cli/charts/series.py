"""Trend series as a legend shows them: readable names, one colour per series, periods paired.

`trend_points` holds one row per point with the series' description repeated. Here a series becomes one
`Series`: its legend label (breakdown in words, the series name only where several series share the
chart, the math where two would read alike), its colour (PostHog's palette by position, a compared
insight's previous period taking the colour of the current series it belongs to), and the labels its
points are drawn at (the current period's dates: a previous period is overlaid on them).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd

from posthog_insights_cli.charts.labels import breakdown_label
from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.style import series_color


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


@dataclass(frozen=True)
class Series:
    index: int  # series_index
    name: str  # the series itself: event or action (custom) name
    breakdown: str | None  # the breakdown value in words
    period: str | None  # "current", "previous" or None without compare
    math: str | None
    frame: pd.DataFrame  # its rows, by point_index
    label: str = ""
    color: str = ""
    partner: int | None = None  # a previous period's current series (its series_index)

    @property
    def previous(self) -> bool:
        return self.period == "previous"

    @property
    def aggregate(self) -> bool:
        """One number for the whole range (BoldNumber, pie, table displays) rather than points."""
        return bool(self.frame["is_aggregate"].fillna(False).all())

    @property
    def values(self) -> list[float]:
        return [float(v) if not pd.isna(v) else 0.0 for v in self.frame["value"]]

    @property
    def total(self) -> float:
        """The series' single number: PostHog's aggregated_value, else the sum of its points."""
        aggregated = self.frame["aggregated_value"].dropna() if "aggregated_value" in self.frame else None
        if aggregated is not None and len(aggregated):
            return float(aggregated.iloc[0])
        if self.aggregate:
            return float(self.frame["value"].fillna(0).sum())
        return float(sum(self.values))


def trend_series(snapshot: Snapshot, table: str = "trend_points") -> list[Series]:
    """The snapshot's series in result order, each with its label and colour."""
    points = snapshot.rows(table)
    if points.empty:
        return []
    insight = snapshot.insight
    raw: list[Series] = []
    for index, frame in points.groupby("series_index", sort=True):
        first = frame.iloc[0]
        action = _text(first.get("action_name"))
        label = _text(first.get("series_label"))
        bd_raw = first.get("breakdown_value")
        breakdown = breakdown_label(
            bd_raw,
            breakdown_type=insight.breakdown_type,
            series_label=label,
            series_name=action,
            histogram=insight.histogram,
        )
        # A broken-down series' label is "name - value" (or the value alone): its name is the action's.
        fallback = "Conversion rate" if insight.kind == "funnels" else f"Series {int(index) + 1}"
        name = (action if breakdown is not None else label) or action or label or fallback
        raw.append(
            Series(
                index=int(index),
                name=name,
                breakdown=breakdown,
                period=_text(first.get("compare_label")),
                math=_text(first.get("math")),
                frame=frame.sort_values("point_index").reset_index(drop=True),
            )
        )
    return _named_and_coloured(raw)


def _key(series: Series) -> tuple[Any, ...]:
    return (series.name, series.breakdown, series.math)


def _named_and_coloured(raw: list[Series]) -> list[Series]:
    several_names = len({s.name for s in raw}) > 1
    labels: dict[int, str] = {}
    for s in raw:
        if s.breakdown is not None:
            labels[s.index] = f"{s.name} - {s.breakdown}" if several_names else s.breakdown
        else:
            labels[s.index] = s.name
    repeated = Counter((labels[s.index], s.period) for s in raw)
    for s in raw:
        if repeated[(labels[s.index], s.period)] > 1 and s.math:
            labels[s.index] += f" ({s.math})"
    # colours: current (or uncompared) series by position; a previous period joins the current series with
    # the same name, breakdown and math (the n-th such previous series the n-th such current one)
    colors: dict[int, str] = {}
    partners: dict[int, int] = {}
    current = [s for s in raw if not s.previous]
    slots: dict[tuple[Any, ...], list[int]] = {}
    for position, s in enumerate(current):
        colors[s.index] = series_color(position)
        slots.setdefault(_key(s), []).append(s.index)
    spare = len(current)
    for s in raw:
        if not s.previous:
            continue
        match = slots.get(_key(s))
        if match:
            partners[s.index] = match.pop(0)
            colors[s.index] = colors[partners[s.index]]
        else:
            colors[s.index] = series_color(spare)
            spare += 1
    return [
        Series(
            s.index,
            s.name,
            s.breakdown,
            s.period,
            s.math,
            s.frame,
            labels[s.index],
            colors[s.index],
            partners.get(s.index),
        )
        for s in raw
    ]


def _date_text(moment: pd.Timestamp, interval: str | None) -> str:
    if interval in ("hour", "minute"):
        return f"{moment.day} {moment:%b %H:%M}"
    if interval == "month":
        return f"{moment:%b %Y}"
    return f"{moment.day} {moment:%b}"


def point_labels(series: list[Series], interval: str | None) -> list[str]:
    """Labels for the x positions 0..n-1: the current period's dates (or PostHog's labels, e.g. "2 days")."""
    drawn = [s for s in series if not s.aggregate]
    if not drawn:
        return []
    reference = max((s for s in drawn if not s.previous), key=lambda s: len(s.frame), default=drawn[0])
    out = []
    for row in reference.frame.itertuples(index=False):
        moment = getattr(row, "date", None)
        if isinstance(moment, pd.Timestamp) and not pd.isna(moment):
            out.append(_date_text(moment, interval))
        elif _text(getattr(row, "label", None)):
            out.append(str(row.label))
        else:
            out.append(str(int(row.point_index) + 1))
    return out


def date_range(series: list[Series], interval: str | None, *, previous: bool = False) -> str | None:
    """The current (or the previous) period's first and last date, e.g. "24 Nov – 7 Dec 2026"."""
    dates = [
        moment
        for s in series
        if s.previous == previous and "date" in s.frame
        for moment in s.frame["date"].dropna()
        if isinstance(moment, pd.Timestamp)
    ]
    if not dates:
        return None
    first, last = min(dates), max(dates)
    if interval in ("hour", "minute"):
        return f"{_date_text(first, interval)} – {_date_text(last, interval)} {last.year}"
    if interval == "month":
        return f"{first:%b %Y} – {last:%b %Y}"
    return f"{first.day} {first:%b} – {last.day} {last:%b} {last.year}"
