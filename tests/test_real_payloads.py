"""The source against a PostHog-compatible server that is not our emulator: it serves PostHog's own
payloads (tests/fixtures/posthog, from PostHog's frontend mocks) through list and retrieve, and the tidy
tables must hold exactly the rows those payloads imply."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request

from tests.conftest import TEST_KEY, Warehouse
from tests.support.scripted_server import Reply, ScriptedServer, error_reply, json_reply
from tests.tidy_check import check_all_ok_snapshots

FIXTURES = Path(__file__).parent / "fixtures" / "posthog"
EXPECTED_KINDS = {
    "dataTableHogQL": "sql",
    "sqlLineChart": "sql",
    "funnelHistoricalTrends": "funnels",
    "funnelLeftToRight": "funnels",
    "retention": "retention",
    "stickiness": "stickiness",
    "trendsLine": "trends",
    "trendsNumber": "trends",
    "userPaths": "paths",
}


def _payloads() -> dict[int, dict[str, Any]]:
    """The fixtures share ids (most are 51): give each its own id and short_id, as a real project has."""
    payloads = {}
    for number, path in enumerate(sorted(FIXTURES.glob("*.json")), start=1):
        payload = json.loads(path.read_text())
        payload["id"] = number
        payload["short_id"] = f"fx{number:06d}"
        payload["name"] = payload.get("name") or path.stem
        payload["_fixture"] = path.stem
        payloads[number] = payload
    return payloads


class RealPayloadServer:
    """List (limit/offset, absolute next) and retrieve, over the fixture payloads, with Bearer auth."""

    def __init__(self) -> None:
        self.payloads = _payloads()
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


def test_every_real_payload_loads_with_exactly_its_rows(warehouse: Warehouse) -> None:
    with RealPayloadServer() as fake:
        result = _load(warehouse, fake.server.url, "force_cache")
        assert result.complete
        assert len(fake.server.requests_to("/api/projects/1/insights/")) == 3  # 9 insights, pages of 4
    kinds = dict(warehouse.sql("SELECT id, kind FROM insights"))
    assert {fake.payloads[i]["_fixture"]: k for i, k in kinds.items()} == EXPECTED_KINDS
    statuses = dict(warehouse.sql("SELECT insight_id, status FROM insight_results"))
    assert statuses == {i: "ok" for i in fake.payloads}
    assert all(r[0] for r in warehouse.sql("SELECT shape_recognised FROM insight_results"))
    checked = check_all_ok_snapshots(warehouse)
    tidy_total = sum(
        warehouse.count(t)
        for t in (
            "trend_points",
            "funnel_steps",
            "funnel_conversion_bins",
            "retention_cells",
            "path_edges",
            "sql_rows",
        )
        if t in warehouse.tables()
    )
    assert tidy_total == sum(checked.values())
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


def test_real_payloads_rerun_adds_nothing(warehouse: Warehouse) -> None:
    with RealPayloadServer() as fake:
        _load(warehouse, fake.server.url, "blocking")
        before = warehouse.count("insight_results"), warehouse.count("trend_points")
        again = _load(warehouse, fake.server.url, "blocking")
    assert again.row_counts == {}
    assert (warehouse.count("insight_results"), warehouse.count("trend_points")) == before
