"""One insight as a figure, or a dashboard's insights as one grid of panels.

Each kind has one drawing function that fills a matplotlib `Figure` or `SubFigure` (a dashboard panel is a
subfigure), so an insight looks the same alone and on a dashboard, only smaller. The figure's title is
the insight's name; a line under the chart says what is shown: kind, display, breakdown, compare, the
dates and when PostHog computed it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import matplotlib.pyplot as plt
from matplotlib.figure import Figure, FigureBase
from PIL import Image

from posthog_insights_cli.charts.funnels import draw_funnel
from posthog_insights_cli.charts.lifecycle import draw_lifecycle
from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.parts import message
from posthog_insights_cli.charts.paths import draw_paths
from posthog_insights_cli.charts.retention import draw_retention
from posthog_insights_cli.charts.series import date_range, trend_series
from posthog_insights_cli.charts.style import GRID, MUTED, TEXT, Look
from posthog_insights_cli.charts.tables import draw_sql
from posthog_insights_cli.charts.trends import draw_stickiness, draw_trends

Drawer = Callable[[FigureBase, Snapshot, Look], None]
DRAWERS: Final[dict[str, Drawer]] = {
    "trends": draw_trends,
    "stickiness": draw_stickiness,
    "lifecycle": draw_lifecycle,
    "funnels": draw_funnel,
    "retention": draw_retention,
    "paths": draw_paths,
    "sql": draw_sql,
    "table": draw_sql,
}
KIND_NAMES: Final[dict[str, str]] = {
    "trends": "Trends",
    "stickiness": "Stickiness",
    "lifecycle": "Lifecycle",
    "funnels": "Funnel",
    "retention": "Retention",
    "paths": "Paths",
    "sql": "SQL",
    "table": "Data table",
}
DISPLAY_NAMES: Final[dict[str, str]] = {
    "ActionsLineGraph": "line chart",
    "ActionsLineGraphCumulative": "cumulative line chart",
    "ActionsAreaGraph": "area chart",
    "ActionsBar": "bar chart",
    "ActionsStackedBar": "stacked bar chart",
    "ActionsBarValue": "bar per series",
    "ActionsHorizontalBar": "bar per series",
    "ActionsPie": "pie",
    "ActionsTable": "table",
    "BoldNumber": "number",
    "WorldMap": "world map",
    "CalendarHeatmap": "calendar heatmap",
    "BoxPlot": "box plot",
}
FUNNEL_VIZ: Final[dict[str, str]] = {
    "steps": "steps",
    "time_to_convert": "time to convert",
    "trends": "historical trends",
}
FIGURE_SIZE: Final = (10.0, 5.6)
FIGURE_DPI: Final = 110
PANEL_SIZE: Final = (5.4, 3.3)
PANEL_DPI: Final = 90


def describe(snapshot: Snapshot, *, short: bool = False) -> str:
    """What the chart shows, in a line: "Trends · line chart · by $browser · vs previous period · ..."."""
    insight = snapshot.insight
    parts = [KIND_NAMES.get(insight.kind, insight.kind)]
    if insight.kind in ("trends", "stickiness") and insight.display in DISPLAY_NAMES:
        parts.append(DISPLAY_NAMES[insight.display])
    if insight.kind == "funnels":
        parts.append(FUNNEL_VIZ.get(insight.funnel_viz or "steps", insight.funnel_viz or "steps"))
    if insight.breakdown_name:
        parts.append(f"by {insight.breakdown_name}")
    if insight.compare:
        parts.append("vs previous period")
    if short:
        return " · ".join(parts)
    if insight.kind in ("trends", "stickiness", "lifecycle", "funnels"):
        found = date_range(trend_series(snapshot), insight.interval)
        if found:
            parts.append(found)
    if insight.interval and _over_time(snapshot):
        parts.append(f"per {insight.interval}")
    if snapshot.last_refresh is not None:
        parts.append(f"computed {snapshot.last_refresh:%Y-%m-%d %H:%M} UTC")
    parts.append(f"insight {insight.id}" + (f" ({insight.short_id})" if insight.short_id else ""))
    return " · ".join(parts)


def _over_time(snapshot: Snapshot) -> bool:
    """Whether the chart runs along the insight's interval (a funnel's steps or a total do not)."""
    insight = snapshot.insight
    if insight.kind == "retention":
        return True
    if insight.kind == "funnels":
        return insight.funnel_viz == "trends"
    if insight.kind == "trends":
        return insight.display not in (
            "BoldNumber",
            "ActionsPie",
            "ActionsTable",
            "ActionsBarValue",
            "WorldMap",
        )
    return insight.kind in ("stickiness", "lifecycle")


# What each outcome of the latest attempt means for a panel without rows (the statuses of
# `insight_results`).
_WHY: Final[dict[str, str]] = {
    "cache_miss": "PostHog had no cached result (cache miss)",
    "pending": "PostHog was still calculating it",
    "error": "the calculation failed",
}


def _why_empty(snapshot: Snapshot) -> str:
    if snapshot.status is None:
        return "never loaded: run `posthog-insights run`"
    if snapshot.status == "ok":
        return "its latest result has nothing to draw"
    text = f"latest attempt: {_WHY.get(snapshot.status, snapshot.status)}"
    if snapshot.error:
        text += f": {snapshot.error}"
    return text if len(text) <= 90 else text[:89] + "…"


def draw(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    """Draw the snapshot into `canvas`; without rows, a "no result yet" panel saying why."""
    drawer = DRAWERS.get(snapshot.insight.kind)
    if snapshot.empty:
        message(canvas, "no result yet", look, detail=_why_empty(snapshot))
    elif drawer is None:
        message(canvas, f"{snapshot.insight.kind} insights are not drawn", look)
    else:
        drawer(canvas, snapshot, look)


def render_insight(snapshot: Snapshot) -> Figure:
    fig = plt.figure(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    fig.suptitle(snapshot.insight.name, x=0.01, ha="left", fontsize=13, fontweight="bold", color=TEXT)
    fig.supxlabel(describe(snapshot), x=0.01, ha="left", fontsize=7.5, color=MUTED)
    draw(fig, snapshot, Look())
    return fig


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a dashboard grid: one column for one insight, two up to four, then three."""
    columns = 1 if count <= 1 else 2 if count <= 4 else 3
    return max(1, math.ceil(count / columns)), columns


def render_dashboard(title: str, snapshots: Sequence[Snapshot], subtitle: str | None = None) -> Figure:
    """All the snapshots as panels of one figure, in order, left to right and top to bottom."""
    rows, columns = grid_shape(len(snapshots))
    fig = plt.figure(
        figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.5), dpi=PANEL_DPI, layout="constrained"
    )
    fig.suptitle(title, x=0.005, ha="left", fontsize=14, fontweight="bold", color=TEXT)
    if subtitle:
        fig.supxlabel(subtitle, x=0.005, ha="left", fontsize=7, color=MUTED)
    panels = fig.subfigures(rows, columns, squeeze=False, wspace=0.01, hspace=0.01)
    look = Look(compact=True)
    for panel, snapshot in zip(panels.flat, snapshots, strict=False):
        panel.patch.set_edgecolor(GRID)
        panel.patch.set_linewidth(1.0)
        panel.set_gid(f"insight-{snapshot.insight.id}")
        panel.suptitle(snapshot.insight.name, x=0.02, ha="left", fontsize=9, fontweight="bold", color=TEXT)
        panel.supxlabel(describe(snapshot, short=True), x=0.02, ha="left", fontsize=6, color=MUTED)
        draw(panel, snapshot, look)
    for panel in list(panels.flat)[len(snapshots) :]:
        panel.set_visible(False)
    return fig


def save(fig: Figure, output: Path) -> None:
    """Write the figure; a PNG as a 256-colour palette image.

    Charts are flat colours on white, so a palette loses nothing visible and the file is about a third
    of the size of a true-colour one (a dashboard grid: ~80 KB instead of ~230 KB). Other formats (svg,
    pdf) are written as matplotlib writes them."""
    if output.suffix.lower() != ".png":
        fig.savefig(output)
        return
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        flat = image.convert("RGB")
        palette = flat.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        palette.save(output, format="PNG", optimize=True)
