"""Tables: SQL insights, data tables over events or web analytics, a trends table display.

A SQL visualisation saved as a chart (`DataVisualizationNode` with a line or bar display and its
`chartSettings` axes) is drawn as that chart; every other table is a table, its first rows only, long
cells cut, numbers right-aligned, as PostHog's data table reads.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import FigureBase

from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.parts import Handle, index_ticks, legend
from posthog_insights_cli.charts.style import GRID, MUTED, TEXT, Look, human, series_color, style_axes

_CELL_MAX = 28


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return human(float(value))
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= _CELL_MAX else text[: _CELL_MAX - 1] + "…"


def draw_table(
    canvas: FigureBase,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    look: Look,
    *,
    numeric: Collection[int] = (),
    total_rows: int | None = None,
) -> Axes:
    """A table of the first `look.table_rows` rows; a note says how many more there are."""
    ax = canvas.subplots()
    ax.axis("off")
    shown = [list(row) for row in rows[: look.table_rows]]
    if not shown:
        ax.text(0.5, 0.5, "no rows", ha="center", va="center", color=MUTED, transform=ax.transAxes)
        return ax
    table = ax.table(cellText=shown, colLabels=list(header), loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(look.small)
    table.scale(1, 1.15 if look.compact else 1.3)
    for (row, column), cell in table.get_celld().items():
        cell.set_edgecolor(GRID)
        cell.set_linewidth(0.5)
        if column in numeric:
            cell.get_text().set_horizontalalignment("right")
        if row == 0:
            cell.set_facecolor("#eeefe9")
            cell.get_text().set_fontweight("bold")
            cell.get_text().set_color(TEXT)
        elif row % 2 == 0:
            cell.set_facecolor("#f9faf7")
    more = (total_rows if total_rows is not None else len(rows)) - len(shown)
    if more > 0:
        ax.text(
            0.0,
            0.0,
            f"… and {human(more)} more rows",
            fontsize=look.small,
            color=MUTED,
            transform=ax.transAxes,
        )
    return ax


def _records(snapshot: Snapshot) -> pd.DataFrame:
    rows = snapshot.rows("sql_rows")
    parsed = (
        [json.loads(text) if isinstance(text, str) else None for text in rows["row"]] if len(rows) else []
    )
    if parsed and all(isinstance(item, dict) for item in parsed):
        return pd.DataFrame(parsed)
    return pd.DataFrame(
        {"row": [item if not isinstance(item, (dict, list)) else json.dumps(item) for item in parsed]}
    )


def draw_sql(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    frame = _records(snapshot)
    insight = snapshot.insight
    settings = insight.chart_settings
    x = (settings.get("xAxis") or {}).get("column") if isinstance(settings.get("xAxis"), dict) else None
    ys = [
        item.get("column")
        for item in settings.get("yAxis") or []
        if isinstance(item, dict) and item.get("column") in frame.columns
    ]
    chart = insight.query.get("kind") == "DataVisualizationNode" and insight.display in (
        "ActionsLineGraph",
        "ActionsBar",
        "ActionsAreaGraph",
    )
    if chart and x in frame.columns and ys:
        _sql_chart(canvas, frame, str(x), [str(y) for y in ys], insight.display == "ActionsBar", look)
        return
    numeric = {i for i, column in enumerate(frame.columns) if pd.api.types.is_numeric_dtype(frame[column])}
    rows = [[_cell(v) for v in record] for record in frame.itertuples(index=False)]
    # web analytics tables name their columns "context.columns.visitors": PostHog shows "visitors"
    header = [_cell(str(c).removeprefix("context.columns.")) for c in frame.columns]
    draw_table(canvas, header, rows, look, numeric=numeric)


def _sql_chart(
    canvas: FigureBase, frame: pd.DataFrame, x: str, ys: list[str], bars: bool, look: Look
) -> None:
    ax = canvas.subplots()
    style_axes(ax, look)
    labels = [_cell(v) for v in frame[x]]
    positions = range(len(frame))
    entries: list[tuple[Handle, str]] = []
    width = 0.8 / len(ys)
    for number, column in enumerate(ys):
        values = pd.to_numeric(frame[column], errors="coerce").fillna(0.0).tolist()
        color = series_color(number)
        artist: Handle
        if bars:
            artist = ax.bar(
                [p + (number - (len(ys) - 1) / 2) * width for p in positions],
                values,
                width=width,
                color=color,
            )
        else:
            (artist,) = ax.plot(list(positions), values, color=color, linewidth=2)
        entries.append((artist, column))
    index_ticks(ax, labels, look)
    ax.set_ylim(bottom=0)
    legend(ax, entries, look)
