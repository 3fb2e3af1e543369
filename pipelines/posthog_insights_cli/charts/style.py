"""PostHog's look, as facts copied from its frontend: series colours, lifecycle colours, number formats.

The colours are PostHog's `--data-color-1..15` and `--lifecycle-*` CSS variables
(`frontend/src/styles/vars.scss`); lines are 2 px without markers and bars over time are stacked, as its
`LineGraph` draws them. Everything here is plain data and small helpers, so that every chart module
draws with the same palette and the same number formatting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter

DATA_COLORS: Final[tuple[str, ...]] = (
    "#1d4aff",
    "#621da6",
    "#42827e",
    "#ce0e74",
    "#f14f58",
    "#7c440e",
    "#529a0a",
    "#0476fb",
    "#fe729e",
    "#35416b",
    "#41cbc4",
    "#b64b02",
    "#e4a604",
    "#a56eff",
    "#30d5c8",
)
LIFECYCLE_COLORS: Final[dict[str, str]] = {
    "new": "#1d4aff",  # --lifecycle-new: primary
    "returning": "#388600",  # --lifecycle-returning: success
    "resurrecting": "#a56eff",  # --lifecycle-resurrecting: data lilac
    "dormant": "#db3707",  # --lifecycle-dormant: danger
}
# PostHog's legend order; new, returning and resurrecting stack up from zero, dormant goes below it.
LIFECYCLE_ORDER: Final[tuple[str, ...]] = ("new", "returning", "resurrecting", "dormant")
TEXT: Final = "#111111"
MUTED: Final = "#5f5f5f"
GRID: Final = "#dadbd2"
UP: Final = "#388600"
DOWN: Final = "#db3707"
PRIMARY: Final = "#1d4aff"


def series_color(index: int) -> str:
    return DATA_COLORS[index % len(DATA_COLORS)]


@dataclass(frozen=True)
class Look:
    """Sizes for one chart: a whole figure (`compact=False`) or a dashboard panel (`compact=True`)."""

    compact: bool = False

    @property
    def font(self) -> float:
        return 7.0 if self.compact else 9.0

    @property
    def small(self) -> float:
        return 6.0 if self.compact else 7.5

    @property
    def legend_max(self) -> int:
        """Legend entries shown before the rest are summed up as "+N more"."""
        return 6 if self.compact else 12

    @property
    def table_rows(self) -> int:
        return 8 if self.compact else 18


def human(value: float | None, digits: int = 2) -> str:
    """PostHog's humanFriendlyNumber: thousands separators, at most `digits` decimals, no trailing zeros."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = f"{value:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def compact(value: float) -> str:
    """Axis numbers: 950, 12.5K, 3.4M."""
    size = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if size >= limit:
            return human(value / limit, 1) + suffix
    return human(value, 2)


def duration(seconds: float | None) -> str:
    """A conversion time as PostHog words it: 45s, 12m 5s, 3h 20m, 2d 4h."""
    if seconds is None or math.isnan(seconds):
        return "–"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{n}{unit}" for n, unit in parts if n][:2]
    return " ".join(shown) or "0s"


def style_axes(ax: Axes, look: Look, *, grid_axis: Literal["x", "y", ""] = "y") -> None:
    """PostHog's chart frame: no box, a light dashed grid, muted tick labels, compact axis numbers."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(GRID)
    ax.tick_params(colors=MUTED, labelsize=look.small, length=3)
    if grid_axis:
        ax.grid(axis=grid_axis, color=GRID, linestyle=(0, (4, 2)), linewidth=0.7)
        ax.set_axisbelow(True)
    axis = ax.yaxis if grid_axis != "x" else ax.xaxis
    axis.set_major_formatter(FuncFormatter(lambda value, _pos: compact(value)))


def percent_axis(ax: Axes, axis: str = "y") -> None:
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(FuncFormatter(lambda value, _pos: f"{human(value, 1)}%"))
