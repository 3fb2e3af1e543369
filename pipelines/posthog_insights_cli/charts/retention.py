"""Retention: PostHog's cohort table as a heatmap, one labelled panel per breakdown value.

Each row is a cohort (its start, its size), each column a period after it; a cell is the share of the
cohort still active then, shaded by it and written in it, as PostHog's retention table shows. A
broken-down retention (PostHog numbers the cohorts of every breakdown value on, one after another) gets a
panel per value, titled "property = value", each with its own cohorts from the top. On a dashboard panel
the table would be too small to read: there it is PostHog's retention graph, the mean share by period, a
line per breakdown value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import FigureBase

from posthog_insights_cli.charts.labels import breakdown_label
from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.parts import Handle, index_ticks, legend
from posthog_insights_cli.charts.style import (
    MUTED,
    PRIMARY,
    TEXT,
    Look,
    human,
    percent_axis,
    series_color,
    style_axes,
)

CELLS = LinearSegmentedColormap.from_list("posthog_retention", ["#f3f4ef", PRIMARY])


def _cohort_name(row: pd.Series, period: str | None) -> str:
    moment = row.get("cohort_date")
    if isinstance(moment, pd.Timestamp) and not pd.isna(moment):
        if period == "hour":
            return f"{moment.day} {moment:%b %H:00}"
        if period == "month":
            return f"{moment:%b %Y}"
        return f"{moment.day} {moment:%b %Y}" if period == "week" else f"{moment.day} {moment:%b}"
    label = row.get("cohort_label")
    return str(label) if isinstance(label, str) else f"Cohort {int(row['cohort_index'])}"


def blocks(snapshot: Snapshot) -> list[tuple[str | None, pd.DataFrame]]:
    """The cells cut by breakdown value (in the order PostHog sent them), each block's title first."""
    cells = snapshot.rows("retention_cells")
    if cells.empty:
        return []
    insight = snapshot.insight
    raw = cells["breakdown_value"] if "breakdown_value" in cells else pd.Series([None] * len(cells))
    keys = raw.where(raw.notna(), None)
    out: list[tuple[str | None, pd.DataFrame]] = []
    for key in dict.fromkeys(keys.tolist()):
        block = cells[keys.isna()] if key is None else cells[keys == key]
        value = breakdown_label(key, breakdown_type=insight.breakdown_type)
        title = (
            None
            if value is None
            else f"{insight.breakdown_name} = {value}"
            if insight.breakdown_name
            else value
        )
        out.append((title, block))
    return out


def shares(block: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Share (%) of each cohort (rows: its cohorts in order) active in each period; and cohort sizes."""
    counts = block.pivot_table(index="cohort_index", columns="period_index", values="value", aggfunc="sum")
    counts = counts.sort_index().sort_index(axis=1)
    size = counts[counts.columns[0]]
    return counts.div(size.replace(0, np.nan), axis=0) * 100, size


def mean_retention(snapshot: Snapshot, grid: pd.DataFrame, size: pd.Series) -> pd.Series:
    """Retention by period over all cohorts: PostHog's simple mean of the cohorts' shares, or the
    weighted one (persons over persons) when the insight asks for it."""
    how = snapshot.insight.source.get("retentionFilter")
    weighted = isinstance(how, dict) and how.get("meanRetentionCalculation") == "weighted"
    if not weighted:
        return grid.mean(axis=0, skipna=True)
    counts = grid.mul(size, axis=0) / 100
    present = grid.notna().mul(size, axis=0)
    return counts.sum(axis=0) / present.sum(axis=0).replace(0, np.nan) * 100


def draw_retention_lines(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    """PostHog's retention graph (what a dashboard tile shows): mean retention by period, a line per
    breakdown value."""
    ax = canvas.subplots()
    style_axes(ax, look)
    percent_axis(ax)
    entries: list[tuple[Handle, str]] = []
    heads: list[str] = []
    for number, (title, block) in enumerate(blocks(snapshot)):
        grid, size = shares(block)
        mean = mean_retention(snapshot, grid, size)
        (line,) = ax.plot(range(len(mean)), mean.values, color=series_color(number), linewidth=2)
        value = title.split(" = ", 1)[-1] if title else "all cohorts"
        entries.append((line, value))
        if len(mean) > len(heads):
            heads = _period_heads(block, list(grid.columns))
    index_ticks(ax, heads, look)
    ax.set_ylim(0, 105)
    legend(
        ax,
        entries,
        look,
        title=f"by {snapshot.insight.breakdown_name}" if snapshot.insight.breakdown_name else "mean",
    )


def _period_heads(block: pd.DataFrame, periods: list[int]) -> list[str]:
    """Column heads: the first period's label in full ("Day 0"), then its number only (1, 2, ...)."""
    names = block.drop_duplicates("period_index").set_index("period_index")["period_label"]
    heads = []
    for position, period in enumerate(periods):
        label = names.get(period)
        label = label if isinstance(label, str) and label else f"Period {period}"
        head, _, tail = label.rpartition(" ")
        heads.append(label if position == 0 or not head or not tail.isdigit() else tail)
    return heads


def draw_retention(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    if look.compact:
        draw_retention_lines(canvas, snapshot, look)
        return
    parts = blocks(snapshot)
    columns = 1 if len(parts) == 1 else 2
    rows = -(-len(parts) // columns)
    axes = canvas.subplots(rows, columns, squeeze=False)
    period = snapshot.insight.interval
    for ax, (title, block) in zip(axes.flat, parts, strict=False):
        grid, size = shares(block)
        ax.imshow(grid.values, cmap=CELLS, aspect="auto", vmin=0, vmax=100)
        first = block.drop_duplicates("cohort_index").set_index("cohort_index")
        names = [f"{_cohort_name(first.loc[c], period)}  ({human(size[c])})" for c in grid.index]
        heads = _period_heads(block, list(grid.columns))
        ax.set_yticks(range(len(grid.index)), names, fontsize=look.small)
        ax.set_xticks(range(len(grid.columns)), heads, fontsize=look.small, rotation=0)
        ax.xaxis.tick_top()
        ax.tick_params(length=0, colors=MUTED)
        for spine in ax.spines.values():
            spine.set_visible(False)
        cell_font = look.small - (1.5 if len(grid.columns) > 10 else 0.5)
        for (r, c), value in np.ndenumerate(grid.values):
            if not np.isnan(value):
                ax.text(
                    c,
                    r,
                    f"{value:.0f}%" if value < 99.95 or c else "100%",
                    ha="center",
                    va="center",
                    fontsize=cell_font,
                    color="white" if value > 55 else TEXT,
                )
        if title:
            ax.set_title(
                title,
                loc="left",
                fontsize=look.font,
                color=TEXT,
                fontweight="bold",
                pad=14 if not look.compact else 10,
            )
    for ax in list(axes.flat)[len(parts) :]:
        ax.set_visible(False)
