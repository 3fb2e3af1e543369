"""The list endpoint: pagination envelope and URLs, ordering (stable and PostHog's unstable default),
filters, soft deletes, `basic`, and the cached results that ride along without `basic`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from posthog_emulator import Emulator

LIST = "/api/projects/1/insights/"
BASIC_FIELDS = {
    "id",
    "short_id",
    "name",
    "derived_name",
    "filters",
    "query",
    "dashboards",
    "dashboard_tiles",
    "description",
    "last_refresh",
    "refreshing",
    "saved",
    "tags",
    "updated_at",
    "created_by",
    "created_at",
    "last_modified_at",
    "favorited",
    "user_access_level",
    "last_viewed_at",
}


def all_items(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get(LIST, params={"limit": 1000, "basic": "true", **params})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == len(body["results"])
    return list(body["results"])


def test_envelope_and_default_limit(client: httpx.Client) -> None:
    body = client.get(LIST, params={"order": "id"}).json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 350
    assert len(body["results"]) == 100
    assert body["previous"] is None


def test_next_and_previous_are_absolute_and_keep_other_params(client: httpx.Client) -> None:
    params = {"order": "-last_modified_at", "limit": 30, "basic": "true", "saved": "true"}
    first = client.get(LIST, params=params, headers={"Host": "posthog.example:8443"}).json()
    next_url = first["next"]
    assert next_url.startswith("http://posthog.example:8443/api/projects/1/insights/?")
    query = parse_qs(urlsplit(next_url).query)
    assert query == {
        "basic": ["true"],
        "limit": ["30"],
        "offset": ["30"],
        "order": ["-last_modified_at"],
        "saved": ["true"],
    }
    second = client.get(next_url.replace("http://posthog.example:8443", "")).json()
    previous = parse_qs(urlsplit(second["previous"]).query)
    assert "offset" not in previous  # DRF drops offset when going back to the first page
    assert previous["limit"] == ["30"]
    third = client.get(LIST, params={**params, "offset": 60}).json()
    assert parse_qs(urlsplit(third["previous"]).query)["offset"] == ["30"]


def test_paging_with_explicit_order_visits_every_insight_once(client: httpx.Client) -> None:
    seen: list[int] = []
    url: str | None = f"{LIST}?order=id&limit=40&basic=true"
    pages = 0
    while url and pages < 20:
        body = client.get(url).json()
        seen.extend(item["id"] for item in body["results"])
        url = body["next"]
        pages += 1
    assert len(seen) == 350 and len(set(seen)) == 350
    assert seen == sorted(seen)


@pytest.mark.parametrize("field", ["id", "name", "created_at", "last_modified_at", "updated_at", "favorited"])
@pytest.mark.parametrize("descending", [False, True])
def test_order_by_any_field_with_stable_tie_break(client: httpx.Client, field: str, descending: bool) -> None:
    items = all_items(client, order=f"-{field}" if descending else field)
    values = [(item[field], item["id"]) for item in items]
    expected = sorted(values, key=lambda pair: pair[1])
    expected.sort(key=lambda pair: pair[0], reverse=descending)
    assert values == expected


def test_order_unknown_field_is_400(client: httpx.Client) -> None:
    response = client.get(LIST, params={"order": "no_such_field"})
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"


def test_default_order_is_unstable_so_paging_repeats_and_skips(client: httpx.Client) -> None:
    seen: list[int] = []
    for offset in range(0, 350, 50):
        body = client.get(LIST, params={"limit": 50, "offset": offset, "basic": "true"}).json()
        seen.extend(item["id"] for item in body["results"])
    assert len(seen) == 350
    assert len(set(seen)) < 350  # some insights came twice, so others never came


def test_default_order_puts_non_null_order_first(client: httpx.Client) -> None:
    items = client.get(LIST, params={"limit": 1000}).json()["results"]
    orders = [item["order"] for item in items]
    non_null = [value for value in orders if value is not None]
    assert non_null, "the seed gives a few insights an explicit order"
    assert orders[: len(non_null)] == sorted(non_null)


def test_filters_saved_favorited_short_id(client: httpx.Client) -> None:
    everything = all_items(client)
    saved = all_items(client, saved="true")
    assert {i["id"] for i in saved} == {i["id"] for i in everything if i["saved"] or i["dashboards"]}
    unsaved = all_items(client, saved="false")
    assert {i["id"] for i in unsaved} == {i["id"] for i in everything if not i["saved"]}
    favorited = all_items(client, favorited="true")
    assert favorited and all(i["favorited"] for i in favorited)
    assert len(favorited) == sum(i["favorited"] for i in everything)
    target = everything[17]
    assert [i["id"] for i in all_items(client, short_id=target["short_id"])] == [target["id"]]


def test_filters_created_by_tags_dashboards(client: httpx.Client) -> None:
    everything = all_items(client)
    by_users = all_items(client, created_by=json.dumps([1, 2]))
    assert {i["id"] for i in by_users} == {i["id"] for i in everything if i["created_by"]["id"] in (1, 2)}
    tagged = all_items(client, tags=json.dumps(["kpi", "growth"]))
    assert {i["id"] for i in tagged} == {i["id"] for i in everything if {"kpi", "growth"} & set(i["tags"])}
    assert tagged
    dashboard = next(i["dashboards"][0] for i in everything if i["dashboards"])
    on_dashboard = all_items(client, dashboards=json.dumps([dashboard]))
    assert on_dashboard and all(dashboard in i["dashboards"] for i in on_dashboard)
    assert client.get(LIST, params={"tags": "not json"}).status_code == 400


@pytest.mark.parametrize(
    ("insight", "source_kind"),
    [
        ("TRENDS", "TrendsQuery"),
        ("FUNNELS", "FunnelsQuery"),
        ("RETENTION", "RetentionQuery"),
        ("PATHS", "PathsQuery"),
        ("STICKINESS", "StickinessQuery"),
        ("LIFECYCLE", "LifecycleQuery"),
        ("SQL", "HogQLQuery"),
    ],
)
def test_filter_by_insight_kind(client: httpx.Client, insight: str, source_kind: str) -> None:
    items = all_items(client, insight=insight)
    assert 35 <= len(items) <= 65  # roughly an even share of 350
    assert all(item["query"]["source"]["kind"] == source_kind for item in items)


def test_search_matches_name_and_description(client: httpx.Client) -> None:
    everything = all_items(client)
    found = all_items(client, search="FUNNELS")
    assert found
    for item in found:
        texts = [item["name"], item["derived_name"], item["description"], *item["tags"]]
        assert any("funnels" in (text or "").lower() for text in texts)
    by_tag = all_items(client, search="onboard")
    assert {i["id"] for i in by_tag} == {i["id"] for i in everything if "onboarding" in i["tags"]} | {
        i["id"] for i in everything if "onboard" in ((i["name"] or "") + (i["description"] or "")).lower()
    }


def test_date_filters_on_last_modified_at(client: httpx.Client, emu: Emulator) -> None:
    everything = all_items(client)
    now = datetime.fromtimestamp(emu.store.now(), UTC)

    def modified(item: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(item["last_modified_at"].replace("Z", "+00:00"))

    recent = all_items(client, date_from="-30d")
    assert {i["id"] for i in recent} == {
        i["id"] for i in everything if modified(i) > now - timedelta(days=30)
    }
    assert 0 < len(recent) < len(everything)
    for relative, delta in (("-24h", timedelta(hours=24)), ("-2w", timedelta(weeks=2))):
        items = all_items(client, date_from=relative)
        assert {i["id"] for i in items} == {i["id"] for i in everything if modified(i) > now - delta}
    cutoff = (now - timedelta(days=100)).date().isoformat()
    older = all_items(client, date_to=cutoff)
    bound = datetime.fromisoformat(cutoff).replace(tzinfo=UTC)
    assert {i["id"] for i in older} == {i["id"] for i in everything if modified(i) < bound}
    month = all_items(client, date_from="-1m")
    assert 0 < len(month) < len(everything)
    assert client.get(LIST, params={"date_from": "yesterday-ish"}).status_code == 400


def test_basic_gives_metadata_only(client: httpx.Client) -> None:
    item = client.get(LIST, params={"basic": "true", "limit": 1, "order": "id"}).json()["results"][0]
    assert set(item) == BASIC_FIELDS
    full = client.get(LIST, params={"limit": 1, "order": "id"}).json()["results"][0]
    assert "result" in full and "last_refresh" in full and "query_status" in full


def test_list_items_carry_the_force_cache_result(client: httpx.Client, emu: Emulator) -> None:
    emu.reset_stats()
    page = client.get(LIST, params={"order": "id", "limit": 60}).json()["results"]
    assert emu.stats.kind("compute") == 0  # the list never computes
    states = {"hit": 0, "miss": 0, "error": 0}
    for item in page:
        retrieved = client.get(f"{LIST}{item['id']}/", params={"refresh": "force_cache"}).json()
        item_result = {k: item[k] for k in ("result", "last_refresh", "is_cached", "query_status", "hogql")}
        assert item_result == {k: retrieved[k] for k in item_result}
        if item["query_status"] and item["query_status"]["error"]:
            states["error"] += 1
            assert item["result"] is None
        elif item["result"] is None:
            states["miss"] += 1
            assert item["is_cached"] is False and item["last_refresh"] is None
        else:
            states["hit"] += 1
            assert item["is_cached"] is True
    assert states["hit"] and states["miss"]


def test_failing_insight_in_list_fails_only_when_it_calculates(client: httpx.Client, emu: Emulator) -> None:
    failing = [i for i in emu.store.insight_ids(1) if emu.store.insight(1, i)["_emulator"]["fails"]]
    assert failing, "error_share gives some broken insights"
    target = emu.store.insight(1, failing[0])
    items = client.get(LIST, params={"order": "id", "limit": 1000}).json()["results"]
    item = next(i for i in items if i["id"] == target["id"])
    # force_cache calculates nothing, so nothing fails: a broken insight that never had a result is a miss.
    assert item["result"] is None and item["query_status"] is None
    page = {"short_id": target["short_id"], "refresh": "blocking"}
    answered = client.get(LIST, params={**page, "client_query_id": "page-1"})
    assert answered.status_code == 200
    status = answered.json()["results"][0]["query_status"]
    assert status["error"] is True and status["error_message"] == target["_emulator"]["fails"]
    assert status["id"] == "page-1"
    broken = client.get(LIST, params=page)  # no client_query_id: the whole page is a 500
    assert broken.status_code == 500 and broken.json()["type"] == "server_error"


def test_soft_deleted_insights_leave_the_list(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator()
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        before = http.get(LIST, params={"limit": 1000}).json()["count"]
        victim = emulator.store.insight_ids(1)[5]
        emulator.store.soft_delete(1, victim)
        after = http.get(LIST, params={"limit": 1000, "order": "id"}).json()
        assert after["count"] == before - 1
        assert victim not in {item["id"] for item in after["results"]}
        assert http.get(f"{LIST}{victim}/").status_code == 404


def test_bad_limit_and_offset_fall_back_like_drf(client: httpx.Client) -> None:
    body = client.get(LIST, params={"limit": "zero", "offset": "-3", "order": "id", "basic": "1"}).json()
    assert len(body["results"]) == 100 and body["previous"] is None
    body = client.get(LIST, params={"limit": 0, "order": "id", "basic": "1"}).json()
    assert len(body["results"]) == 100
    body = client.get(LIST, params={"offset": 340, "order": "id", "basic": "1"}).json()
    assert len(body["results"]) == 10 and body["next"] is None
