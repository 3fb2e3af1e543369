"""Lifecycle: stacked bars per interval, as PostHog draws it.

New, returning and resurrecting persons stack up from zero (in that order, new nearest the axis);
dormant ones, which PostHog sends as negative counts, hang below it. Colours are PostHog's
`--lifecycle-*` ones, the legend in its order.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import FigureBase

from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.parts import Handle, index_ticks, legend
from posthog_insights_cli.charts.series import Series, point_labels, trend_series
from posthog_insights_cli.charts.style import GRID, LIFECYCLE_COLORS, LIFECYCLE_ORDER, Look, style_axes


def _status(series: Series) -> str:
    found = series.frame["status"].dropna() if "status" in series.frame else None
    if found is not None and len(found):
        return str(found.iloc[0])
    tail = series.name.rsplit(" - ", 1)[-1]  # a legacy label: "$pageview - dormant"
    return tail if tail in LIFECYCLE_COLORS else "unknown"


def draw_lifecycle(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    series = trend_series(snapshot)
    ax = canvas.subplots()
    style_axes(ax, look)
    by_status: dict[str, Series] = {}
    for s in series:
        by_status.setdefault(_status(s), s)
    width = max((len(s.values) for s in series), default=0)
    up = np.zeros(width)
    down = np.zeros(width)
    entries: dict[str, tuple[Handle, str]] = {}
    for status in LIFECYCLE_ORDER:
        found = by_status.get(status)
        if found is None:
            continue
        values = np.zeros(width)
        values[: len(found.values)] = found.values
        # PostHog sends dormant negative; a source that sent it positive still goes below the axis
        if status == "dormant":
            values = -np.abs(values)
        base = down if status == "dormant" else up
        bars = ax.bar(
            range(width),
            values,
            bottom=base,
            width=0.8,
            color=LIFECYCLE_COLORS[status],
            linewidth=0,
            label=status,
        )
        if status == "dormant":
            down = down + values
        else:
            up = up + values
        entries[status] = (bars, status)
    ax.axhline(0, color=GRID, linewidth=1)
    index_ticks(ax, point_labels(series, snapshot.insight.interval), look)
    ax.set_xlim(-0.5, max(width - 0.5, 0.5))
    name = series[0].name.rsplit(" - ", 1)[0] if series else None
    legend(ax, [entries[s] for s in LIFECYCLE_ORDER if s in entries], look, title=name)
