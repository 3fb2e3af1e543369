"""`posthog-insights show`: each kind drawn as PostHog draws it, from the warehouse's latest snapshot.

The charts are checked as matplotlib Figures, not pixels: the lines, bars, wedges, texts and legend labels
they hold against the rows loaded. One emulator warehouse (its seeded insights, a few more posted through
its API for the displays and dashboards the seed does not make) serves most tests; a second one is loaded
from PostHog-shaped payloads for what the emulator never sends (see `shaped`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import matplotlib.pyplot as plt
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import PathPatch, Rectangle, Wedge

from posthog_insights.errors import ConfigError
from posthog_insights_cli.analyst import table
from posthog_insights_cli.charts.style import LIFECYCLE_COLORS, human
from posthog_insights_cli.main import main
from posthog_insights_cli.show import find_insight, render, render_dashboard_grid
from tests.conftest import TEST_KEY, Warehouse
from tests.test_real_payloads import FIXTURES, RealPayloadServer

DASHBOARD = 2  # the seeded dashboard the posted insights join


def _trends(name: str, display: str, **options: Any) -> dict[str, Any]:
    """A saved trends insight as PostHog's UI posts it."""
    events = options.get("series", ("$pageview",))
    source: dict[str, Any] = {
        "kind": "TrendsQuery",
        "interval": "day",
        "dateRange": {"date_from": "-13d"},
        "series": [{"kind": "EventsNode", "event": e, "name": e, "math": "total"} for e in events],
        "trendsFilter": {"display": display},
    }
    if display == "BoxPlot":
        source["series"] = [
            {
                "kind": "EventsNode",
                "event": "purchase",
                "name": "purchase",
                "math": "sum",
                "math_property": "revenue",
            }
        ]
    if options.get("breakdown"):
        source["breakdownFilter"] = {"breakdown": options["breakdown"], "breakdown_type": "event"}
    if options.get("compare"):
        source["compareFilter"] = {"compare": True}
    body: dict[str, Any] = {
        "name": name,
        "query": {"kind": "InsightVizNode", "source": source},
        "saved": True,
    }
    body["dashboards"] = [DASHBOARD] if options.get("on_dashboard") else []
    return body


POSTED = {
    "bar": _trends("Pageviews by browser, bars", "ActionsBar", breakdown="$browser", on_dashboard=True),
    "bar_value": _trends("Three events", "ActionsBarValue", series=("$pageview", "signed_up", "purchase")),
    "pie": _trends("Browser share", "ActionsPie", breakdown="$browser", on_dashboard=True),
    "table": _trends("Two totals", "ActionsTable", series=("$pageview", "signed_up")),
    "compare_two": _trends(
        "Two compared", "ActionsLineGraph", series=("$pageview", "signed_up"), compare=True
    ),
    "area": _trends("Stacked area", "ActionsAreaGraph", series=("$pageview", "signed_up")),
    "box": _trends("Revenue boxes", "BoxPlot"),
    "broken": _trends("Never computed", "ActionsLineGraph", on_dashboard=True),
    "deleted": _trends("Deleted later", "ActionsLineGraph", on_dashboard=True),
}


@dataclass
class Loaded:
    warehouse: Warehouse
    posted: dict[str, int]  # POSTED key -> insight id
    variants: dict[str, list[int]]  # "KIND:variant" -> the emulator's ids of that seeded shape
    on_dashboard: set[int]  # live insights the emulator has on DASHBOARD

    def pipeline(self) -> Any:
        return self.warehouse.pipeline()

    def figure(self, insight_id: int) -> Figure:
        pipeline = self.pipeline()
        return render(pipeline, find_insight(pipeline, str(insight_id), None))


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """Seed 149 (40 insights) has every classic kind and variant; the posted insights add displays, a
    failing insight and one deleted after the first load (a second load flags it deleted)."""
    from posthog_emulator import Emulator, EmulatorConfig

    warehouse = Warehouse(tmp_path_factory.mktemp("show"))
    config = EmulatorConfig(api_key=TEST_KEY, projects=(1,), insights=40, seed=149, error_share=0.0)
    with Emulator(config) as emu:
        with httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {TEST_KEY}"}) as http:
            posted = {
                key: int(http.post("/api/projects/1/insights/", json=body).raise_for_status().json()["id"])
                for key, body in POSTED.items()
            }
            emu.store.set_fails(1, posted["broken"], "Query exceeds memory limits.")
            warehouse.load(emu, refresh="blocking")
            http.patch(
                f"/api/projects/1/insights/{posted['deleted']}/", json={"deleted": True}
            ).raise_for_status()
            listed = http.get("/api/projects/1/insights/", params={"limit": 1000, "basic": 1}).json()[
                "results"
            ]
        warehouse.load(emu, refresh="force_cache")
        kinds = ("TRENDS", "FUNNELS", "RETENTION", "LIFECYCLE", "STICKINESS", "PATHS", "SQL")
        variants = {f"{kind}:{v}": emu.store.find(1, kind, v) for kind in kinds for v in _VARIANTS[kind]}
    on_dashboard = {int(item["id"]) for item in listed if DASHBOARD in (item.get("dashboards") or [])}
    yield Loaded(warehouse, posted, variants, on_dashboard)
    plt.close("all")


_VARIANTS = {
    "TRENDS": ("line", "breakdown", "compare", "number", "calendar_heatmap"),
    "FUNNELS": ("steps", "breakdown", "time_to_convert", "trends"),
    "RETENTION": ("cohorts", "breakdown"),
    "LIFECYCLE": ("series",),
    "STICKINESS": ("series",),
    "PATHS": ("links",),
    "SQL": ("viz", "table"),
}


def _first(loaded: Loaded, variant: str) -> int:
    ids = loaded.variants[variant]
    assert ids, f"the seed has no {variant} insight"
    return ids[0]


def _legend(ax: Axes) -> list[str]:
    found = ax.get_legend()
    return [text.get_text() for text in found.get_texts()] if found is not None else []


def _texts(fig: Figure | SubFigure, gid: str | None = None) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts if gid is None or t.get_gid() == gid]


def _bars(ax: Axes, gid: str | None = None) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle) and (gid is None or p.get_gid() == gid)]


def _rows(loaded: Loaded, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return loaded.warehouse.sql(sql, *params)


# ------------------------------------------------------------------------------------------------
# trends
# ------------------------------------------------------------------------------------------------


def test_trend_lines_are_the_latest_points(loaded: Loaded) -> None:
    insight_id = _first(loaded, "TRENDS:line")
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    lines = [list(map(float, line.get_ydata())) for line in ax.get_lines()]
    points = table("trend_points", pipeline=loaded.pipeline())
    mine = points[(points.insight_id == insight_id) & ~points.is_aggregate]
    expected = [list(g.sort_values("point_index")["value"]) for _, g in mine.groupby("series_index")]
    assert lines == expected
    assert all(line.get_linestyle() == "-" for line in ax.get_lines())
    name = _rows(loaded, "SELECT name FROM insights WHERE id = ?", insight_id)[0][0]
    assert fig.get_suptitle() == name
    plt.close(fig)


@pytest.mark.parametrize("key", ["seeded", "compare_two"])
def test_compare_overlays_the_previous_period_dashed_in_its_series_colour(loaded: Loaded, key: str) -> None:
    insight_id = _first(loaded, "TRENDS:compare") if key == "seeded" else loaded.posted[key]
    rows = _rows(
        loaded,
        "SELECT series_index, series_label, compare_label, COUNT(*) FROM trend_points_latest "
        "WHERE insight_id = ? GROUP BY ALL ORDER BY series_index",
        insight_id,
    )
    current = [r for r in rows if r[2] == "current"]
    assert current and len(rows) == 2 * len(current)
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    lines = ax.get_lines()
    solid = [line for line in lines if line.get_linestyle() == "-"]
    dashed = [line for line in lines if line.get_linestyle() == "--"]
    assert len(solid) == len(current) and len(dashed) == len(current)
    # overlaid: a previous period is drawn at the current period's x positions, in its series' colour
    for line in lines:
        assert list(line.get_xdata()) == list(range(current[0][3]))
    assert {line.get_color() for line in solid} == {line.get_color() for line in dashed}
    assert len({line.get_color() for line in solid}) == len(current)
    previous_start = _rows(
        loaded,
        "SELECT MIN(date) FROM trend_points_latest WHERE insight_id = ? AND compare_label = 'previous'",
        insight_id,
    )[0][0]
    *names, key = _legend(ax)
    assert names == [r[1] for r in current]
    assert key == f"Previous period\n({previous_start.day} {previous_start:%b} – {key.split(' – ')[1]}"
    # the x axis names the current period's dates only
    first_day = _rows(
        loaded,
        "SELECT MIN(date) FROM trend_points_latest WHERE insight_id = ? AND compare_label = 'current'",
        insight_id,
    )[0][0]
    fig.canvas.draw()
    assert ax.get_xticklabels()[0].get_text() == f"{first_day.day} {first_day:%b}"
    plt.close(fig)


def test_breakdown_legend_names_the_values(loaded: Loaded) -> None:
    insight_id = _first(loaded, "TRENDS:breakdown")
    values = [r[0] for r in _rows(loaded, _SERIES_VALUES, insight_id)]
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(values) == 3
    assert _legend(ax) == values
    legend = ax.get_legend()
    assert legend is not None and legend.get_title().get_text().endswith(" by $browser")
    plt.close(fig)


_SERIES_VALUES = (
    "SELECT breakdown_value FROM trend_points_latest WHERE insight_id = ? AND point_index = 0 "
    "ORDER BY series_index"
)


def test_bold_number_is_the_aggregated_value(loaded: Loaded) -> None:
    insight_id = next(i for i in loaded.variants["TRENDS:number"] if _display(loaded, i) == "BoldNumber")
    value = _rows(loaded, "SELECT aggregated_value FROM trend_points_latest WHERE insight_id = ?", insight_id)
    fig = loaded.figure(insight_id)
    assert _texts(fig, "bold-number") == [human(float(value[0][0]))]
    assert fig.axes[0].get_lines() == [] and _bars(fig.axes[0]) == []
    plt.close(fig)


def _display(loaded: Loaded, insight_id: int) -> str | None:
    found = _rows(
        loaded,
        "SELECT json_extract_string(query_json, '$.source.trendsFilter.display') FROM insights WHERE id = ?",
        insight_id,
    )
    return found[0][0] if found else None


def test_displays_pick_the_chart(loaded: Loaded) -> None:
    def totals(insight_id: int) -> list[tuple[Any, ...]]:
        return _rows(
            loaded,
            "SELECT series_label, breakdown_value, COALESCE(MAX(aggregated_value), SUM(value)), COUNT(*) "
            "FROM trend_points_latest WHERE insight_id = ? "
            "GROUP BY series_index, series_label, breakdown_value ORDER BY series_index",
            insight_id,
        )

    # ActionsBar: stacked bars over time, a bar per series per point
    bar = loaded.posted["bar"]
    fig = loaded.figure(bar)
    rows = totals(bar)
    assert len(_bars(fig.axes[0])) == sum(r[3] for r in rows)
    assert _legend(fig.axes[0]) == [r[1] for r in rows]
    plt.close(fig)
    # ActionsBarValue: one horizontal bar per series, largest on top
    fig = loaded.figure(loaded.posted["bar_value"])
    widths = [b.get_width() for b in sorted(_bars(fig.axes[0]), key=lambda b: -b.get_y())]
    assert widths == sorted((float(r[2]) for r in totals(loaded.posted["bar_value"])), reverse=True)
    plt.close(fig)
    # ActionsPie: a wedge per breakdown value, the legend names them with their totals
    pie = loaded.posted["pie"]
    fig = loaded.figure(pie)
    assert len([p for p in fig.axes[0].patches if isinstance(p, Wedge)]) == len(totals(pie)) == 3
    assert _legend(fig.axes[0]) == [f"{r[1]}  {human(float(r[2]))}" for r in totals(pie)]
    plt.close(fig)
    # ActionsTable: a row per series with its total
    fig = loaded.figure(loaded.posted["table"])
    cells = [cell.get_text().get_text() for cell in fig.axes[0].tables[0].get_celld().values()]
    for label, _, total, _ in totals(loaded.posted["table"]):
        assert label in cells and human(float(total)) in cells
    plt.close(fig)
    # ActionsAreaGraph: stacked areas, one per series
    fig = loaded.figure(loaded.posted["area"])
    assert len([c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]) == 2
    plt.close(fig)


def test_box_plot_and_calendar_heatmap(loaded: Loaded) -> None:
    box = loaded.posted["box"]
    boxes = _rows(loaded, "SELECT COUNT(*) FROM trend_points_latest WHERE insight_id = ?", box)[0][0]
    fig = loaded.figure(box)
    medians = [
        line for line in fig.axes[0].get_lines() if len(line.get_xdata()) == 2 and line.get_linewidth() == 1.5
    ]
    assert len(medians) == boxes
    plt.close(fig)
    heatmap = _first(loaded, "TRENDS:calendar_heatmap")
    total = _rows(loaded, "SELECT SUM(value) FROM trend_points_latest WHERE insight_id = ?", heatmap)[0][0]
    fig = loaded.figure(heatmap)
    image = fig.axes[0].get_images()[0].get_array()
    assert image.shape == (7, 24) and float(image.sum()) == pytest.approx(float(total))
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# lifecycle, stickiness
# ------------------------------------------------------------------------------------------------


def test_lifecycle_stacks_bars_dormant_below_in_posthog_colours(loaded: Loaded) -> None:
    insight_id = _first(loaded, "LIFECYCLE:series")
    rows = _rows(
        loaded, "SELECT status, point_index, value FROM trend_points_latest WHERE insight_id = ?", insight_id
    )
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    bars = _bars(ax)
    assert len(bars) == len(rows)
    assert _legend(ax) == ["new", "returning", "resurrecting", "dormant"]
    by_colour: dict[str, list[Rectangle]] = {}
    for bar in bars:
        by_colour.setdefault(_hex(bar.get_facecolor()), []).append(bar)
    assert set(by_colour) == set(LIFECYCLE_COLORS.values())
    assert all(b.get_height() <= 0 and b.get_y() == 0 for b in by_colour[LIFECYCLE_COLORS["dormant"]])
    assert all(
        b.get_height() >= 0
        for s in ("new", "returning", "resurrecting")
        for b in by_colour[LIFECYCLE_COLORS[s]]
    )
    # new stands on the axis, returning on new, resurrecting on both
    new = sorted(by_colour[LIFECYCLE_COLORS["new"]], key=lambda b: b.get_x())
    returning = sorted(by_colour[LIFECYCLE_COLORS["returning"]], key=lambda b: b.get_x())
    assert all(b.get_y() == 0 for b in new)
    assert [r.get_y() for r in returning] == pytest.approx([n.get_height() for n in new])
    dormant = {p: v for s, p, v in rows if s == "dormant"}
    drawn = sorted(by_colour[LIFECYCLE_COLORS["dormant"]], key=lambda b: b.get_x())
    assert [b.get_height() for b in drawn] == pytest.approx([dormant[p] for p in sorted(dormant)])
    plt.close(fig)


def _hex(rgba: Any) -> str:
    return "#" + "".join(f"{round(channel * 255):02x}" for channel in rgba[:3])


def test_stickiness_is_a_line_per_series(loaded: Loaded) -> None:
    insight_id = _first(loaded, "STICKINESS:series")
    rows = _rows(
        loaded,
        "SELECT label, value FROM trend_points_latest WHERE insight_id = ? ORDER BY point_index",
        insight_id,
    )
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    assert [list(line.get_ydata()) for line in ax.get_lines()] == [[float(v) for _, v in rows]]
    fig.canvas.draw()
    assert ax.get_xticklabels()[0].get_text() == rows[0][0]  # PostHog's "1 day"
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# funnels
# ------------------------------------------------------------------------------------------------


def _steps(loaded: Loaded, insight_id: int) -> dict[int, list[int]]:
    rows = _rows(
        loaded,
        "SELECT breakdown_index, count FROM funnel_steps_latest WHERE insight_id = ? "
        "ORDER BY breakdown_index, step_order",
        insight_id,
    )
    groups: dict[int, list[int]] = {}
    for group, count in rows:
        groups.setdefault(int(group), []).append(int(count))
    return groups


def test_funnel_steps_show_conversion_and_drop_off(loaded: Loaded) -> None:
    insight_id = _first(loaded, "FUNNELS:steps")
    (counts,) = _steps(loaded, insight_id).values()
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    converted = [b.get_height() for b in sorted(_bars(ax, "converted"), key=lambda b: b.get_x())]
    assert converted == pytest.approx([100 * c / counts[0] for c in counts])
    dropped = sorted(_bars(ax, "drop-off"), key=lambda b: b.get_x())
    assert [b.get_height() for b in dropped[1:]] == pytest.approx(
        [100 * (counts[i - 1] - counts[i]) / counts[0] for i in range(1, len(counts))]
    )
    assert _texts(fig, "conversion")[-1].startswith(f"{human(100 * counts[-1] / counts[0], 1)}%")
    losses = _texts(fig, "drop-off-label")
    assert len(losses) == len(counts) - 1
    assert losses[0].endswith(f"{human(100 * (counts[0] - counts[1]) / counts[0], 1)}%")
    assert ax.get_title(loc="left").startswith(f"Total conversion {human(100 * counts[-1] / counts[0], 1)}%")
    plt.close(fig)


def test_funnel_breakdown_is_a_bar_per_value_named_in_words(loaded: Loaded) -> None:
    insight_id = _first(loaded, "FUNNELS:breakdown")
    groups = _steps(loaded, insight_id)
    raw = [
        r[1]
        for r in _rows(
            loaded,
            "SELECT DISTINCT breakdown_index, breakdown_value FROM funnel_steps_latest "
            "WHERE insight_id = ? ORDER BY 1",
            insight_id,
        )
    ]
    assert all(value.startswith('["') for value in raw)  # the warehouse keeps PostHog's ["Edge"]
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    assert len(_bars(ax, "converted")) == sum(len(c) for c in groups.values())
    expected = [
        f"{json.loads(value)[0]} · {human(100 * counts[-1] / counts[0], 1)}%"
        for value, counts in zip(raw, groups.values(), strict=True)
    ]
    assert _legend(ax) == expected
    assert len(_texts(fig, "drop-off-label")) == sum(len(c) - 1 for c in groups.values())
    plt.close(fig)


def test_time_to_convert_and_funnel_trends(loaded: Loaded) -> None:
    insight_id = _first(loaded, "FUNNELS:time_to_convert")
    bins = _rows(
        loaded,
        "SELECT count FROM funnel_conversion_bins_latest WHERE insight_id = ? ORDER BY bin_index",
        insight_id,
    )
    fig = loaded.figure(insight_id)
    assert [b.get_height() for b in _bars(fig.axes[0])] == [float(c) for (c,) in bins]
    assert fig.axes[0].get_title(loc="left").startswith("Average time to convert ")
    plt.close(fig)
    insight_id = _first(loaded, "FUNNELS:trends")
    values = _rows(
        loaded, "SELECT value FROM trend_points_latest WHERE insight_id = ? ORDER BY point_index", insight_id
    )
    fig = loaded.figure(insight_id)
    assert [list(line.get_ydata()) for line in fig.axes[0].get_lines()] == [[float(v) for (v,) in values]]
    assert _legend(fig.axes[0]) == ["Conversion rate"]
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# retention, paths, SQL
# ------------------------------------------------------------------------------------------------


def _cells(loaded: Loaded, insight_id: int) -> list[tuple[Any, ...]]:
    return _rows(
        loaded,
        "SELECT breakdown_value, cohort_index, period_index, count FROM retention_cells_latest "
        "WHERE insight_id = ? ORDER BY cohort_index, period_index",
        insight_id,
    )


def _check_heatmap(image: Any, cells: list[tuple[Any, ...]]) -> None:
    cohorts = sorted({c for _, c, _, _ in cells})
    first = {c: n for _, c, p, n in cells if p == 0}
    assert image.shape[0] == len(cohorts)
    for _, cohort, period, count in cells:
        if first[cohort]:
            assert image[cohorts.index(cohort), period] == pytest.approx(100 * count / first[cohort])


def test_retention_heatmap_is_the_cohort_shares(loaded: Loaded) -> None:
    insight_id = _first(loaded, "RETENTION:cohorts")
    fig = loaded.figure(insight_id)
    images = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert len(images) == 1
    _check_heatmap(images[0], _cells(loaded, insight_id))
    plt.close(fig)


def test_broken_down_retention_is_a_panel_per_value(loaded: Loaded) -> None:
    insight_id = _first(loaded, "RETENTION:breakdown")
    cells = _cells(loaded, insight_id)
    values = list(dict.fromkeys(v for v, _, _, _ in cells))
    assert len(values) == 2
    fig = loaded.figure(insight_id)
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title(loc="left") for ax in panels] == [f"$geoip_country_code = {v}" for v in values]
    for ax, value in zip(panels, values, strict=True):
        _check_heatmap(ax.get_images()[0].get_array(), [c for c in cells if c[0] == value])
    plt.close(fig)


def test_paths_are_bands_between_steps(loaded: Loaded) -> None:
    insight_id = _first(loaded, "PATHS:links")
    edges = _rows(loaded, "SELECT source, target FROM path_edges_latest WHERE insight_id = ?", insight_id)
    fig = loaded.figure(insight_id)
    ax = fig.axes[0]
    bands = [p for p in ax.patches if isinstance(p, PathPatch) and p.get_gid() == "path-link"]
    assert len(bands) == min(len(edges), 30)
    nodes = {key for edge in edges[:30] for key in edge}
    assert len([p for p in ax.patches if p.get_gid() == "path-node"]) <= len(nodes)
    plt.close(fig)


def test_sql_visualisation_is_its_chart_and_a_table_a_table(loaded: Loaded) -> None:
    viz = _first(loaded, "SQL:viz")
    rows = [
        json.loads(r)
        for (r,) in _rows(
            loaded, "SELECT row FROM sql_rows_latest WHERE insight_id = ? ORDER BY row_index", viz
        )
    ]
    fig = loaded.figure(viz)
    assert [list(line.get_ydata()) for line in fig.axes[0].get_lines()] == [
        [float(r["pageviews"]) for r in rows]
    ]
    plt.close(fig)
    table_id = _first(loaded, "SQL:table")
    fig = loaded.figure(table_id)
    header = [fig.axes[0].tables[0][0, c].get_text().get_text() for c in range(4)]
    assert header == ["event", "person.properties.email", "properties.$browser", "count()"]
    plt.close(fig)


def test_every_kind_renders_a_png(loaded: Loaded, tmp_path: Path) -> None:
    pipeline = loaded.pipeline()
    kinds = dict(_rows(loaded, "SELECT kind, MIN(id) FROM insights GROUP BY kind"))
    assert set(kinds) == {"trends", "stickiness", "lifecycle", "funnels", "retention", "paths", "sql"}
    for kind, insight_id in kinds.items():
        fig = render(pipeline, find_insight(pipeline, str(insight_id), None))
        output = tmp_path / f"{kind}.png"
        fig.savefig(output)
        plt.close(fig)
        assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and output.stat().st_size > 10_000


# ------------------------------------------------------------------------------------------------
# dashboards
# ------------------------------------------------------------------------------------------------


def test_dashboard_is_a_grid_of_its_live_insights(loaded: Loaded) -> None:
    deleted, broken = loaded.posted["deleted"], loaded.posted["broken"]
    assert _rows(loaded, "SELECT deleted FROM insights WHERE id = ?", deleted) == [(True,)]
    live = sorted(loaded.on_dashboard)
    assert deleted not in live and broken in live and len(live) >= 4
    names = dict(_rows(loaded, "SELECT id, COALESCE(NULLIF(name, ''), derived_name) FROM insights"))
    fig, title, count = render_dashboard_grid(loaded.pipeline(), DASHBOARD, None)
    panels = [panel for panel in fig.subfigs if panel.get_visible()]
    assert count == len(live) and len(panels) == len(live)
    assert [panel.get_gid() for panel in panels] == [f"insight-{i}" for i in live]
    assert [panel.get_suptitle() for panel in panels] == [names[i] for i in live]
    if "dashboards" not in loaded.warehouse.tables():
        assert title == fig.get_suptitle() == f"Dashboard {DASHBOARD}"
    failed = panels[live.index(broken)]
    status = _rows(loaded, "SELECT status FROM insight_results_latest WHERE insight_id = ?", broken)[0][0]
    assert status != "ok"
    assert _texts(failed)[0] == "no result yet" and _texts(failed)[1].startswith("latest attempt: ")
    drawn = [panel for panel in panels if panel is not failed]
    assert all(panel.axes and "no result yet" not in _texts(panel) for panel in drawn)
    # the posted bar chart keeps its legend in the grid
    bar = panels[live.index(loaded.posted["bar"])]
    assert len(_legend(bar.axes[0])) == 3
    plt.close(fig)


def test_dashboard_retention_panel_names_its_breakdown(loaded: Loaded) -> None:
    insight_id = _first(loaded, "RETENTION:breakdown")
    dashboards = json.loads(
        _rows(loaded, "SELECT dashboards_json FROM insights WHERE id = ?", insight_id)[0][0]
    )
    assert dashboards, "the seeded broken-down retention is on a dashboard"
    fig, _, _ = render_dashboard_grid(loaded.pipeline(), dashboards[0], 1)
    (panel,) = [p for p in fig.subfigs if p.get_gid() == f"insight-{insight_id}"]
    values = list(dict.fromkeys(v for v, _, _, _ in _cells(loaded, insight_id)))
    assert _legend(panel.axes[0]) == values  # one mean-retention line per breakdown value
    assert len(panel.axes[0].get_lines()) == len(values)
    plt.close(fig)


def test_dashboard_title_comes_from_the_dashboards_table(loaded: Loaded) -> None:
    import duckdb

    had_table = "dashboards" in loaded.warehouse.tables()
    with duckdb.connect(str(loaded.warehouse.path)) as con:
        con.execute("SET search_path = 'posthog_insights'")
        if not had_table:
            con.execute("CREATE TABLE dashboards (project_id BIGINT, id BIGINT, name VARCHAR)")
            con.execute("INSERT INTO dashboards VALUES (1, ?, 'Growth KPIs'), (1, 99, 'Other')", [DASHBOARD])
        else:
            con.execute("UPDATE dashboards SET name = 'Growth KPIs' WHERE id = ?", [DASHBOARD])
    try:
        fig, title, _ = render_dashboard_grid(loaded.pipeline(), DASHBOARD, 1)
        assert title == fig.get_suptitle() == "Growth KPIs"
        plt.close(fig)
    finally:
        if not had_table:
            with duckdb.connect(str(loaded.warehouse.path)) as con:
                con.execute("DROP TABLE posthog_insights.dashboards")


def test_dashboard_errors_are_one_line(
    loaded: Loaded, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(loaded.warehouse.path))
    base = [
        "--pipeline-name",
        loaded.warehouse.pipeline_name,
        "--pipelines-dir",
        str(loaded.warehouse.pipelines_dir),
    ]
    assert main(["show", "--dashboard", "77", *base]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "dashboard 77" in err and "posthog-insights run" in err
    with pytest.raises(ConfigError, match="in project 5"):
        render_dashboard_grid(loaded.pipeline(), DASHBOARD, 5)


def test_show_cli_by_short_id_and_dashboard(
    loaded: Loaded, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(loaded.warehouse.path))
    base = [
        "--pipeline-name",
        loaded.warehouse.pipeline_name,
        "--pipelines-dir",
        str(loaded.warehouse.pipelines_dir),
    ]
    short_id = _rows(loaded, "SELECT short_id FROM insights WHERE kind = 'paths' ORDER BY id LIMIT 1")[0][0]
    output, grid = tmp_path / "paths.png", tmp_path / "grid.png"
    assert main(["show", short_id, "-o", str(output), *base]) == 0
    assert main(["show", "--dashboard", str(DASHBOARD), "-o", str(grid), *base]) == 0
    out = capsys.readouterr().out
    assert f"wrote {output} (paths:" in out
    assert f"wrote {grid} (dashboard {DASHBOARD}: " in out
    for png in (output, grid):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["show", "7", "--dashboard", "2", *base]) == 2  # one of the two, not both
    assert "one of the two" in capsys.readouterr().err


def test_unknown_insight_and_insight_without_result_are_clear_errors(loaded: Loaded) -> None:
    with pytest.raises(ConfigError, match="not in the warehouse"):
        find_insight(loaded.pipeline(), "nosuchid", None)
    with pytest.raises(ConfigError, match="no loaded ok snapshot"):
        loaded.figure(loaded.posted["broken"])


# ------------------------------------------------------------------------------------------------
# what the emulator never sends: PostHog-shaped payloads through a PostHog-compatible server
# ------------------------------------------------------------------------------------------------


def _fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


def _broken_down(
    name: str, breakdown_filter: dict[str, Any], series: list[tuple[str, Any]]
) -> dict[str, Any]:
    """PostHog's trendsLine payload with a breakdown: one series per (label, breakdown_value)."""
    payload = _fixture("trendsLine")
    template = payload["result"][0]
    payload["name"] = name
    payload["query"]["source"]["breakdownFilter"] = breakdown_filter
    payload["result"] = []
    for number, (label, value) in enumerate(series):
        item = copy.deepcopy(template)
        item |= {"label": label, "breakdown_value": value, "data": [number + 1] * len(template["days"])}
        payload["result"].append(item)
    return payload


def _number_compared() -> dict[str, Any]:
    payload = _fixture("trendsNumber")
    payload["name"] = "Signups compared"
    payload["query"]["source"]["compareFilter"] = {"compare": True}
    current = payload["result"][0] | {"compare": True, "compare_label": "current"}
    previous = copy.deepcopy(current) | {"compare_label": "previous", "aggregated_value": 2513274}
    payload["result"] = [current, previous]
    return payload


OTHER = "$$_posthog_breakdown_other_$$"
NULL = "$$_posthog_breakdown_null_$$"
SHAPED: dict[str, dict[str, Any]] = {
    "a_multi": _broken_down(
        "By browser and OS",
        {"breakdowns": [{"property": "$browser", "type": "event"}, {"property": "$os", "type": "event"}]},
        [
            ("Edge::Mac", ["Edge", "Mac"]),
            ("Chrome::Windows", ["Chrome", "Windows"]),
            ("Other", [OTHER, OTHER]),
        ],
    ),
    "b_sentinels": _broken_down(
        "Browser with the rest",
        {"breakdown": "$browser", "breakdown_type": "event"},
        [("Edge", "Edge"), ("Other", OTHER), ("None", NULL)],
    ),
    "c_cohorts": _broken_down(
        "By cohort",
        {"breakdown": [3, "all"], "breakdown_type": "cohort"},
        [("Paying users", 3), ("all users", "all")],
    ),
    "d_number": _number_compared(),
    "e_funnel_compare": _fixture("funnelLeftToRightCompare") | {"name": "Funnel compared"},
    "f_time_compare": _fixture("funnelTimeToConvertCompare") | {"name": "Time to convert compared"},
}


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """Breakdowns by two properties, PostHog's Other and None values, cohorts, a compared BoldNumber and
    compared funnels: the emulator sends none of these, PostHog does. Served by `RealPayloadServer` (list
    and retrieve over files), loaded by the real source into a real DuckDB."""
    from posthog_insights_cli.loader import load

    root = tmp_path_factory.mktemp("shaped")
    folder = root / "payloads"
    folder.mkdir()
    for stem, payload in SHAPED.items():
        (folder / f"{stem}.json").write_text(json.dumps(payload))
    warehouse = Warehouse(root, "shaped")
    with RealPayloadServer(folder) as server:
        result = load(
            pipeline=warehouse.pipeline(),
            host=server.server.url,
            project_ids=[1],
            personal_api_key=TEST_KEY,
            refresh="force_cache",
            rate_limit="off",
        )
        assert result.complete
    ids = {name: number for number, name in enumerate(sorted(SHAPED), start=1)}
    yield Loaded(warehouse, ids, {}, set())
    plt.close("all")


@pytest.mark.parametrize(
    ("stem", "expected", "title"),
    [
        ("a_multi", ["Edge / Mac", "Chrome / Windows", "Other"], "$pageview by $browser / $os"),
        ("b_sentinels", ["Edge", "Other", "None"], "$pageview by $browser"),
        ("c_cohorts", ["Paying users", "All users"], "$pageview by cohort"),
    ],
)
def test_breakdown_labels_read_as_words(shaped: Loaded, stem: str, expected: list[str], title: str) -> None:
    stored = [r[0] for r in shaped.warehouse.sql(_SERIES_VALUES, shaped.posted[stem])]
    assert any(value.startswith(("[", "$$", "3")) for value in stored)  # raw in the warehouse
    fig = shaped.figure(shaped.posted[stem])
    ax = fig.axes[0]
    assert _legend(ax) == expected
    legend = ax.get_legend()
    assert legend is not None and legend.get_title().get_text() == title
    plt.close(fig)


def test_bold_number_with_compare_says_the_change(shaped: Loaded) -> None:
    fig = shaped.figure(shaped.posted["d_number"])
    assert _texts(fig, "bold-number") == ["3,141,592"]
    assert _texts(fig, "bold-number-comparison") == ["▲ Up 25% from previous period (2,513,274)"]
    plt.close(fig)


def test_compared_funnels_put_the_periods_side_by_side(shaped: Loaded) -> None:
    insight_id = shaped.posted["e_funnel_compare"]
    steps = shaped.warehouse.sql(
        "SELECT compare_label, count FROM funnel_steps_latest WHERE insight_id = ? "
        "ORDER BY breakdown_index, step_order",
        insight_id,
    )
    fig = shaped.figure(insight_id)
    ax = fig.axes[0]
    assert len(_bars(ax, "converted")) == len(steps)
    legend = _legend(ax)
    assert [label.split(" · ")[0] for label in legend] == ["Current period", "Previous period"]
    current = [c for label, c in steps if label == "current"]
    assert legend[0] == f"Current period · {human(100 * current[-1] / current[0], 1)}%"
    plt.close(fig)
    fig = shaped.figure(shaped.posted["f_time_compare"])
    assert [label.split(" · ")[0] for label in _legend(fig.axes[0])] == ["Current period", "Previous period"]
    plt.close(fig)


def test_shaped_payloads_all_load(shaped: Loaded) -> None:
    statuses = shaped.warehouse.sql("SELECT insight_id, status FROM insight_results ORDER BY insight_id")
    assert statuses == [(i, "ok") for i in range(1, len(SHAPED) + 1)]
