"""Retrieve: every row of the doc's refresh table, refresh parsing, the response fields, the cache
model, dashboards and override windows, and calculation failures.

The pool hands out daily insights over relative ranges: the doc's staleness table gives them 6 h
(default) and 12 h (lazy) thresholds."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator, EmulatorConfig

DETAIL = "/api/projects/1/insights/{}/"
RESULT_FIELDS = {
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
MISS_NULLS = (
    "result",
    "last_refresh",
    "hasMore",
    "columns",
    "cache_target_age",
    "next_allowed_client_refresh",
)


# docs/posthog-api.md, Staleness: the `day` column.
DAY_THRESHOLD_S = 6 * 3600.0
LAZY_DAY_THRESHOLD_S = 12 * 3600.0


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


# The doc's table. Outcomes: cached (fresh result, no work), stale (stale result, no work),
# stale+job (stale result and a background job), computed (synchronous calculation),
# null (cache miss, no work), null+job (result null and a background job).
REFRESH_TABLE: dict[str, dict[str, str]] = {
    "force_cache": {"fresh": "cached", "stale": "stale", "very_stale": "stale", "missing": "null"},
    "blocking": {"fresh": "cached", "stale": "computed", "very_stale": "computed", "missing": "computed"},
    "async": {"fresh": "cached", "stale": "stale+job", "very_stale": "stale+job", "missing": "null+job"},
    # In the documented enum but not in the insights endpoints' parser: it means force_cache there.
    "async_except_on_cache_miss": {
        "fresh": "cached",
        "stale": "stale",
        "very_stale": "stale",
        "missing": "null",
    },
    "lazy_async": {"fresh": "cached", "stale": "stale", "very_stale": "stale+job", "missing": "null+job"},
    "force_blocking": {
        "fresh": "computed",
        "stale": "computed",
        "very_stale": "computed",
        "missing": "computed",
    },
    "force_async": {
        "fresh": "null+job",
        "stale": "null+job",
        "very_stale": "null+job",
        "missing": "null+job",
    },
}
CASES = [(mode, state, outcome) for mode, row in REFRESH_TABLE.items() for state, outcome in row.items()]


@pytest.mark.parametrize(("mode", "state", "outcome"), CASES)
def test_refresh_table(
    client: httpx.Client, emu: Emulator, pool: Any, mode: str, state: str, outcome: str
) -> None:
    insight_id = pool.take("TRENDS")
    emu.store.set_cache_state(1, insight_id, state)
    before = emu.store.insight(1, insight_id)
    emu.reset_stats()
    response = client.get(DETAIL.format(insight_id), params={"refresh": mode})
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= RESULT_FIELDS
    now = emu.store.now()
    computes = emu.stats.kind("compute")
    status = body["query_status"]
    if outcome == "cached":
        assert body["is_cached"] is True and body["result"] is not None
        assert body["last_refresh"] == before["last_refresh"] and status is None
        assert ts(body["cache_target_age"]) > now and computes == 0
    elif outcome in ("stale", "stale+job"):
        assert body["is_cached"] is True and body["result"] == before["result"]
        assert body["last_refresh"] == before["last_refresh"] and ts(body["cache_target_age"]) <= now
        assert computes == 0
        if outcome == "stale":
            assert status is None
        else:
            assert status["complete"] is False and status["query_async"] is True and status["id"]
    elif outcome == "computed":
        assert body["is_cached"] is False and body["result"] is not None and status is None
        assert abs(ts(body["last_refresh"]) - now) < 5
        assert abs(ts(body["cache_target_age"]) - ts(body["last_refresh"]) - DAY_THRESHOLD_S) < 0.01
        assert abs(ts(body["next_allowed_client_refresh"]) - ts(body["last_refresh"]) - 60) < 0.01
        assert computes == 1
        assert body["result"] != before["result"]  # a recompute changes the numbers
    else:
        for name in MISS_NULLS:
            assert body[name] is None, name
        assert body["is_cached"] is False and computes == 0
        if outcome == "null":
            assert status is None
        else:
            assert status["complete"] is False and status["query_async"] is True
            assert status["insight_id"] == insight_id and status["team_id"] == 1


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, "force_cache"),
        ("false", "force_cache"),
        ("0", "force_cache"),
        ("bogus", "force_cache"),
        ("true", "force_blocking"),
        ("1", "force_blocking"),
        ("yes", "force_blocking"),
        ("", "force_blocking"),
        ("blocking", "blocking"),
    ],
)
def test_refresh_parsing(
    client: httpx.Client, emu: Emulator, pool: Any, value: str | None, mode: str
) -> None:
    insight_id = pool.take("FUNNELS")
    emu.store.set_cache_state(1, insight_id, "fresh")
    emu.reset_stats()
    params = {} if value is None else {"refresh": value}
    body = client.get(DETAIL.format(insight_id), params=params).json()
    assert emu.stats.kind("compute") == (1 if mode == "force_blocking" else 0)
    assert body["is_cached"] is (mode != "force_blocking")


def test_retrieve_by_short_id(client: httpx.Client, emu: Emulator) -> None:
    by_id = client.get(DETAIL.format(10)).json()
    by_short = client.get(DETAIL.format(by_id["short_id"])).json()
    assert by_short["id"] == 10 and by_short["result"] == by_id["result"]
    assert client.get(DETAIL.format("NoSuchId")).status_code == 404
    assert client.get(DETAIL.format(999999)).status_code == 404


def test_cache_miss_has_nulls_then_compute_then_hits(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("RETENTION")
    emu.store.set_cache_state(1, insight_id, "missing")
    miss = client.get(DETAIL.format(insight_id)).json()
    for name in MISS_NULLS:
        assert miss[name] is None
    assert miss["is_cached"] is False
    computed = client.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()
    assert computed["is_cached"] is False and computed["result"]
    assert computed["timezone"] == "UTC" and computed["resolved_date_range"]["date_from"]
    hit = client.get(DETAIL.format(insight_id)).json()
    assert hit["is_cached"] is True and hit["result"] == computed["result"]
    assert hit["last_refresh"] == computed["last_refresh"]
    hit_blocking = client.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()
    assert hit_blocking["is_cached"] is True


def test_freshness_follows_the_clock(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator()  # its own clock: the module's emulator keeps its seeded states
    insight_id = emulator.store.find(1, "TRENDS", "line", interval="day", fixed_range=False)[0]
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        first = http.get(DETAIL.format(insight_id), params={"refresh": "force_blocking"}).json()
        emulator.advance_clock(DAY_THRESHOLD_S - 60)
        assert http.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()["is_cached"] is True
        emulator.advance_clock(120)
        again = http.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()
        assert again["is_cached"] is False and again["last_refresh"] != first["last_refresh"]
        assert again["result"] != first["result"]


def test_same_seed_same_numbers_across_emulators(auth: dict[str, str]) -> None:
    clock_time = 1_750_000_000.0
    config = EmulatorConfig(api_key=auth["Authorization"].split()[1], insights=40, seed=11)
    results = []
    for _ in range(2):
        emulator = Emulator(config, clock=lambda: clock_time)
        emulator.start()
        try:
            with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
                results.append(http.get("/api/projects/1/insights/", params={"order": "id"}).json())
        finally:
            emulator.stop()
    assert results[0] == results[1]


def test_from_dashboard_applies_dashboard_and_is_ignored_off_dashboard(
    client: httpx.Client, emu: Emulator
) -> None:
    on_dashboard = next(
        i
        for i in emu.store.insight_ids(1)
        if emu.store.insight(1, i)["dashboards"]
        and emu.store.insight(1, i)["_emulator"]["fails"] is None
        and emu.store.insight(1, i)["_emulator"]["kind"] == "TRENDS"
    )
    dashboard = emu.store.insight(1, on_dashboard)["dashboards"][0]
    plain = client.get(DETAIL.format(on_dashboard), params={"refresh": "force_blocking"}).json()
    first = client.get(
        DETAIL.format(on_dashboard), params={"from_dashboard": dashboard, "refresh": "blocking"}
    ).json()
    again = client.get(DETAIL.format(on_dashboard), params={"from_dashboard": dashboard}).json()
    assert first["result"] != plain["result"]
    assert again["result"] == first["result"] and again["is_cached"] is True
    assert first["filters_hash"] != plain["filters_hash"]
    other = next(
        d for d in emu.store.dashboard_ids(1) if d not in emu.store.insight(1, on_dashboard)["dashboards"]
    )
    off = client.get(DETAIL.format(on_dashboard), params={"from_dashboard": other})
    assert off.status_code == 200 and off.json()["filters_hash"] == plain["filters_hash"]
    bad = client.get(DETAIL.format(on_dashboard), params={"from_dashboard": "abc"})
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error"


def test_filters_override_windows_are_independent_caches(
    client: httpx.Client, emu: Emulator, pool: Any
) -> None:
    insight_id = pool.take("TRENDS", "line")
    windows = [
        {"date_from": "2024-01-01", "date_to": "2024-01-31"},
        {"date_from": "2024-02-01", "date_to": "2024-02-29"},
    ]
    computed = []
    for window in windows:
        override = json.dumps(window)
        body = client.get(
            DETAIL.format(insight_id), params={"filters_override": override, "refresh": "blocking"}
        ).json()
        assert body["is_cached"] is False
        series = body["result"][0]
        assert series["days"][0] == window["date_from"] and series["days"][-1] == window["date_to"]
        assert body["resolved_date_range"]["date_from"].startswith(window["date_from"])
        assert body["query"]["source"]["dateRange"]["date_from"] == window["date_from"]
        computed.append(body)
    assert computed[0]["result"] != computed[1]["result"]
    assert computed[0]["filters_hash"] != computed[1]["filters_hash"]
    for window, earlier in zip(windows, computed, strict=True):
        override = json.dumps(window)
        again = client.get(DETAIL.format(insight_id), params={"filters_override": override}).json()
        assert again["is_cached"] is True and again["result"] == earlier["result"]
    plain = client.get(DETAIL.format(insight_id), params={"refresh": "force_cache"}).json()
    assert plain["filters_hash"] not in {c["filters_hash"] for c in computed}
    bad = client.get(DETAIL.format(insight_id), params={"filters_override": "{nope"})
    assert bad.status_code == 400 and bad.json()["type"] == "validation_error"


def test_variables_override_is_accepted(client: httpx.Client, pool: Any) -> None:
    insight_id = pool.take("SQL")
    response = client.get(
        DETAIL.format(insight_id),
        params={"variables_override": '{"abc": {"code_name": "x", "value": 1}}', "refresh": "blocking"},
    )
    assert response.status_code == 200 and response.json()["result"] is not None


def test_calculation_failure_is_200_with_error_status(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("PATHS")
    emu.store.set_cache_state(1, insight_id, "stale")
    emu.store.set_fails(1, insight_id, "Query exceeds memory limits.")
    cached = client.get(DETAIL.format(insight_id)).json()
    assert cached["result"] is not None and cached["query_status"] is None  # force_cache calculates nothing
    for mode in ("blocking", "force_blocking"):
        response = client.get(DETAIL.format(insight_id), params={"refresh": mode, "client_query_id": "q-1"})
        assert response.status_code == 200
        body = response.json()
        assert body["result"] is None and body["is_cached"] is False and body["last_refresh"] is None
        assert body["timezone"] == "UTC" and body["filters_hash"] is None
        status = body["query_status"]
        assert status["id"] == "q-1" and status["error"] is True and status["complete"] is False
        assert status["error_message"] == "Query exceeds memory limits."
        assert status["insight_id"] == insight_id and status["team_id"] == 1
    assert client.get(DETAIL.format(insight_id)).json()["result"] == cached["result"]  # nothing cached
    emu.store.set_fails(1, insight_id, None)
    assert client.get(DETAIL.format(insight_id), params={"refresh": "blocking"}).json()["result"] is not None


def test_calculation_failure_without_client_query_id_is_500(
    client: httpx.Client, emu: Emulator, pool: Any
) -> None:
    """QueryStatus.id is a required string: the serializer cannot build the error answer."""
    insight_id = pool.take("FUNNELS")
    emu.store.set_cache_state(1, insight_id, "missing")
    emu.store.set_fails(1, insight_id, "Query exceeds memory limits.")
    emu.reset_stats()
    response = client.get(DETAIL.format(insight_id), params={"refresh": "blocking"})
    assert response.status_code == 500
    assert response.json() == {
        "type": "server_error",
        "code": "error",
        "detail": "A server error occurred.",
        "attr": None,
    }
    assert emu.stats.calculation_errors == 1 and emu.stats.calculations == 0


def test_seeded_failures_are_calculation_errors(emu: Emulator) -> None:
    """The seed's broken insights fail when they calculate; the concurrency limit is not theirs."""
    messages = [
        emu.store.insight(project, i)["_emulator"]["fails"]
        for project in (1, 2)
        for i in emu.store.insight_ids(project)
    ]
    failing = [m for m in messages if m]
    assert failing and len(failing) < len(messages) / 5
    assert not any(m.startswith("concurrency_limit_exceeded") for m in failing)


def test_query_validation_error_is_400(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("SQL")
    emu.store.set_fails(1, insight_id, "Unable to resolve field: nosuchcolumn", validation=True)
    response = client.get(DETAIL.format(insight_id), params={"refresh": "force_blocking"})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and "nosuchcolumn" in body["detail"]
    assert set(body) == {"type", "code", "detail", "attr"}


def test_seeded_cache_states_follow_the_shares(emu: Emulator) -> None:
    states = [emu.store.insight(1, i)["_emulator"]["cache_state"] for i in emu.store.insight_ids(1)]
    fresh = states.count("fresh") / len(states)
    stale = (states.count("stale") + states.count("very_stale")) / len(states)
    assert 0.35 < fresh < 0.65 and 0.12 < stale < 0.38
    assert states.count("missing") > 30
