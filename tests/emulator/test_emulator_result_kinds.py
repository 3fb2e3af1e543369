"""The less common result kinds (docs/posthog-api.md, Result shapes): trends with the CalendarHeatmap
and BoxPlot displays, retention with sampled (float) counts, saved DataTableNodes over EventsQuery,
WebOverviewQuery and WebStatsTableQuery; and how the list's `insight=` filter classifies them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator, EmulatorConfig

DETAIL = "/api/projects/1/insights/{}/"
LIST = "/api/projects/1/insights/"
KEY = "phx_kinds"
BOX_KEYS = {"day", "label", "min", "p25", "median", "p75", "max", "mean", "series_index", "series_label"}


@pytest.fixture(scope="module")
def kinds() -> Iterator[tuple[Emulator, httpx.Client]]:
    """A project where every other insight is one of the less common kinds."""
    config = EmulatorConfig(api_key=KEY, insights=84, points=7, error_share=0.0, other_kinds_share=0.5)
    with Emulator(config) as emulator:
        headers = {"Authorization": f"Bearer {KEY}"}
        with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=10) as http:
            yield emulator, http


def computed(kinds: tuple[Emulator, httpx.Client], kind: str, variant: str) -> dict[str, Any]:
    emulator, http = kinds
    insight_id = emulator.store.find(1, kind, variant, fixed_range=False)[0]
    response = http.get(DETAIL.format(insight_id), params={"refresh": "force_blocking"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["result"] is not None
    return body


def test_calendar_heatmap(kinds: Any) -> None:
    body = computed(kinds, "TRENDS", "calendar_heatmap")
    assert body["query"]["source"]["trendsFilter"]["display"] == "CalendarHeatmap"
    [series] = body["result"]
    assert set(series) == {"action", "label", "data", "aggregated_value", "calendar_heatmap_data", "count"}
    assert set(series["action"]) == {"id", "type", "order", "name", "math"}
    assert series["data"] == []
    grid = series["calendar_heatmap_data"]
    assert set(grid) == {"data", "rowAggregations", "columnAggregations", "allAggregations"}
    cells = grid["data"]
    assert cells and all(set(cell) == {"row", "column", "value"} for cell in cells)
    assert all(1 <= cell["row"] <= 7 and 0 <= cell["column"] <= 23 for cell in cells)  # day of week x hour
    total = sum(cell["value"] for cell in cells)
    assert grid["allAggregations"] == series["aggregated_value"] == series["count"] == total
    for axis, aggregations in (("row", grid["rowAggregations"]), ("column", grid["columnAggregations"])):
        sums: Counter[int] = Counter()
        for cell in cells:
            sums[cell[axis]] += cell["value"]
        assert {entry[axis]: entry["value"] for entry in aggregations} == dict(sums)


def test_box_plot(kinds: Any) -> None:
    body = computed(kinds, "TRENDS", "boxplot")
    source = body["query"]["source"]
    assert source["trendsFilter"]["display"] == "BoxPlot" and source["series"][0]["math_property"]
    boxes = body["result"]
    assert boxes and all(set(box) == BOX_KEYS for box in boxes)
    for box in boxes:
        assert box["min"] <= box["p25"] <= box["median"] <= box["p75"] <= box["max"]
        assert all(isinstance(box[name], float) for name in ("min", "p25", "median", "p75", "max", "mean"))
        assert box["series_index"] == 0 and box["series_label"] == "purchase - revenue"
    days = [box["day"] for box in boxes]
    assert days == sorted(days) and len(set(days)) == len(days)
    if source["interval"] == "day":
        assert len(days[0]) == 10 and boxes[0]["label"].count("-") == 2  # 2024-03-05, 5-Mar-2024


def test_sampled_retention_counts_are_floats(kinds: Any) -> None:
    body = computed(kinds, "RETENTION", "sampled")
    assert 0 < body["query"]["source"]["samplingFactor"] < 1
    counts = [value["count"] for cohort in body["result"] for value in cohort["values"]]
    assert counts and all(isinstance(count, float) for count in counts)


def test_events_table(kinds: Any) -> None:
    body = computed(kinds, "JSON", "events")
    assert body["query"]["kind"] == "DataTableNode" and body["query"]["source"]["kind"] == "EventsQuery"
    select = body["query"]["source"]["select"]
    assert body["columns"] == select
    # EventsQuery's types are bare ClickHouse types, one per column (not [name, type] pairs).
    assert len(body["types"]) == len(select) and all(isinstance(t, str) for t in body["types"])
    assert isinstance(body["hasMore"], bool) and body["hogql"]
    rows = body["result"]
    assert rows and all(isinstance(row, list) and len(row) == len(select) for row in rows)
    star = rows[0][select.index("*")]
    assert {"uuid", "event", "properties", "timestamp", "distinct_id"} <= set(star)
    assert rows[0][select.index("event")] == star["event"]
    stamps = [row[select.index("timestamp")] for row in rows]
    assert stamps == sorted(stamps, reverse=True)  # orderBy timestamp DESC


def test_web_overview(kinds: Any) -> None:
    body = computed(kinds, "JSON", "web_overview")
    assert body["query"]["source"]["kind"] == "WebOverviewQuery"
    items = body["result"]
    assert [item["key"] for item in items] == [
        "visitors",
        "views",
        "sessions",
        "session duration",
        "bounce rate",
    ]
    for item in items:
        assert set(item) == {"key", "kind", "isIncreaseBad", "value", "previous", "changeFromPreviousPct"}
        assert item["kind"] in ("unit", "duration_s", "percentage")
    bounce = items[-1]
    assert bounce["isIncreaseBad"] is True and 0 <= bounce["value"] <= 100  # a percentage, times 100
    assert body["columns"] is None  # the web overview response has no columns


def test_web_stats_table(kinds: Any) -> None:
    body = computed(kinds, "JSON", "web_stats")
    assert body["query"]["source"]["kind"] == "WebStatsTableQuery"
    assert body["columns"][:3] == [
        "context.columns.breakdown_value",
        "context.columns.visitors",
        "context.columns.views",
    ]
    rows = body["result"]
    assert rows and all(len(row) == len(body["columns"]) for row in rows)
    for value, visitors, views, fill, *_ in rows:
        assert isinstance(value, str) and isinstance(fill, float)
        assert len(visitors) == 2 and len(views) == 2  # (current, previous)
    assert abs(sum(row[3] for row in rows) - 1.0) < 1e-6


def test_insight_filter_classifies_them_as_posthog_does(kinds: Any) -> None:
    emulator, http = kinds

    def listed(insight: str) -> list[dict[str, Any]]:
        body = http.get(LIST, params={"insight": insight, "basic": "true", "limit": 1000}).json()
        return list(body["results"])

    json_items = listed("JSON")
    assert {item["query"]["source"]["kind"] for item in json_items} == {
        "EventsQuery",
        "WebOverviewQuery",
        "WebStatsTableQuery",
    }
    assert len(json_items) == len(emulator.store.find(1, "JSON"))
    assert all(item["query"]["source"]["kind"] == "HogQLQuery" for item in listed("SQL"))
    trends = listed("TRENDS")
    displays = {
        (item["query"] or {}).get("source", {}).get("trendsFilter", {}).get("display") for item in trends
    }
    assert {"CalendarHeatmap", "BoxPlot"} <= displays
    assert any(
        item["query"] and item["query"]["source"].get("samplingFactor") for item in listed("RETENTION")
    )
    # A legacy insight matches its exact filters.insight; JSON and SQL never match legacy ones.
    everything = http.get(LIST, params={"basic": "true", "limit": 1000}).json()["results"]
    legacy = [item for item in everything if item["filters"].get("insight")]
    for item in legacy:
        assert item["id"] in {i["id"] for i in listed(item["filters"]["insight"])}
    assert listed("NOT_A_KIND") == []


def test_the_classic_kinds_only(auth: dict[str, str]) -> None:
    config = EmulatorConfig(api_key=auth["Authorization"].split()[1], insights=200, other_kinds_share=0.0)
    with Emulator(config) as emulator:
        assert emulator.store.find(1, "JSON") == []
        for kind, variant in (
            ("TRENDS", "calendar_heatmap"),
            ("TRENDS", "boxplot"),
            ("RETENTION", "sampled"),
        ):
            assert emulator.store.find(1, kind, variant) == []


def test_hourly_trends_days_carry_a_time(kinds: Any) -> None:
    emulator, http = kinds
    hourly = emulator.store.find(1, "TRENDS", "line", interval="hour") + emulator.store.find(
        1, "LIFECYCLE", interval="hour"
    )
    if not hourly:
        pytest.skip("no hourly trends in this seed")
    body = http.get(DETAIL.format(hourly[0]), params={"refresh": "force_blocking"}).json()
    days = body["result"][0]["days"]
    assert len(days[0]) == 19 and days[0].endswith(":00:00")  # 2024-03-05 13:00:00
    assert len(days) >= 24
