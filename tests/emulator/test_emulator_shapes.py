"""Result shapes of every insight kind, and conformance with PostHog's real payloads (tests/fixtures).

Conformance: for each fixture, an emulator insight of the same kind and display has result elements
with exactly the fixture's keys (minus the legacy-only ones docs/posthog-api.md lists) and the same
JSON types, and its retrieve response has every top-level key the fixture has.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "posthog"
DETAIL = "/api/projects/1/insights/{}/"
# Keys only legacy (pre-HogQL) payloads carry; docs/posthog-api.md: "Legacy payloads also carry persons_urls,
# people_url, filter; current ones don't" (plus the person lists and funnel people URLs).
LEGACY_KEYS = {
    "persons_urls",
    "people_url",
    "filter",
    "people",
    "persons",
    "converted_people_url",
    "dropped_people_url",
}
# Top-level keys of old GET-insight payloads that today's serializer no longer writes (or only with
# from_dashboard: color, layouts).
LEGACY_TOP_KEYS = {"dashboard", "layouts", "color", "refreshing"}
RESULT_KEYS = {
    "result",
    "hasMore",
    "columns",
    "types",
    "hogql",
    "last_refresh",
    "cache_target_age",
    "next_allowed_client_refresh",
    "is_cached",
    "timezone",
    "query_status",
    "resolved_date_range",
    "filters_hash",
}
# fixture file -> (kind, variant) of the emulator insight it is compared with
CONFORMANCE = {
    "trendsLine.json": ("TRENDS", "line"),
    "trendsNumber.json": ("TRENDS", "number"),
    "stickiness.json": ("STICKINESS", "series"),
    "funnelLeftToRight.json": ("FUNNELS", "steps"),
    "funnelHistoricalTrends.json": ("FUNNELS", "trends"),
    "retention.json": ("RETENTION", "cohorts"),
    "userPaths.json": ("PATHS", "links"),
    "dataTableHogQL.json": ("SQL", "table"),
    "sqlLineChart.json": ("SQL", "viz"),
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def key_types(elements: list[dict[str, Any]]) -> dict[str, set[str]]:
    types: dict[str, set[str]] = {}
    for element in elements:
        for key, value in element.items():
            if key not in LEGACY_KEYS:
                types.setdefault(key, set()).add(json_type(value))
    return types


def plain(emu: Emulator, kind: str, variant: str) -> int:
    """A healthy daily insight of kind/variant over a relative range ("line" and "steps" are never
    broken down); paths and the JSON sources have no interval."""
    interval = None if kind in ("PATHS", "JSON") else "day"
    for insight_id in emu.store.find(1, kind, variant, interval=interval, fixed_range=False):
        if emu.store.insight(1, insight_id)["_emulator"]["fails"] is None:
            return insight_id
    raise LookupError((kind, variant))


def computed(client: httpx.Client, emu: Emulator, kind: str, variant: str) -> dict[str, Any]:
    response = client.get(DETAIL.format(plain(emu, kind, variant)), params={"refresh": "blocking"})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["result"] is not None
    return body


@pytest.mark.parametrize("fixture", sorted(CONFORMANCE))
def test_result_elements_conform_to_real_payloads(client: httpx.Client, emu: Emulator, fixture: str) -> None:
    real = json.loads((FIXTURES / fixture).read_text())
    kind, variant = CONFORMANCE[fixture]
    ours = computed(client, emu, kind, variant)
    assert (set(real) & RESULT_KEYS) <= set(ours), "the retrieve lacks a result field the real one has"
    assert (set(real) - LEGACY_TOP_KEYS) <= set(ours), "the retrieve lacks a top-level key"
    if kind == "SQL":
        assert all(isinstance(row, list) for row in ours["result"])
        assert all(len(row) == len(ours["columns"]) for row in ours["result"])
        assert [name for name, _ in ours["types"]] == ours["columns"]
        if "types" in real:
            assert all(isinstance(pair, list) and len(pair) == 2 for pair in real["types"] + ours["types"])
        return
    real_types = key_types(real["result"])
    our_types = key_types(ours["result"])
    assert set(our_types) == set(real_types)
    for key, types in our_types.items():
        allowed = real_types[key] | ({"number", "null"} if real_types[key] & {"number", "null"} else set())
        assert types <= allowed, (key, types, real_types[key])
    first_real, first_ours = real["result"][0], ours["result"][0]
    if "action" in first_real:
        assert set(first_ours["action"]) == set(first_real["action"])
    if kind == "RETENTION":
        real_values = {k for v in first_real["values"] for k in v} - LEGACY_KEYS
        our_values = {k for v in first_ours["values"] for k in v}
        assert (
            real_values <= our_values <= real_values | {"label"}
        )  # docs/posthog-api.md: values [{count, label?}]


def test_top_level_keys_match_the_current_serializer(client: httpx.Client, emu: Emulator) -> None:
    newest = json.loads((FIXTURES / "sqlLineChart.json").read_text())  # captured from PostHog in 2026
    ours = computed(client, emu, "SQL", "viz")
    assert set(ours) == set(newest)
    for key in newest:
        if newest[key] is not None and ours[key] is not None:
            assert json_type(ours[key]) == json_type(newest[key]), key


def test_trends_line_series(client: httpx.Client, emu: Emulator) -> None:
    series = computed(client, emu, "TRENDS", "line")["result"][0]
    n = emu.config.points
    assert len(series["data"]) == len(series["days"]) == len(series["labels"]) == n
    assert series["count"] == sum(series["data"])
    assert series["days"][0][4] == "-" and len(series["days"][0]) == 10  # ISO dates
    assert series["label"] and series["action"]["id"]


def test_trends_breakdown_and_compare(client: httpx.Client, emu: Emulator) -> None:
    breakdown = computed(client, emu, "TRENDS", "breakdown")["result"]
    assert len(breakdown) >= 2 and all("breakdown_value" in s for s in breakdown)
    assert len({s["breakdown_value"] for s in breakdown}) == len(breakdown)
    compare = computed(client, emu, "TRENDS", "compare")["result"]
    assert [s["compare_label"] for s in compare] == ["current", "previous"]
    assert compare[1]["days"][-1] < compare[0]["days"][0]


def test_trends_number_display(client: httpx.Client, emu: Emulator) -> None:
    series = computed(client, emu, "TRENDS", "number")["result"][0]
    assert isinstance(series["aggregated_value"], int) and series["data"] == []


def test_stickiness_days_are_integers(client: httpx.Client, emu: Emulator) -> None:
    series = computed(client, emu, "STICKINESS", "series")["result"][0]
    assert series["days"] == list(range(1, len(series["days"]) + 1))
    assert series["labels"][0] == "1 day" and series["labels"][1] == "2 days"


def test_lifecycle_statuses(client: httpx.Client, emu: Emulator) -> None:
    result = computed(client, emu, "LIFECYCLE", "series")["result"]
    assert {s["status"] for s in result} == {"new", "returning", "resurrecting", "dormant"}
    dormant = next(s for s in result if s["status"] == "dormant")
    assert all(value <= 0 for value in dormant["data"]) and any(value < 0 for value in dormant["data"])


def test_funnel_steps_breakdown_time_to_convert_and_trends(client: httpx.Client, emu: Emulator) -> None:
    steps = computed(client, emu, "FUNNELS", "steps")["result"]
    assert [step["order"] for step in steps] == list(range(len(steps)))
    assert steps[0]["average_conversion_time"] is None and steps[-1]["average_conversion_time"] > 0
    assert all(a["count"] >= b["count"] for a, b in itertools.pairwise(steps))
    broken_down = computed(client, emu, "FUNNELS", "breakdown")["result"]
    assert isinstance(broken_down[0], list) and len(broken_down) >= 2
    assert all(
        step["breakdown_value"] == steps_[0]["breakdown_value"] for steps_ in broken_down for step in steps_
    )
    assert all("breakdown" in step for steps_ in broken_down for step in steps_)
    ttc = computed(client, emu, "FUNNELS", "time_to_convert")["result"]
    assert set(ttc) == {"bins", "average_conversion_time"}
    assert all(len(pair) == 2 for pair in ttc["bins"])
    trends = computed(client, emu, "FUNNELS", "trends")["result"]
    assert set(trends[0]) == {"count", "data", "days", "labels"}


def test_retention_cohorts_shrink(client: httpx.Client, emu: Emulator) -> None:
    cohorts = computed(client, emu, "RETENTION", "cohorts")["result"]
    lengths = [len(cohort["values"]) for cohort in cohorts]
    assert lengths == sorted(lengths, reverse=True) and lengths[-1] == 1
    assert cohorts[0]["date"].endswith("T00:00:00Z") and cohorts[0]["label"] == "Day 0"
    broken_down = computed(client, emu, "RETENTION", "breakdown")["result"]
    assert all("breakdown_value" in cohort for cohort in broken_down)


def test_paths_have_step_prefixes(client: httpx.Client, emu: Emulator) -> None:
    links = computed(client, emu, "PATHS", "links")["result"]
    for link in links:
        source_step = int(link["source"].split("_", 1)[0])
        target_step = int(link["target"].split("_", 1)[0])
        assert target_step == source_step + 1
        assert link["source"].split("_", 1)[1].startswith("/")


def test_sql_insights(client: httpx.Client, emu: Emulator) -> None:
    viz = computed(client, emu, "SQL", "viz")
    assert viz["columns"] and viz["hogql"].startswith("SELECT") and viz["hasMore"] is False
    assert len(viz["result"]) == emu.config.points
    table = computed(client, emu, "SQL", "table")
    assert table["query"]["kind"] == "DataTableNode" and table["types"][0] == ["event", "String"]


def test_legacy_insights_have_filters_and_a_derived_query(client: httpx.Client, emu: Emulator) -> None:
    items = client.get("/api/projects/1/insights/", params={"limit": 1000, "basic": "true"}).json()["results"]
    legacy = [item for item in items if item["filters"].get("insight")]
    assert legacy, "the seed stores a few insights as legacy filters"
    for item in legacy:
        assert item["query"]["kind"] == "InsightVizNode"
        assert item["query"]["source"]["kind"].upper().startswith(item["filters"]["insight"][:5])
    body = client.get(DETAIL.format(legacy[0]["id"]), params={"refresh": "blocking"}).json()
    assert body["result"] is not None or body["query_status"]["error"]


# The less common result kinds the seed adds (a few percent of the project).
OTHER_VARIANTS = {"TRENDS": ("calendar_heatmap", "boxplot"), "RETENTION": ("sampled",)}


def test_kinds_are_roughly_even(emu: Emulator) -> None:
    counts = {}
    for kind in ("TRENDS", "FUNNELS", "RETENTION", "PATHS", "STICKINESS", "LIFECYCLE", "SQL"):
        others = sum(len(emu.store.find(1, kind, variant)) for variant in OTHER_VARIANTS.get(kind, ()))
        counts[kind] = len(emu.store.find(1, kind)) - others
    assert max(counts.values()) - min(counts.values()) <= 3
    others = len(emu.store.find(1, "JSON")) + sum(
        len(emu.store.find(1, kind, variant))
        for kind, variants in OTHER_VARIANTS.items()
        for variant in variants
    )
    assert 0 < others <= 0.06 * len(emu.store.insight_ids(1))


def test_thousands_of_points(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(points=3000, insights=14)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        insight_id = emulator.store.find(1, "TRENDS")[0]
        series = http.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()["result"][0]
        assert len(series["days"]) == 3000 or "aggregated_value" in series
