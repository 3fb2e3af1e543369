"""`posthog-insights show INSIGHT` / `show --dashboard ID`: latest snapshots, from the warehouse, as PNG.

One insight becomes one chart drawn the way PostHog draws its kind and display (see `charts`); a
dashboard becomes one grid with a panel per insight on it, a "no result yet" panel for an insight that
has no loaded ok snapshot. Reads only the warehouse (the `_latest` views), never PostHog.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from posthog_insights.errors import ConfigError
from posthog_insights_cli.analyst import open_pipeline
from posthog_insights_cli.charts import Insight, render_dashboard, render_insight, save
from posthog_insights_cli.charts import warehouse as read

find_insight = read.find_insight


def render(pipeline: Any, insight: Insight) -> Figure:
    """The insight's latest snapshot as a figure; a one-line ConfigError if there is none to draw."""
    (snapshot,) = read.snapshots(pipeline, [insight])
    if snapshot.empty:
        raise ConfigError(
            f"insight: {insight.name!r} ({insight.kind}) has no loaded ok snapshot to draw yet; "
            "run `posthog-insights run` to load one"
        )
    return render_insight(snapshot)


def render_dashboard_grid(
    pipeline: Any, dashboard_id: int, project_id: int | None
) -> tuple[Figure, str, int]:
    """The dashboard's insights as one grid; (figure, its title, how many insights)."""
    insights = read.dashboard_insights(pipeline, dashboard_id, project_id)
    if not insights:
        where = f" in project {project_id}" if project_id is not None else ""
        raise ConfigError(
            f"show --dashboard {dashboard_id}: no insight in the warehouse is on dashboard {dashboard_id}"
            f"{where}; check the id (PostHog's dashboard URL has it) or load its insights with "
            "`posthog-insights run`"
        )
    snapshots = read.snapshots(pipeline, insights)
    existing = read.relations(pipeline)
    title = read.dashboard_title(pipeline, dashboard_id, {i.project_id for i in insights}, existing)
    drawn = sum(not s.empty for s in snapshots)
    subtitle = f"{len(insights)} insights, {drawn} with a result · latest snapshots from the warehouse"
    return render_dashboard(title, snapshots, subtitle), title, len(insights)


def run_show(args: argparse.Namespace) -> int:
    if (args.insight is None) == (args.dashboard is None):
        raise ConfigError("show: give an insight id or short id, or --dashboard ID (one of the two)")
    pipeline = open_pipeline(args.pipeline_name, args.dataset, args.destination, args.pipelines_dir)
    if args.dashboard is not None:
        fig, title, count = render_dashboard_grid(pipeline, int(args.dashboard), args.project_id)
        output = Path(args.output or f"dashboard-{int(args.dashboard)}.png")
        summary = f"dashboard {int(args.dashboard)}: {title}, {count} insights"
    else:
        insight = find_insight(pipeline, str(args.insight), args.project_id)
        fig = render(pipeline, insight)
        output = Path(args.output or f"insight-{insight.id}.png")
        summary = f"{insight.kind}: {insight.name}"
    save(fig, output)
    plt.close(fig)
    print(f"wrote {output} ({summary})")
    return 0
