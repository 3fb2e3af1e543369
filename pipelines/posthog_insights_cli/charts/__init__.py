"""`posthog-insights show` charts: each insight kind drawn as PostHog draws it, from the warehouse.

`warehouse` reads insights, dashboards and each insight's latest rows; `render` turns a snapshot into a
figure (or a dashboard's snapshots into a grid) with one drawing module per kind: `trends` (also
stickiness and funnel trends), `lifecycle`, `funnels`, `retention`, `paths`, `tables`. Colours and number
formats are PostHog's (`style`), breakdown values are written as its legend writes them (`labels`).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display: render to files only
# PostHog's event names start with `$` ($pageview, $screen): two of them in one label would otherwise be
# read as TeX math. Only `show` imports this package, and it draws nothing but insights.
matplotlib.rcParams["text.parse_math"] = False

from posthog_insights_cli.charts.model import Insight, Snapshot  # noqa: E402
from posthog_insights_cli.charts.render import (  # noqa: E402
    describe,
    grid_shape,
    render_dashboard,
    render_insight,
    save,
)

__all__ = ["Insight", "Snapshot", "describe", "grid_shape", "render_dashboard", "render_insight", "save"]
