"""Trends (and the charts that share their shape: stickiness, a funnel's historical trends).

The display saved with the insight picks the picture, as in PostHog: lines (`ActionsLineGraph`, also
cumulative), a stacked area (`ActionsAreaGraph`), stacked bars over time (`ActionsBar`), one bar per series
(`ActionsBarValue`), a pie (`ActionsPie`), a table (`ActionsTable`, `WorldMap`), a big number
(`BoldNumber`), the day-by-hour grid of a calendar heatmap and the boxes of a box plot. A compared
insight's previous period is overlaid on the current one (same x positions, the current period's dates),
dashed, in the colour of the series it is the past of.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import FigureBase
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.parts import Handle, index_ticks, legend
from posthog_insights_cli.charts.series import Series, date_range, point_labels, trend_series
from posthog_insights_cli.charts.style import (
    DOWN,
    MUTED,
    PRIMARY,
    TEXT,
    UP,
    Look,
    human,
    percent_axis,
    style_axes,
)
from posthog_insights_cli.charts.tables import draw_table

BLUES = LinearSegmentedColormap.from_list("posthog_blue", ["#ffffff", PRIMARY])
PREVIOUS_STYLE = (0, (5, 3))
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _previous_entry(series: Sequence[Series], interval: str | None) -> tuple[Handle, str]:
    """The legend's key to the dashed lines, with the previous period's dates when they are known."""
    dates = date_range(list(series), interval, previous=True)
    label = f"Previous period\n({dates})" if dates else "Previous period"
    return Line2D([], [], color=MUTED, linewidth=1.6, linestyle=PREVIOUS_STYLE), label


def _legend_title(snapshot: Snapshot, series: Sequence[Series]) -> str | None:
    by = snapshot.insight.breakdown_name
    if by is None or not any(s.breakdown is not None for s in series):
        return None
    names = {s.name for s in series}
    return f"{next(iter(names))} by {by}" if len(names) == 1 else f"by {by}"


def draw_time_series(
    canvas: FigureBase,
    snapshot: Snapshot,
    look: Look,
    *,
    mode: Literal["line", "area", "bar"] = "line",
    percent: bool = False,
) -> Axes:
    """Series over time: `mode` line, area (stacked) or bar (stacked); previous periods dashed lines."""
    every = [s for s in trend_series(snapshot) if not s.aggregate]
    ax = canvas.subplots()
    style_axes(ax, look)
    if not every:
        return ax
    current = [s for s in every if not s.previous]
    previous = [s for s in every if s.previous]
    labels = point_labels(every, snapshot.insight.interval)
    entries: list[tuple[Handle, str]] = []
    if mode == "bar":
        entries = _stacked_bars(ax, current, previous)
    else:
        if mode == "area" and current:
            width = max(len(s.values) for s in current)
            stack = [s.values + [0.0] * (width - len(s.values)) for s in current]
            ax.stackplot(range(width), stack, colors=[s.color for s in current], alpha=0.5, linewidth=0)
            running = np.cumsum(np.array(stack), axis=0)
            for s, top in zip(current, running, strict=True):
                (line,) = ax.plot(range(width), top, color=s.color, linewidth=1.5, label=s.label)
                entries.append((line, s.label))
        else:
            for s in current:
                (line,) = ax.plot(range(len(s.values)), s.values, color=s.color, linewidth=2, label=s.label)
                entries.append((line, s.label))
        for s in previous:
            ax.plot(
                range(len(s.values)),
                s.values,
                color=s.color,
                linewidth=1.6,
                linestyle=PREVIOUS_STYLE,
                alpha=0.85,
                label=f"{s.label} (previous)",
            )
    if not current:  # only previous periods (should not happen): name them in the legend
        entries = [(line, str(line.get_label())) for line in ax.get_lines()]
    index_ticks(ax, labels, look)
    ax.set_xlim(-0.5 if mode == "bar" else 0, max(len(labels) - (0.5 if mode == "bar" else 1), 1))
    if mode != "area" and all(v >= 0 for s in every for v in s.values):
        ax.set_ylim(bottom=0)
    if percent:
        percent_axis(ax)
    extra = [_previous_entry(previous, snapshot.insight.interval)] if previous and current else []
    legend(ax, entries, look, title=_legend_title(snapshot, every), extra=extra)
    return ax


def _stacked_bars(ax: Axes, current: list[Series], previous: list[Series]) -> list[tuple[Handle, str]]:
    """PostHog stacks bars over time; a previous period stacks beside the current one, paler."""
    entries: list[tuple[Handle, str]] = []
    groups = (
        [(current, 0.0, 0.8, 1.0)] if not previous else [(current, -0.2, 0.4, 1.0), (previous, 0.2, 0.4, 0.4)]
    )
    for members, offset, width, alpha in groups:
        bottom = np.zeros(max((len(s.values) for s in members), default=0))
        for s in members:
            values = np.zeros(len(bottom))
            values[: len(s.values)] = s.values
            bars = ax.bar(
                np.arange(len(bottom)) + offset,
                values,
                width=width,
                bottom=bottom,
                color=s.color,
                alpha=alpha,
                linewidth=0,
                label=s.label if not s.previous else f"{s.label} (previous)",
            )
            bottom = bottom + values
            if not s.previous:
                entries.append((bars, s.label))
    return entries


def _totals(snapshot: Snapshot) -> list[Series]:
    return [s for s in trend_series(snapshot) if not s.previous]


def draw_number(canvas: FigureBase, snapshot: Snapshot, look: Look) -> Axes:
    """PostHog's BoldNumber: the first series' number, big; with compare, the change from the previous
    period ("Up 12% from previous period")."""
    series = trend_series(snapshot)
    ax = canvas.subplots()
    ax.axis("off")
    current = [s for s in series if not s.previous]
    if not current:
        return ax
    first = current[0]
    value = first.total
    ax.text(
        0.5,
        0.6,
        human(value),
        ha="center",
        va="center",
        fontsize=38 if look.compact else 72,
        fontweight="bold",
        color=TEXT,
        transform=ax.transAxes,
        gid="bold-number",
    )
    ax.text(
        0.5,
        0.36,
        first.label,
        ha="center",
        va="center",
        fontsize=look.font + 1,
        color=MUTED,
        transform=ax.transAxes,
    )
    before = next((s for s in series if s.previous and s.partner == first.index), None)
    if snapshot.insight.compare and before is not None:
        ax.text(
            0.5,
            0.24,
            _change(value, before.total),
            ha="center",
            va="center",
            fontsize=look.font + 1,
            color=UP if value > before.total else DOWN if value < before.total else MUTED,
            transform=ax.transAxes,
            gid="bold-number-comparison",
        )
    return ax


def _change(current: float, previous: float) -> str:
    if previous == 0:
        return f"No data for comparison in the previous period ({human(previous)})"
    diff = (current - previous) / abs(previous)
    if diff > 0:
        words = f"▲ Up {human(100 * diff, 1)}% from"
    elif diff < 0:
        words = f"▼ Down {human(-100 * diff, 1)}% from"
    else:
        words = "No change from"
    return f"{words} previous period ({human(previous)})"


def draw_pie(canvas: FigureBase, snapshot: Snapshot, look: Look) -> Axes:
    series = [s for s in _totals(snapshot) if s.total > 0]
    ax = canvas.subplots()
    if not series:
        return ax
    total = sum(s.total for s in series)
    wedges, _texts, _pcts = ax.pie(
        [s.total for s in series],
        colors=[s.color for s in series],
        startangle=90,
        counterclock=False,
        wedgeprops={"linewidth": 1.5, "edgecolor": "white"},
        autopct=lambda share: f"{share:.1f}%" if share >= 4 else "",
        pctdistance=0.72,
        textprops={"color": "white", "fontsize": look.small, "fontweight": "bold"},
    )
    ax.set_aspect("equal")
    entries: list[tuple[Handle, str]] = [
        (w, f"{s.label}  {human(s.total)}") for w, s in zip(wedges, series, strict=True)
    ]
    legend(ax, entries, look, title=f"total {human(total)}")
    return ax


def draw_bar_value(canvas: FigureBase, snapshot: Snapshot, look: Look) -> Axes:
    """One horizontal bar per series, largest on top (PostHog's ActionsBarValue)."""
    series = sorted(_totals(snapshot), key=lambda s: s.total, reverse=True)[: look.table_rows]
    ax = canvas.subplots()
    style_axes(ax, look, grid_axis="x")
    if not series:
        return ax
    positions = list(range(len(series)))[::-1]
    bars = ax.barh(positions, [s.total for s in series], color=[s.color for s in series], height=0.65)
    ax.set_yticks(positions, [s.label for s in series], fontsize=look.small)
    for bar, s in zip(bars, series, strict=True):
        ax.annotate(
            human(s.total),
            (bar.get_width(), bar.get_y() + bar.get_height() / 2),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=look.small,
            color=TEXT,
        )
    ax.margins(x=0.12)
    return ax


def draw_series_table(canvas: FigureBase, snapshot: Snapshot, look: Look) -> Axes:
    """PostHog's ActionsTable (and a world map, as a table of countries): a series per row, its total."""
    series = _totals(snapshot)
    broken_down = any(s.breakdown is not None for s in series)
    header = (
        ["Series", snapshot.insight.breakdown_name or "Breakdown", "Total"]
        if broken_down
        else ["Series", "Total"]
    )
    rows = [
        [s.name, s.breakdown or "", human(s.total)] if broken_down else [s.label, human(s.total)]
        for s in series
    ]
    return draw_table(canvas, header, rows, look, numeric={len(header) - 1})


def draw_calendar_heatmap(canvas: FigureBase, snapshot: Snapshot, look: Look) -> Axes:
    """Day of week (Monday first, PostHog's 1-7) by hour of day, shaded by the count."""
    cells = snapshot.rows("trend_points").dropna(subset=["weekday", "hour"])
    grid = np.zeros((7, 24))
    for row in cells.itertuples(index=False):
        if 1 <= int(row.weekday) <= 7 and 0 <= int(row.hour) <= 23:
            grid[int(row.weekday) - 1, int(row.hour)] += float(row.value)
    ax = canvas.subplots()
    image = ax.imshow(grid, cmap=BLUES, aspect="auto", vmin=0)
    ax.set_yticks(range(7), WEEKDAYS, fontsize=look.small)
    ax.set_xticks(
        range(0, 24, 3 if look.compact else 2),
        [f"{h}:00" for h in range(0, 24, 3 if look.compact else 2)],
        fontsize=look.small,
    )
    ax.tick_params(length=0, colors=MUTED)
    for spine in ax.spines.values():
        spine.set_visible(False)
    bar = canvas.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.ax.tick_params(labelsize=look.small, colors=MUTED)
    bar.outline.set_visible(False)
    return ax


def draw_box_plot(canvas: FigureBase, snapshot: Snapshot, look: Look) -> Axes:
    """One box per interval (min, quartiles, median, max; the mean as a dot), series side by side."""
    series = trend_series(snapshot)
    ax = canvas.subplots()
    style_axes(ax, look)
    width = 0.7 / max(len(series), 1)
    entries: list[tuple[Handle, str]] = []
    for number, s in enumerate(series):
        stats = [
            {
                "med": row.box_median,
                "q1": row.box_p25,
                "q3": row.box_p75,
                "whislo": row.box_min,
                "whishi": row.box_max,
                "mean": row.value,
                "fliers": [],
            }
            for row in s.frame.itertuples(index=False)
        ]
        offset = (number - (len(series) - 1) / 2) * width
        ax.bxp(
            stats,
            positions=[i + offset for i in range(len(stats))],
            widths=width * 0.9,
            showmeans=True,
            patch_artist=True,
            boxprops={"facecolor": s.color, "alpha": 0.55, "edgecolor": s.color},
            medianprops={"color": s.color, "linewidth": 1.5},
            whiskerprops={"color": s.color},
            capprops={"color": s.color},
            meanprops={
                "marker": "o",
                "markerfacecolor": "white",
                "markeredgecolor": s.color,
                "markersize": 3,
            },
        )
        entries.append((Patch(color=s.color, alpha=0.55), s.label))
    index_ticks(ax, point_labels(series, snapshot.insight.interval), look)
    ax.set_ylim(bottom=0)
    if len(series) > 1:
        legend(ax, entries, look)
    return ax


def draw_trends(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    points = snapshot.rows("trend_points")
    display = snapshot.insight.display or "ActionsLineGraph"
    if "weekday" in points and points["weekday"].notna().any():
        draw_calendar_heatmap(canvas, snapshot, look)
        return
    if "box_median" in points and points["box_median"].notna().any():
        draw_box_plot(canvas, snapshot, look)
        return
    aggregate_only = bool(points["is_aggregate"].fillna(False).all())
    if display == "BoldNumber":
        draw_number(canvas, snapshot, look)
    elif display == "ActionsPie":
        draw_pie(canvas, snapshot, look)
    elif display in ("ActionsTable", "WorldMap"):
        draw_series_table(canvas, snapshot, look)
    elif display in ("ActionsBarValue", "ActionsHorizontalBar") or aggregate_only:
        draw_bar_value(canvas, snapshot, look)
    elif display in ("ActionsBar", "ActionsStackedBar"):
        draw_time_series(canvas, snapshot, look, mode="bar")
    elif display == "ActionsAreaGraph":
        draw_time_series(canvas, snapshot, look, mode="area")
    else:
        draw_time_series(canvas, snapshot, look)


def draw_stickiness(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    """Stickiness: how many persons did it on 1, 2, ... intervals; a line, or bars if saved so."""
    bars = snapshot.insight.display == "ActionsBar"
    ax = draw_time_series(canvas, snapshot, look, mode="bar" if bars else "line")
    ax.set_ylabel("persons", fontsize=look.small, color=MUTED)
