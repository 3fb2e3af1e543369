"""The dashboards endpoints as PostHog's DashboardsViewSet serves them: the list (DashboardBasicSerializer:
no filters, no tiles; limit/offset pages; `-pinned, name` with unstable ties; deleted and unlisted ones
left out; `tags`), the retrieve (every tile's insight with its result, and a write of
`last_accessed_at`), soft delete and restore with the tiles that go with them, the `dashboard:read`
scope, and the rate bucket of their own (PostHog's default throttles, not the insights')."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from posthog_emulator import Emulator

DASHBOARDS = "/api/projects/1/dashboards/"
INSIGHTS = "/api/projects/1/insights/"
BASIC_FIELDS = [
    "id",
    "name",
    "description",
    "pinned",
    "created_at",
    "created_by",
    "last_accessed_at",
    "last_viewed_at",
    "is_shared",
    "deleted",
    "creation_mode",
    "tags",
    "restriction_level",
    "effective_restriction_level",
    "effective_privilege_level",
    "user_access_level",
    "access_control_version",
    "last_refresh",
    "team_id",
]
TILE_FIELDS = {
    "id",
    "insight",
    "text",
    "button_tile",
    "layouts",
    "color",
    "filters_overrides",
    "show_description",
    "transparent_background",
    "order",
    "last_refresh",
    "is_cached",
}


def _all(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    body = http.get(DASHBOARDS, params={"limit": 1000, **params}).json()
    assert body["count"] == len(body["results"])
    return list(body["results"])


def _insights(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    body = http.get(INSIGHTS, params={"limit": 1000, "basic": "true", "order": "id", **params}).json()
    return list(body["results"])


def test_the_list_is_metadata_in_posthogs_shape(client: httpx.Client, emu: Emulator) -> None:
    body = client.get(DASHBOARDS).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == len(emu.store.dashboard_ids(1)) == len(body["results"]) > 3
    for item in body["results"]:
        assert list(item) == BASIC_FIELDS  # no filters, no tiles, no results
        assert item["deleted"] is False and item["team_id"] == 1
        assert set(item["created_by"]) >= {"id", "email", "first_name"}
    stats = emu.stats
    assert stats.kind("dashboards") >= 1 and stats.calculations == 0


def test_pages_are_limit_offset_with_absolute_links(client: httpx.Client, emu: Emulator) -> None:
    everything = _all(client)
    first = client.get(DASHBOARDS, params={"limit": 3}, headers={"Host": "posthog.example:8443"}).json()
    assert len(first["results"]) == 3 and first["previous"] is None
    link = urlsplit(first["next"])
    assert (link.scheme, link.netloc, link.path) == ("http", "posthog.example:8443", DASHBOARDS)
    assert parse_qs(link.query) == {"limit": ["3"], "offset": ["3"]}
    seen = [item["id"] for item in first["results"]]
    url: str | None = f"{DASHBOARDS}?{link.query}"
    while url:
        page = client.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"] and urlsplit(page["next"])._replace(scheme="", netloc="").geturl()
    assert sorted(seen) == sorted(d["id"] for d in everything)  # the seeded names are unique: no ties


def test_order_is_pinned_then_name_and_ties_move_between_requests(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator()
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        for _ in range(6):
            assert http.post(DASHBOARDS, json={"name": "Same name"}).status_code == 201
        listed = _all(http, order="id")  # there is no `order`: it changes nothing
        pinned = [d["pinned"] for d in listed]
        assert pinned == sorted(pinned, reverse=True) and pinned[0] is True
        unpinned = [d["name"] for d in listed if not d["pinned"]]
        assert unpinned == sorted(unpinned)
        orders = {tuple(d["id"] for d in _all(http) if d["name"] == "Same name") for _ in range(8)}
    assert len(orders) > 1  # no tie-breaker: offset pages of ties may repeat or skip dashboards


def test_deleted_and_unlisted_dashboards_are_left_out(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator()
    store = emulator.store
    unlisted = store.create_unlisted_dashboard(1, "LLM analytics")
    victim = store.dashboard_ids(1)[1]
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        assert http.patch(f"{DASHBOARDS}{victim}/", json={"deleted": True}).status_code == 200
        ids = {d["id"] for d in _all(http)}
        assert victim not in ids and unlisted not in ids
        assert [d["id"] for d in _all(http, creation_mode="unlisted")] == [unlisted]
        assert http.get(f"{DASHBOARDS}{victim}/").status_code == 404
        assert http.get(f"{DASHBOARDS}{unlisted}/").status_code == 200  # direct lookups are allowed
        assert http.delete(f"{DASHBOARDS}{unlisted}/").status_code == 405  # ForbidDestroyModel
    assert store.dashboard(1, victim)["deleted"] is True


def test_tags_filter_takes_repeated_parameters(client: httpx.Client) -> None:
    everything = _all(client)
    tagged = [d for d in everything if d["tags"]]
    assert tagged
    tag = tagged[0]["tags"][0]
    other = next((t for d in tagged for t in d["tags"] if t != tag), tag)
    by_one = {d["id"] for d in _all(client, tags=tag)}
    assert by_one == {d["id"] for d in everything if tag in d["tags"]}
    either = client.get(DASHBOARDS, params=[("limit", "1000"), ("tags", tag), ("tags", other)]).json()
    assert {d["id"] for d in either["results"]} == {
        d["id"] for d in everything if tag in d["tags"] or other in d["tags"]
    }


def test_insights_show_their_live_tiles_with_global_ids(client: httpx.Client, emu: Emulator) -> None:
    tiles = emu.store.dashboard_tiles(1)
    assert tiles and len({t[0] for t in tiles}) == len(tiles)
    shown = sorted(
        (tile["id"], tile["dashboard_id"], item["id"])
        for item in _insights(client)
        for tile in item["dashboard_tiles"]
    )
    assert shown == tiles
    for item in _insights(client):
        assert item["dashboards"] == [t["dashboard_id"] for t in item["dashboard_tiles"]]
        assert all(t["deleted"] is None for t in item["dashboard_tiles"])
    other_project = {t[0] for t in emu.store.dashboard_tiles(2)}
    assert other_project and not other_project & {t[0] for t in tiles}


def test_deleting_a_dashboard_takes_its_tiles_and_restoring_brings_the_same_back(
    start_emulator: Any, auth: Any
) -> None:
    emulator = start_emulator()
    store = emulator.store
    dashboard = max(store.dashboard_ids(1), key=lambda d: len(store.dashboard(1, d)["_emulator"]["tiles"]))
    before = store.dashboard(1, dashboard)["_emulator"]["tiles"]
    assert before
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        http.patch(f"{DASHBOARDS}{dashboard}/", json={"deleted": True})
        on_it = _insights(http, dashboards=json.dumps([dashboard]))
        assert on_it == []  # the insights' dashboards filter counts live tiles on live dashboards only
        shown = {t["dashboard_id"] for item in _insights(http) for t in item["dashboard_tiles"]}
        assert dashboard not in shown
        insight_id = before[0][1]
        plain = http.get(f"{INSIGHTS}{insight_id}/").json()
        viewed = http.get(f"{INSIGHTS}{insight_id}/", params={"from_dashboard": dashboard}).json()
        assert viewed["filters_hash"] == plain["filters_hash"]  # no live tile: the plain insight
        restored = http.patch(f"{DASHBOARDS}{dashboard}/", json={"deleted": False})
        assert restored.status_code == 200
        assert [t["id"] for t in restored.json()["tiles"]] == [tile for tile, _ in before]
    assert store.dashboard(1, dashboard)["_emulator"]["tiles"] == before


def test_an_insight_taken_off_and_put_back_keeps_its_tile_id(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator()
    store = emulator.store
    tile_id, dashboard, insight_id = store.dashboard_tiles(1)[0]
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        others = [d for d in store.insight(1, insight_id)["dashboards"] if d != dashboard]
        http.patch(f"{INSIGHTS}{insight_id}/", json={"dashboards": others})
        assert (tile_id, dashboard, insight_id) not in store.dashboard_tiles(1)
        new_dashboard = http.post(DASHBOARDS, json={"name": "New"}).json()["id"]
        again = [*others, dashboard, new_dashboard]
        back = http.patch(f"{INSIGHTS}{insight_id}/", json={"dashboards": again})
        tiles = {t["dashboard_id"]: t["id"] for t in back.json()["dashboard_tiles"]}
    assert tiles[dashboard] == tile_id  # PostHog undeletes the same tile
    assert tiles[new_dashboard] > max(t[0] for t in store.dashboard_tiles(2))  # a new global id


def test_a_deleted_insight_leaves_its_dashboards(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator()
    store = emulator.store
    _, dashboard, insight_id = store.dashboard_tiles(1)[0]
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        http.patch(f"{INSIGHTS}{insight_id}/", json={"deleted": True})
        assert all(t[2] != insight_id for t in store.dashboard_tiles(1))
        assert insight_id not in {t[1] for t in store.dashboard(1, dashboard)["_emulator"]["tiles"]}
        restored = http.patch(f"{INSIGHTS}{insight_id}/", json={"deleted": False}).json()
    assert restored["dashboard_tiles"] == []  # PostHog soft-deleted the tiles; a restore leaves them so


def test_retrieve_carries_every_tile_with_its_result_and_stamps_last_accessed(
    start_emulator: Any, auth: Any
) -> None:
    emulator = start_emulator()
    store = emulator.store
    dashboard = next(d for d in store.dashboard_ids(1) if store.dashboard(1, d)["_emulator"]["tiles"])
    accessed = store.dashboard(1, dashboard)["last_accessed_at"]
    emulator.advance_clock(3600)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        body = http.get(f"{DASHBOARDS}{dashboard}/").json()
        listed = next(d for d in _all(http) if d["id"] == dashboard)
    assert body["filters"] == store.dashboard(1, dashboard)["_emulator"]["filters"]
    assert "filters" not in listed and "tiles" not in listed
    assert [(t["id"], t["insight"]["id"]) for t in body["tiles"]] == [
        tuple(t) for t in store.dashboard(1, dashboard)["_emulator"]["tiles"]
    ]
    for tile in body["tiles"]:
        assert set(tile) == TILE_FIELDS
        assert "result" in tile["insight"] and "color" not in tile["insight"]
    assert listed["last_accessed_at"] != accessed  # the read wrote last_accessed_at
    assert emulator.stats.kind("dashboard") == 1 and emulator.stats.calculations == 0


def test_a_key_without_dashboard_read_gets_403(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator(allow_dashboards=False)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        denied = http.get(DASHBOARDS)
        assert denied.status_code == 403
        assert denied.json() == {
            "type": "authentication_error",
            "code": "permission_denied",
            "detail": "API key missing required scope 'dashboard:read'",
            "attr": None,
        }
        assert http.get(INSIGHTS).status_code == 200


def test_dashboards_are_throttled_in_a_bucket_of_their_own(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator(rate_limits=((2, 60.0),), other_rate_limits=((3, 60.0),))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        assert [http.get(INSIGHTS).status_code for _ in range(3)] == [200, 200, 429]
        # the insights' windows are full; the dashboards' are not (PostHog: other scopes, other keys)
        assert [http.get(DASHBOARDS).status_code for _ in range(4)] == [200, 200, 200, 429]
        throttled = http.get(DASHBOARDS)
        assert throttled.json()["code"] == "throttled" and throttled.headers["Retry-After"]
        emulator.advance_clock(61)
        assert http.get(DASHBOARDS).status_code == 200
        assert http.get(INSIGHTS).status_code == 200
    assert emulator.stats.throttled == 3


def test_create_and_update_in_the_serializers_shape(start_emulator: Any, auth: Any) -> None:
    emulator = start_emulator()
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        fields = {"name": "KPIs", "tags": ["kpi"], "pinned": True, "filters": {"date_from": "-7d"}}
        created = http.post(DASHBOARDS, json=fields)
        assert created.status_code == 201
        body = created.json()
        assert body["creation_mode"] == "default" and body["tiles"] == [] and body["filters"]["date_from"]
        renamed = http.patch(f"{DASHBOARDS}{body['id']}/", json={"name": "KPI board", "description": "x"})
        assert renamed.json()["name"] == "KPI board"
        bad = http.patch(f"{DASHBOARDS}{body['id']}/", json={"pinned": "yes"})
        assert bad.status_code == 400 and bad.json()["attr"] == "pinned"
        first = _all(http)[0]
    assert first["id"] == body["id"] or first["pinned"] is True  # pinned ones come first


def test_from_dashboard_merges_filters_override_over_the_dashboards_filters(
    client: httpx.Client, emu: Emulator
) -> None:
    store = emu.store

    def daily_trend(insight_id: int) -> bool:
        meta = store.insight(1, insight_id)["_emulator"]
        return bool(meta["kind"] == "TRENDS" and meta["interval"] == "day" and not meta["fixed_range"])

    dashboard, insight_id = next(
        (d, i)
        for d in store.dashboard_ids(1)
        if store.dashboard(1, d)["_emulator"]["filters"] == {"date_from": "-14d"}
        for _, i in store.dashboard(1, d)["_emulator"]["tiles"]
        if daily_trend(i)
    )
    override = json.dumps({"date_to": "2024-03-31"})
    body = client.get(
        f"{INSIGHTS}{insight_id}/", params={"from_dashboard": dashboard, "filters_override": override}
    ).json()
    # {**dashboard.filters, **filters_override}: the dashboard's date_from stays, the override's date_to joins
    assert body["query"]["source"]["dateRange"] == {"date_from": "-14d", "date_to": "2024-03-31"}
