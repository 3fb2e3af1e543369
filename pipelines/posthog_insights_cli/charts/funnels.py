"""Funnels: steps with conversion and drop-off, time to convert, historical trends.

Steps are PostHog's left-to-right bars: each step's bar is the share of the first step's persons that
reached it, and the pale part above it, up to the previous step's level, is who dropped off there, with
the count and the share of the previous step. A broken-down (or compared) funnel puts one bar per group
side by side in each step, each group's overall conversion in the legend.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import FigureBase

from posthog_insights_cli.charts.labels import breakdown_label, period_label
from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.parts import Handle, legend
from posthog_insights_cli.charts.style import (
    MUTED,
    TEXT,
    Look,
    compact,
    duration,
    human,
    percent_axis,
    series_color,
    style_axes,
)
from posthog_insights_cli.charts.trends import draw_time_series


def _group_label(snapshot: Snapshot, group: pd.DataFrame, number: int) -> str:
    first = group.iloc[0]
    found = breakdown_label(
        first.get("breakdown_value"),
        breakdown_type=snapshot.insight.breakdown_type,
        histogram=snapshot.insight.histogram,
    )
    period = period_label(first.get("compare_label"))
    if found is not None and period is not None:
        return f"{found} ({period.lower()})"
    return found or period or f"Group {number + 1}"


def _step_name(row: pd.Series) -> str:
    custom = row.get("custom_name")
    name = custom if isinstance(custom, str) and custom else row.get("name")
    return str(name) if name is not None and not pd.isna(name) else f"Step {int(row['step_order']) + 1}"


def draw_funnel_steps(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    steps = snapshot.rows("funnel_steps")
    groups = [group.sort_values("step_order") for _, group in steps.groupby("breakdown_index", sort=True)]
    ax = canvas.subplots()
    style_axes(ax, look)
    percent_axis(ax)
    if not groups:
        return
    n_groups = len(groups)
    width = 0.8 / n_groups
    entries: list[tuple[Handle, str]] = []
    # numbers on the bars while they fit (a dashboard panel has room for fewer): conversion and drop-off,
    # else the conversion alone
    bars = n_groups * len(groups[0])
    labelled = bars <= (6 if look.compact else 16)
    percent_only = not labelled and bars <= (12 if look.compact else 24)
    for number, group in enumerate(groups):
        counts = [int(c) for c in group["count"]]
        first = max(counts[0], 1)
        compared_previous = (
            str(group["compare_label"].iloc[0]) == "previous" if "compare_label" in group else False
        )
        color = series_color(number if not compared_previous else 0)
        alpha = 0.45 if compared_previous else 1.0
        offset = (number - (n_groups - 1) / 2) * width
        for step, count in enumerate(counts):
            x = step + offset
            reached = 100.0 * count / first
            before = 100.0 if step == 0 else 100.0 * counts[step - 1] / first
            ax.bar(
                x,
                before - reached,
                bottom=reached,
                width=width * 0.92,
                color=color,
                alpha=0.16,
                linewidth=0,
                gid="drop-off",
            )
            bar = ax.bar(
                x, reached, width=width * 0.92, color=color, alpha=alpha, linewidth=0, gid="converted"
            )
            if step == 0:
                entries.append(
                    (
                        bar,
                        f"{_group_label(snapshot, group, number)} · {human(100.0 * counts[-1] / first, 1)}%",
                    )
                )
            if percent_only:
                ax.text(
                    x,
                    reached,
                    f"{human(reached, 0)}%",
                    ha="center",
                    va="bottom",
                    fontsize=look.small - 0.5,
                    color=TEXT,
                    gid="conversion",
                )
            if not labelled:
                continue
            # above the bar, unless the drop-off above it is too thin to hold it: then inside the bar's top
            inside = step > 0 and before - reached < 11 and reached > 14
            ax.text(
                x,
                reached - (1 if inside else 0),
                f"{human(reached, 1)}%\n{compact(count)}",
                ha="center",
                va="top" if inside else "bottom",
                fontsize=look.small,
                color="white" if inside else TEXT,
                gid="conversion",
            )
            if step > 0:
                lost = counts[step - 1] - count
                share = 100.0 * lost / max(counts[step - 1], 1)
                ax.text(
                    x,
                    before,
                    f"↓{compact(lost)}\n{human(share, 1)}%",
                    ha="center",
                    va="bottom",
                    fontsize=look.small - 0.5,
                    color=MUTED,
                    gid="drop-off-label",
                )
    names = [_step_name(row) for _, row in groups[0].iterrows()]
    ax.set_xticks(
        range(len(names)), [f"{i + 1}. {name}" for i, name in enumerate(names)], fontsize=look.small
    )
    ax.set_ylim(0, 118 if labelled else 108)
    ax.set_yticks([0, 25, 50, 75, 100])
    if labelled and len(names) > 1 and not look.compact:
        ax.text(
            1.0,
            1.0,
            "bar: % of step 1 · ↓ dropped off: persons, % of the step before",
            ha="right",
            va="bottom",
            fontsize=look.small - 0.5,
            color=MUTED,
            transform=ax.transAxes,
        )
    if n_groups == 1:
        counts = [int(c) for c in groups[0]["count"]]
        total = human(100.0 * counts[-1] / max(counts[0], 1), 1)
        ax.set_title(
            f"Total conversion {total}%  ·  {human(counts[0])} entered, {human(counts[-1])} finished",
            loc="left",
            fontsize=look.small,
            color=MUTED,
        )
    else:
        title = snapshot.insight.breakdown_name or ("period" if snapshot.insight.compare else None)
        legend(ax, entries, look, title=f"conversion by {title}" if title else "conversion")


def draw_time_to_convert(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    bins = snapshot.rows("funnel_conversion_bins")
    ax = canvas.subplots()
    style_axes(ax, look)
    if "compare_label" in bins and bins["compare_label"].notna().any():
        groups = [
            (period_label(label) or "", group) for label, group in bins.groupby("compare_label", sort=False)
        ]
    else:
        groups = [("", bins)]
    width = 0.8 / len(groups)
    entries: list[tuple[Handle, str]] = []
    labels: list[str] = []
    for number, (label, group) in enumerate(groups):
        group = group.sort_values("bin_index")
        offset = (number - (len(groups) - 1) / 2) * width
        bars = ax.bar(
            [i + offset for i in range(len(group))],
            group["count"],
            width=width * 0.92,
            color=series_color(0),
            alpha=1.0 if number == 0 else 0.45,
            linewidth=0,
        )
        average = group["average_conversion_time"].dropna()
        entries.append(
            (bars, f"{label} · average {duration(float(average.iloc[0]) if len(average) else None)}")
        )
        if len(group) > len(labels):
            labels = [duration(float(s)) for s in group["bin_seconds"]]
    ax.set_xticks(range(len(labels)), labels, fontsize=look.small)
    ax.set_xlabel("time to convert", fontsize=look.small, color=MUTED)
    ax.set_ylabel("persons", fontsize=look.small, color=MUTED)
    if len(groups) > 1:
        legend(ax, entries, look)
    else:
        average = bins["average_conversion_time"].dropna()
        words = duration(float(average.iloc[0])) if len(average) else "–"
        ax.set_title(f"Average time to convert {words}", loc="left", fontsize=look.small, color=MUTED)


def draw_funnel_trends(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    """A funnel's conversion rate over time, one line per breakdown value."""
    ax = draw_time_series(canvas, snapshot, look, percent=True)
    ax.set_ylabel("conversion rate", fontsize=look.small, color=MUTED)


def draw_funnel(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    """The visualisation saved with the funnel, or whichever one its rows are for."""
    have = {name for name, frame in snapshot.tables.items() if len(frame)}
    order = {
        "time_to_convert": ("funnel_conversion_bins", "funnel_steps", "trend_points"),
        "trends": ("trend_points", "funnel_steps", "funnel_conversion_bins"),
    }.get(snapshot.insight.funnel_viz or "steps", ("funnel_steps", "funnel_conversion_bins", "trend_points"))
    table = next((name for name in order if name in have), "funnel_steps")
    {
        "funnel_steps": draw_funnel_steps,
        "funnel_conversion_bins": draw_time_to_convert,
        "trend_points": draw_funnel_trends,
    }[table](canvas, snapshot, look)
