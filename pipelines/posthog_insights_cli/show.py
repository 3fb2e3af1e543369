"""`posthog-insights show INSIGHT`: an insight's latest snapshot, from the warehouse, as a PNG chart.

Trend lines (trends, stickiness, lifecycle, funnel trends), funnel bars, a time-to-convert histogram, a
retention heatmap, and tables for paths and SQL insights — close enough to PostHog's own charts to hold
one next to the other. Reads only the warehouse (the `_latest` views), never PostHog.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from posthog_insights.errors import ConfigError
from posthog_insights_cli.analyst import open_pipeline, query


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def find_insight(pipeline: Any, ref: str, project_id: int | None) -> pd.Series:
    where = f"id = {int(ref)}" if ref.isdigit() else f"short_id = {_quote(ref)}"
    if project_id is not None:
        where += f" AND project_id = {int(project_id)}"
    rows = query(f"SELECT * FROM insights WHERE {where}", pipeline)
    if rows.empty:
        raise ConfigError(f"insight: {ref!r} is not in the warehouse; run `posthog-insights run` first")
    if len(rows) > 1:
        raise ConfigError(f"insight: {ref!r} exists in several projects; pass --project-id")
    row: pd.Series = rows.iloc[0]
    return row


def _latest(pipeline: Any, table: str, insight: pd.Series, order: str) -> pd.DataFrame:
    return query(
        f"SELECT * FROM {table}_latest WHERE project_id = {int(insight['project_id'])} "
        f"AND insight_id = {int(insight['id'])} AND variant = '' ORDER BY {order}",
        pipeline,
    )


def _trend_lines(ax: Axes, points: pd.DataFrame) -> None:
    for (_, label), series in points.groupby(["series_index", "series_label"], dropna=False, sort=True):
        name = str(label)
        if "breakdown_value" in series and series["breakdown_value"].notna().any():
            name += f" ({series['breakdown_value'].iloc[0]})"
        if "compare_label" in series and series["compare_label"].notna().any():
            name += f" [{series['compare_label'].iloc[0]}]"
        if series["is_aggregate"].all():
            ax.bar([name], series["value"])
            continue
        x = series["date"] if series["date"].notna().all() else series["point_index"]
        ax.plot(x, series["value"], marker="o", markersize=2.5, linewidth=1.4, label=name)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    ax.grid(alpha=0.3)
    ax.figure.autofmt_xdate()


def _funnel_bars(ax: Axes, steps: pd.DataFrame) -> None:
    groups = list(steps.groupby("breakdown_index", sort=True))
    width = 0.8 / max(len(groups), 1)
    for offset, (_, group) in enumerate(groups):
        positions = [i + offset * width for i in range(len(group))]
        label = group["breakdown_value"].iloc[0] if group["breakdown_value"].notna().any() else "all users"
        bars = ax.bar(positions, group["count"], width=width, label=str(label))
        first = max(int(group["count"].iloc[0]), 1)
        for bar, count in zip(bars, group["count"], strict=True):
            ax.annotate(
                f"{100 * count / first:.0f}%",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    names = groups[0][1]["name"].tolist() if groups else []
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=15, fontsize=8)
    ax.set_ylabel("persons")
    if len(groups) > 1:
        ax.legend(fontsize=7, frameon=False)


def _conversion_bins(ax: Axes, bins: pd.DataFrame) -> None:
    hours = bins["bin_seconds"] / 3600.0
    ax.bar(hours, bins["count"], width=(hours.diff().median() if len(hours) > 1 else 1.0) * 0.9, align="edge")
    ax.set_xlabel("time to convert (hours)")
    ax.set_ylabel("persons")


def _retention_heatmap(ax: Axes, cells: pd.DataFrame) -> None:
    grid = cells.pivot_table(index="cohort_index", columns="period_index", values="count", aggfunc="sum")
    first = grid[grid.columns[0]].replace(0, float("nan"))
    share = grid.div(first, axis=0) * 100
    ax.imshow(share.values, cmap="Blues", aspect="auto", vmin=0, vmax=100)
    labels = cells.drop_duplicates("cohort_index").set_index("cohort_index")["cohort_label"]
    ax.set_yticks(range(len(grid.index)), [str(labels.get(i, i)) for i in grid.index], fontsize=7)
    ax.set_xticks(range(len(grid.columns)), [f"P{c}" for c in grid.columns], fontsize=7)
    for (r, c), value in pd.DataFrame(share.values).stack().items():
        ax.text(
            c,
            r,
            f"{value:.0f}%",
            ha="center",
            va="center",
            fontsize=6,
            color="white" if value > 60 else "black",
        )


def _table(ax: Axes, frame: pd.DataFrame, max_rows: int = 20) -> None:
    ax.axis("off")
    shown = frame.head(max_rows)
    table = ax.table(
        cellText=shown.astype(str).values.tolist(), colLabels=list(shown.columns), loc="upper center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1, 1.2)


def _paths_table(ax: Axes, edges: pd.DataFrame) -> None:
    _table(ax, edges[["source", "target", "value", "average_conversion_time"]])


def _sql_table(ax: Axes, rows: pd.DataFrame) -> None:
    _table(ax, pd.DataFrame([json.loads(r) for r in rows["row"]]))


# (kinds, tidy table, row order, drawer): the first table holding rows for the insight is drawn. A funnel
# is tried as trends, then steps, then time-to-convert bins, as its visualisation decides which it has.
_DRAWERS: list[tuple[tuple[str, ...], str, str, Callable[[Axes, pd.DataFrame], None]]] = [
    (
        ("trends", "stickiness", "lifecycle", "funnels"),
        "trend_points",
        "series_index, point_index",
        _trend_lines,
    ),
    (("funnels",), "funnel_steps", "breakdown_index, step_order", _funnel_bars),
    (("funnels",), "funnel_conversion_bins", "bin_index", _conversion_bins),
    (("retention",), "retention_cells", "cohort_index, period_index", _retention_heatmap),
    (("paths",), "path_edges", "value DESC", _paths_table),
    (("sql",), "sql_rows", "row_index", _sql_table),
]


def render(pipeline: Any, insight: pd.Series) -> Figure:
    kind = str(insight["kind"])
    title = str(insight["name"] or insight.get("derived_name") or f"insight {insight['id']}")
    for kinds, table, order, draw in _DRAWERS:
        if kind not in kinds:
            continue
        rows = _latest(pipeline, table, insight, order)
        if rows.empty:
            continue
        fig, ax = plt.subplots(figsize=(10, 5.5), dpi=110)
        draw(ax, rows)
        ax.set_title(f"{title}  ·  {kind}", fontsize=11, loc="left")
        fig.tight_layout()
        return fig
    raise ConfigError(f"insight: {title!r} ({kind}) has no loaded ok snapshot to draw yet")


def run_show(args: argparse.Namespace) -> int:
    if (args.insight is None) == (args.dashboard is None):
        raise ConfigError("show: give an insight id or short id, or --dashboard ID (one of the two)")
    if args.dashboard is not None:
        raise ConfigError("show --dashboard: not available yet")
    pipeline = open_pipeline(args.pipeline_name, args.dataset, args.destination, args.pipelines_dir)
    insight = find_insight(pipeline, str(args.insight), args.project_id)
    fig = render(pipeline, insight)
    output = Path(args.output or f"insight-{int(insight['id'])}.png")
    fig.savefig(output)
    plt.close(fig)
    print(f"wrote {output} ({insight['kind']}: {insight['name']})")
    return 0
