"""The rest of the insights API: create, update, soft delete, refused DELETE, activity, sharing,
views, and the legacy compute endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator

LIST = "/api/projects/1/insights/"
TRENDS_QUERY = {
    "kind": "InsightVizNode",
    "source": {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": "$pageview", "name": "$pageview"}],
        "dateRange": {"date_from": "-7d"},
    },
}


@pytest.fixture
def fresh(start_emulator: Any, auth: dict[str, str]) -> Any:
    emulator = start_emulator()
    http = httpx.Client(base_url=emulator.base_url, headers=auth, timeout=10)
    yield emulator, http
    http.close()


def test_create_returns_201_and_the_insight(fresh: Any) -> None:
    _, http = fresh
    response = http.post(
        LIST, json={"name": "Pageviews", "query": TRENDS_QUERY, "tags": ["kpi"], "saved": True}
    )
    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "Pageviews" and created["tags"] == ["kpi"] and created["saved"] is True
    assert created["result"] is None and created["is_cached"] is False  # nothing computed yet
    assert len(created["short_id"]) == 8
    fetched = http.get(f"{LIST}{created['id']}/", params={"refresh": "blocking"}).json()
    assert fetched["result"][0]["label"] == "$pageview" and len(fetched["result"][0]["days"]) == 8
    listed = http.get(LIST, params={"short_id": created["short_id"]}).json()
    assert listed["count"] == 1
    assert http.get(LIST, params={"insight": "TRENDS", "limit": 500}).json()["count"] > 1


def test_create_rejects_bad_queries(fresh: Any) -> None:
    _, http = fresh
    bad = http.post(LIST, json={"query": {"kind": "InsightVizNode", "source": {"kind": "Nope"}}})
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error"
    garbage = http.post(LIST, content=b"{not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and garbage.json()["code"] == "parse_error"


def test_patch_updates_and_logs_changes(fresh: Any) -> None:
    emulator, http = fresh
    insight_id = emulator.store.insight_ids(1)[3]
    before = http.get(f"{LIST}{insight_id}/").json()
    response = http.patch(f"{LIST}{insight_id}/", json={"name": "Renamed", "description": "new text"})
    assert response.status_code == 200
    after = response.json()
    assert after["name"] == "Renamed" and after["description"] == "new text"
    assert after["last_modified_at"] > before["last_modified_at"]
    activity = http.get(f"{LIST}{insight_id}/activity/").json()
    latest = activity["results"][0]
    assert (
        latest["activity"] == "updated"
        and latest["scope"] == "Insight"
        and latest["item_id"] == str(insight_id)
    )
    changes = {change["field"]: change for change in latest["detail"]["changes"]}
    assert changes["name"]["before"] == before["name"] and changes["name"]["after"] == "Renamed"
    assert latest["detail"]["short_id"] == before["short_id"] and latest["detail"]["name"] == "Renamed"
    assert set(latest) >= {"user", "activity", "scope", "item_id", "detail", "created_at"}


def test_patch_query_invalidates_the_cache(fresh: Any) -> None:
    emulator, http = fresh
    insight_id = emulator.store.insight_ids(1)[4]
    emulator.store.set_cache_state(1, insight_id, "fresh")
    assert http.get(f"{LIST}{insight_id}/").json()["result"] is not None
    patched = http.patch(f"{LIST}{insight_id}/", json={"query": TRENDS_QUERY}).json()
    assert patched["result"] is None and patched["query"] == TRENDS_QUERY


def test_soft_delete_by_patch_then_restore(fresh: Any) -> None:
    emulator, http = fresh
    insight_id = emulator.store.insight_ids(1)[6]
    count = http.get(LIST).json()["count"]
    deleted = http.patch(f"{LIST}{insight_id}/", json={"deleted": True})
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert http.get(LIST).json()["count"] == count - 1
    assert http.get(f"{LIST}{insight_id}/").status_code == 404
    assert http.patch(f"{LIST}{insight_id}/", json={"name": "x"}).status_code == 404
    activity = http.get("/api/projects/1/insights/activity/").json()["results"][0]
    assert activity["activity"] == "deleted" and activity["item_id"] == str(insight_id)
    restored = http.patch(f"{LIST}{insight_id}/", json={"deleted": False})
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert http.get(LIST).json()["count"] == count


def test_delete_is_405_with_an_empty_body(client: httpx.Client) -> None:
    response = client.delete(f"{LIST}1/")
    assert response.status_code == 405
    assert response.content == b""
    assert client.get(f"{LIST}1/").status_code == 200


def test_project_activity_is_paginated_newest_first(fresh: Any) -> None:
    emulator, http = fresh
    created = http.post(LIST, json={"name": "Brand new", "query": TRENDS_QUERY}).json()
    first = http.get("/api/projects/1/insights/activity/", params={"limit": 7}).json()
    assert set(first) == {"results", "next", "previous", "total_count"}
    assert first["total_count"] == 61  # 60 seeded "created" entries and one from the API
    assert len(first["results"]) == 7 and first["previous"] is None
    newest = first["results"][0]
    assert newest["activity"] == "created" and newest["item_id"] == str(created["id"])
    assert newest["detail"]["changes"] is None and newest["detail"]["name"] == "Brand new"
    seen = [record["id"] for record in first["results"]]
    url = first["next"]
    assert url.startswith(emulator.base_url) and "page=2" in url and "limit=7" in url
    pages = 1
    while url and pages < 20:
        page = http.get(url).json()
        seen.extend(record["id"] for record in page["results"])
        url = page["next"]
        pages += 1
    assert len(seen) == 61 == len(set(seen))
    times = [
        r["created_at"]
        for r in http.get("/api/projects/1/insights/activity/", params={"limit": 100}).json()["results"]
    ]
    assert times == sorted(times, reverse=True)
    assert http.get("/api/projects/1/insights/activity/", params={"page": "x"}).status_code == 400


def test_insight_activity_filters_by_item(fresh: Any) -> None:
    emulator, http = fresh
    insight_id = emulator.store.insight_ids(1)[8]
    http.patch(f"{LIST}{insight_id}/", json={"tags": ["a"]})
    http.patch(f"{LIST}{insight_id}/", json={"favorited": True})
    records = http.get(f"{LIST}{insight_id}/activity/").json()
    assert [r["activity"] for r in records["results"]] == ["updated", "updated", "created"]
    assert all(r["item_id"] == str(insight_id) for r in records["results"])
    assert http.get(f"{LIST}999999/activity/").status_code == 404


def test_sharing_get_and_patch(fresh: Any) -> None:
    emulator, http = fresh
    insight_id = emulator.store.insight_ids(1)[9]
    sharing = http.get(f"{LIST}{insight_id}/sharing/").json()
    assert sharing["enabled"] is False and sharing["access_token"]
    assert set(sharing) >= {"created_at", "enabled", "access_token", "settings"}
    patched = http.patch(f"{LIST}{insight_id}/sharing/", json={"enabled": True}).json()
    assert patched["enabled"] is True and patched["created_at"]
    assert http.get(f"{LIST}{insight_id}/sharing/").json()["enabled"] is True


def test_viewed_and_my_last_viewed(fresh: Any) -> None:
    emulator, http = fresh
    assert http.get(f"{LIST}my_last_viewed/").json() == []
    ids = emulator.store.insight_ids(1)[:7]
    for offset, insight_id in enumerate(ids):
        emulator.advance_clock(1)
        response = http.post(f"{LIST}{insight_id}/viewed/")
        assert response.status_code == 201, offset
    recent = http.get(f"{LIST}my_last_viewed/").json()
    assert [item["id"] for item in recent] == list(reversed(ids))[:5]
    assert all(item["last_viewed_at"] for item in recent)
    emulator.advance_clock(1)
    assert http.post(f"{LIST}viewed/", json={"insight_ids": [ids[0]]}).status_code == 201
    assert http.get(f"{LIST}my_last_viewed/").json()[0]["id"] == ids[0]
    assert http.post(f"{LIST}viewed/", json={"insight_ids": []}).status_code == 400


@pytest.mark.parametrize(
    ("endpoint", "check"),
    [
        ("trend", lambda result: isinstance(result, list) and "data" in result[0] and "days" in result[0]),
        ("funnel", lambda result: isinstance(result, list) and "count" in result[0] and "order" in result[0]),
        ("retention", lambda result: isinstance(result, list) and "values" in result[0]),
        ("path", lambda result: isinstance(result, list) and result[0]["source"].startswith("1_")),
        ("funnel/correlation", lambda result: isinstance(result, dict) and "events" in result),
    ],
)
def test_legacy_compute_endpoints(client: httpx.Client, emu: Emulator, endpoint: str, check: Any) -> None:
    emu.reset_stats()
    filters = {"events": [{"id": "$pageview", "type": "events"}, {"id": "signed_up", "type": "events"}]}
    response = client.post(f"{LIST}{endpoint}/", json={**filters, "date_from": "-7d"})
    assert response.status_code == 200
    body = response.json()
    assert check(body["result"])
    assert body["is_cached"] is False and body["last_refresh"] and body["timezone"] == "UTC"
    assert emu.stats.kind("compute") == 1
    again = client.post(f"{LIST}{endpoint}/", json={**filters, "date_from": "-7d"}).json()
    assert again["is_cached"] is True and again["result"] == body["result"]


def test_legacy_trend_get_with_query_params(client: httpx.Client) -> None:
    response = client.get(
        f"{LIST}trend/", params={"events": '[{"id": "$pageview"}]', "date_from": "-3d", "insight": "TRENDS"}
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["result"][0]["days"]) == 4 and body["next"] is None
