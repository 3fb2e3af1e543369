"""The source against a PostHog-compatible server that is not our emulator: it serves PostHog's own
payloads (tests/fixtures/posthog, from PostHog's frontend mocks) through list and retrieve, and the tidy
tables must hold exactly the rows those payloads imply. The payloads built from PostHog's schema and query
runners where no real one exists (tests/fixtures/synthetic: calendar heatmap, box plot, data tables over
events, persons and web analytics, sampled retention) go the same way."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from starlette.requests import Request

from tests.conftest import TEST_KEY, Warehouse
from tests.support.scripted_server import Reply, ScriptedServer, error_reply, json_reply
from tests.tidy_check import check_all_ok_snapshots

FIXTURES = Path(__file__).parent / "fixtures" / "posthog"
SYNTHETIC = Path(__file__).parent / "fixtures" / "synthetic"
EXPECTED_KINDS = {
    "dataTableHogQL": "sql",
    "sqlLineChart": "sql",
    "funnelHistoricalTrends": "funnels",
    "funnelLeftToRight": "funnels",
    "funnelLeftToRightCompare": "funnels",
    "funnelTimeToConvertCompare": "funnels",
    "retention": "retention",
    "stickiness": "stickiness",
    "trendsLine": "trends",
    "trendsNumber": "trends",
    "userPaths": "paths",
}
EXPECTED_SYNTHETIC_KINDS = {
    "calendarHeatmapQuery": "trends",
    "dataTableActors": "table",
    "dataTableEvents": "table",
    "retentionSampled": "retention",
    "trendsBoxPlot": "trends",
    "trendsCalendarHeatmap": "trends",
    "webOverview": "table",
    "webStatsTable": "table",
}
TIDY_TABLES = (
    "trend_points",
    "funnel_steps",
    "funnel_conversion_bins",
    "retention_cells",
    "path_edges",
    "sql_rows",
)


def _payloads(folder: Path = FIXTURES) -> dict[int, dict[str, Any]]:
    """The fixtures share ids (most are 51): give each its own id and short_id, as a real project has."""
    payloads = {}
    for number, path in enumerate(sorted(folder.glob("*.json")), start=1):
        payload = json.loads(path.read_text())
        payload["id"] = number
        payload["short_id"] = f"fx{number:06d}"
        payload["name"] = payload.get("name") or path.stem
        payload["_fixture"] = path.stem
        payloads[number] = payload
    return payloads


class RealPayloadServer:
    """List (limit/offset, absolute next) and retrieve, over the fixture payloads, with Bearer auth."""

    def __init__(self, folder: Path = FIXTURES) -> None:
        self.payloads = _payloads(folder)
        self.server = ScriptedServer()

    def _authorised(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TEST_KEY}"

    def _list(self, request: Request) -> Reply:
        if not self._authorised(request):
            return error_reply(401, "authentication_failed", "Incorrect authentication credentials.")
        limit = int(request.query_params.get("limit", "100"))
        offset = int(request.query_params.get("offset", "0"))
        items = [self.payloads[k] for k in sorted(self.payloads)]
        page = [{k: v for k, v in p.items() if k != "_fixture"} for p in items[offset : offset + limit]]
        following = None
        if offset + limit < len(items):
            following = (
                f"{self.server.url}/api/projects/1/insights/?order=id&limit={limit}&offset={offset + limit}"
            )
        return json_reply({"count": len(items), "next": following, "previous": None, "results": page})

    def _retrieve(self, request: Request) -> Reply:
        if not self._authorised(request):
            return error_reply(401, "authentication_failed", "Incorrect authentication credentials.")
        insight_id = int(request.url.path.rstrip("/").rsplit("/", 1)[1])
        payload = copy.deepcopy(self.payloads[insight_id])
        payload.pop("_fixture")
        return json_reply(payload)

    def __enter__(self) -> RealPayloadServer:
        self.server.start()
        self.server.always("/api/projects/1/insights/", self._list)
        for insight_id in self.payloads:
            self.server.always(f"/api/projects/1/insights/{insight_id}/", self._retrieve)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def _load(warehouse: Warehouse, url: str, refresh: str) -> Any:
    from posthog_insights_cli.loader import load

    return load(
        pipeline=warehouse.pipeline(),
        host=url,
        project_ids=[1],
        personal_api_key=TEST_KEY,
        refresh=refresh,
        rate_limit="off",
        page_size=4,
    )


def _load_all(warehouse: Warehouse, folder: Path, expected_kinds: dict[str, str]) -> RealPayloadServer:
    """Every payload of `folder` through list (pages of 4) and the tidy tables; each row checked."""
    with RealPayloadServer(folder) as fake:
        result = _load(warehouse, fake.server.url, "force_cache")
        assert result.complete
        pages = math.ceil(len(fake.payloads) / 4)
        assert len(fake.server.requests_to("/api/projects/1/insights/")) == pages
    kinds = dict(warehouse.sql("SELECT id, kind FROM insights"))
    assert {fake.payloads[i]["_fixture"]: k for i, k in kinds.items()} == expected_kinds
    statuses = dict(warehouse.sql("SELECT insight_id, status FROM insight_results"))
    assert statuses == {i: "ok" for i in fake.payloads}
    assert all(r[0] for r in warehouse.sql("SELECT shape_recognised FROM insight_results"))
    checked = check_all_ok_snapshots(warehouse)
    tidy_total = sum(warehouse.count(t) for t in TIDY_TABLES if t in warehouse.tables())
    assert tidy_total == sum(checked.values())
    return fake


def test_every_real_payload_loads_with_exactly_its_rows(warehouse: Warehouse) -> None:
    fake = _load_all(warehouse, FIXTURES, EXPECTED_KINDS)
    shapes = dict(warehouse.sql("SELECT insight_id, shape FROM insight_results"))
    assert {fake.payloads[i]["_fixture"]: s for i, s in shapes.items()} == {
        "dataTableHogQL": "sql",
        "sqlLineChart": "sql",
        "funnelHistoricalTrends": "funnel_trends",
        "funnelLeftToRight": "funnel_steps",
        "funnelLeftToRightCompare": "funnel_steps_compare",
        "funnelTimeToConvertCompare": "funnel_time_to_convert_compare",
        "retention": "retention",
        "stickiness": "trends",
        "trendsLine": "trends",
        "trendsNumber": "trends_aggregate",
        "userPaths": "paths",
    }
    # spot values straight from the payload files
    trends = next(p for p in fake.payloads.values() if p["_fixture"] == "trendsLine")
    first = trends["result"][0]["data"]
    got = [
        v
        for (v,) in warehouse.sql(
            "SELECT value FROM trend_points WHERE insight_id = ? AND series_index = 0 ORDER BY point_index",
            trends["id"],
        )
    ]
    assert got == [float(v) for v in first]
    # a compared funnel: both periods' steps, one group each
    compare = next(p for p in fake.payloads.values() if p["_fixture"] == "funnelLeftToRightCompare")
    steps = warehouse.sql(
        "SELECT breakdown_index, step_order, count, compare_label FROM funnel_steps WHERE insight_id = ? "
        "ORDER BY breakdown_index, step_order",
        compare["id"],
    )
    assert steps == [
        (0, 0, 20166, "current"),
        (0, 1, 8438, "current"),
        (0, 2, 2864, "current"),
        (1, 0, 16000, "previous"),
        (1, 1, 6200, "previous"),
        (1, 2, 1900, "previous"),
    ]


def test_every_synthetic_payload_loads_with_exactly_its_rows(warehouse: Warehouse) -> None:
    fake = _load_all(warehouse, SYNTHETIC, EXPECTED_SYNTHETIC_KINDS)
    shapes = dict(warehouse.sql("SELECT insight_id, shape FROM insight_results"))
    assert {fake.payloads[i]["_fixture"]: s for i, s in shapes.items()} == {
        "calendarHeatmapQuery": "trends_calendar_heatmap",
        "dataTableActors": "table",
        "dataTableEvents": "table",
        "retentionSampled": "retention",
        "trendsBoxPlot": "trends_box_plot",
        "trendsCalendarHeatmap": "trends_calendar_heatmap",
        "webOverview": "table",
        "webStatsTable": "table",
    }
    # the new columns reach the warehouse with their types
    types = dict(
        warehouse.sql(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'posthog_insights'"
        )
    )
    assert {c: types[c] for c in ("trend_points.weekday", "trend_points.hour")} == {
        "trend_points.weekday": "INTEGER",
        "trend_points.hour": "INTEGER",
    }
    assert {types[f"trend_points.box_{n}"] for n in ("min", "p25", "median", "p75", "max")} == {"DOUBLE"}
    assert (types["retention_cells.value"], types["retention_cells.count"]) == ("DOUBLE", "BIGINT")
    heatmap = next(p for p in fake.payloads.values() if p["_fixture"] == "trendsCalendarHeatmap")
    cells = heatmap["result"][0]["calendar_heatmap_data"]["data"]
    got = warehouse.sql(
        "SELECT weekday, hour, value FROM trend_points WHERE insight_id = ? ORDER BY point_index",
        heatmap["id"],
    )
    assert got == [(c["row"], c["column"], float(c["value"])) for c in cells]


def test_real_payloads_rerun_adds_nothing(warehouse: Warehouse) -> None:
    with RealPayloadServer() as fake:
        _load(warehouse, fake.server.url, "blocking")
        before = warehouse.count("insight_results"), warehouse.count("trend_points")
        again = _load(warehouse, fake.server.url, "blocking")
    assert again.row_counts == {}
    assert (warehouse.count("insight_results"), warehouse.count("trend_points")) == before
