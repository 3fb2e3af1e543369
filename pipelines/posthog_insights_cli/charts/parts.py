"""Pieces every chart uses: an outside legend that stays readable, thinned x labels, the empty panel."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.container import Container
from matplotlib.figure import FigureBase
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter

from posthog_insights_cli.charts.style import GRID, MUTED, TEXT, Look

# What a legend entry points at: a line or patch, or a container of bars.
Handle = Artist | Container


def legend(
    ax: Axes,
    entries: Sequence[tuple[Handle, str]],
    look: Look,
    *,
    title: str | None = None,
    extra: Sequence[tuple[Handle, str]] = (),
) -> None:
    """A legend right of the plot; past `look.legend_max` entries the rest are counted ("+3 more").

    `extra` entries (the line style of a previous period) always show, after the series."""
    if not entries and not extra:
        return
    shown: list[tuple[Handle, str]] = list(entries[: look.legend_max])
    hidden = len(entries) - len(shown)
    if hidden > 0:
        shown.append((Line2D([], [], linestyle="none"), f"+{hidden} more"))
    shown.extend(extra)
    found = ax.legend(
        [artist for artist, _ in shown],
        [label for _, label in shown],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize=look.small,
        title=title,
        title_fontsize=look.small,
        borderaxespad=0.0,
        handlelength=1.8,
        alignment="left",
    )
    if title:
        found.get_title().set_color(MUTED)


def index_ticks(ax: Axes, labels: Sequence[str], look: Look, *, axis: str = "x") -> None:
    """Ticks at positions 0..n-1 named by `labels`, thinned to a readable number."""
    n = len(labels)
    if not n:
        return
    most = 6 if look.compact else 10
    step = max(1, -(-n // most))
    positions = list(range(0, n, step))
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(positions))
    target.set_major_formatter(
        FuncFormatter(lambda value, _pos: labels[int(value)] if 0 <= value < n else "")
    )


def message(canvas: FigureBase, text: str, look: Look, *, detail: str | None = None) -> Axes:
    """A quiet panel with one line of text (and a smaller second one), e.g. "no result yet"."""
    ax = canvas.subplots()
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_color(GRID)
        spine.set_linestyle((0, (4, 2)))
    ax.text(
        0.5, 0.55, text, ha="center", va="center", fontsize=look.font + 2, color=TEXT, transform=ax.transAxes
    )
    if detail:
        ax.text(
            0.5,
            0.38,
            detail,
            ha="center",
            va="center",
            fontsize=look.small,
            color=MUTED,
            transform=ax.transAxes,
            wrap=True,
        )
    return ax
