"""Paths: PostHog's Sankey, drawn simply: a column per step, a box per page or event, bands for links.

A box's height is the persons passing through it (the larger of what comes in and what goes out), a
band's width the persons going from one box to the next. Only the heaviest links are drawn (PostHog too
caps the links it draws), so the picture stays readable; the rest are counted under it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import FigureBase
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as CurvePath

from posthog_insights_cli.charts.model import Snapshot
from posthog_insights_cli.charts.style import MUTED, TEXT, Look, compact, human, series_color

_NODE_WIDTH = 0.035
_GAP = 0.04
# Boxes stand within this share of the width; every label goes right of its box, the last column's too.
_SPAN = 0.86


@dataclass
class _Node:
    step: int
    name: str
    size: float = 0.0
    top: float = 0.0  # y of its top edge (the axes run 0..1 downwards)
    out_used: float = 0.0
    in_used: float = 0.0


def _split(key: str) -> tuple[int, str]:
    """PostHog's node key "3_/pricing": step 3, page /pricing."""
    head, _, rest = key.partition("_")
    return (int(head), rest) if head.isdigit() else (0, key)


def _end(row: pd.Series, side: str) -> tuple[int, str]:
    step, name = row.get(f"{side}_step"), row.get(f"{side}_name")
    if step is not None and not pd.isna(step) and isinstance(name, str):
        return int(step), name
    return _split(str(row[side]))


def draw_paths(canvas: FigureBase, snapshot: Snapshot, look: Look) -> None:
    edges = snapshot.rows("path_edges").sort_values("value", ascending=False)
    limit = 10 if look.compact else 30
    drawn = edges.head(limit)
    ax = canvas.subplots()
    ax.axis("off")
    nodes: dict[tuple[int, str], _Node] = {}
    links = []
    for _, row in drawn.iterrows():
        source, target = _end(row, "source"), _end(row, "target")
        value = float(row["value"])
        links.append((source, target, value))
        for key in (source, target):
            nodes.setdefault(key, _Node(*key))
    outflow: dict[tuple[int, str], float] = {}
    inflow: dict[tuple[int, str], float] = {}
    for source, target, value in links:
        outflow[source] = outflow.get(source, 0.0) + value
        inflow[target] = inflow.get(target, 0.0) + value
    for key, node in nodes.items():
        node.size = max(outflow.get(key, 0.0), inflow.get(key, 0.0))
    steps = sorted({node.step for node in nodes.values()})
    column = {step: i for i, step in enumerate(steps)}
    per_column = {
        step: sorted((n for n in nodes.values() if n.step == step), key=lambda n: -n.size) for step in steps
    }
    tallest = max((sum(n.size for n in members) for members in per_column.values()), default=1.0) or 1.0
    most = max((len(members) for members in per_column.values()), default=1)
    scale = (1.0 - _GAP * (most - 1)) / tallest
    for members in per_column.values():
        y = 0.0
        for node in members:
            node.top = y
            y += node.size * scale + _GAP
    last = max(len(steps) - 1, 1)
    colors = {
        name: series_color(i)
        for i, name in enumerate(dict.fromkeys(n.name for n in sorted(nodes.values(), key=lambda n: n.step)))
    }

    def x_of(step: int) -> float:
        return column[step] / last * (_SPAN - _NODE_WIDTH)

    # bands leave a box in the order of where they go, and enter one in the order of where they come
    # from, so that they do not cross at the boxes
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for number in sorted(range(len(links)), key=lambda k: nodes[links[k][1]].top):
        a = nodes[links[number][0]]
        starts[number] = a.top + a.out_used
        a.out_used += links[number][2] * scale
    for number in sorted(range(len(links)), key=lambda k: nodes[links[k][0]].top):
        b = nodes[links[number][1]]
        ends[number] = b.top + b.in_used
        b.in_used += links[number][2] * scale
    for number, (source, target, value) in enumerate(links):
        a, b = nodes[source], nodes[target]
        thick = value * scale
        x0, x1 = x_of(a.step) + _NODE_WIDTH, x_of(b.step)
        y0, y1 = starts[number], ends[number]
        mid = (x0 + x1) / 2
        vertices = [
            (x0, y0), (mid, y0), (mid, y1), (x1, y1),
            (x1, y1 + thick), (mid, y1 + thick), (mid, y0 + thick), (x0, y0 + thick),
            (x0, y0),
        ]  # fmt: skip
        codes = [
            CurvePath.MOVETO,
            *[CurvePath.CURVE4] * 3,
            CurvePath.LINETO,
            *[CurvePath.CURVE4] * 3,
            CurvePath.CLOSEPOLY,
        ]
        ax.add_patch(
            PathPatch(
                CurvePath(vertices, codes), facecolor=colors[a.name], alpha=0.28, linewidth=0, gid="path-link"
            )
        )
    for node in nodes.values():
        x = x_of(node.step)
        height = max(node.size * scale, 0.004)
        ax.add_patch(
            Rectangle(
                (x, node.top), _NODE_WIDTH, height, color=colors[node.name], linewidth=0, gid="path-node"
            )
        )
        if height < (0.05 if look.compact else 0.025):
            continue  # too thin to carry a label without covering its neighbours
        ax.text(
            x + _NODE_WIDTH + 0.006,
            node.top + height / 2,
            f"{node.name}  {compact(node.size)}",
            ha="left",
            va="center",
            fontsize=look.small,
            color=TEXT,
        )
    for step in steps:
        ax.text(
            x_of(step) + _NODE_WIDTH / 2,
            -0.02,
            f"Step {step}",
            ha="center",
            va="bottom",
            fontsize=look.small,
            color=MUTED,
        )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(1.02 + _GAP, -0.08)
    hidden = len(edges) - len(drawn)
    if hidden > 0:
        ax.text(
            0.0,
            1.03 + _GAP,
            f"the {len(drawn)} heaviest of {human(len(edges))} links",
            fontsize=look.small,
            color=MUTED,
            va="top",
        )
