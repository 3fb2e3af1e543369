"""Tidy-table builders: real PostHog payloads checked value by value, current shapes, garbage, schemas."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pyarrow as pa
import pytest

from posthog_insights.shapes import (
    TIDY_PRIMARY_KEYS,
    TIDY_SCHEMAS,
    ShapeOutcome,
    SnapshotRef,
    TidyRows,
    insight_kind,
)

FIXTURES = Path(__file__).parent / "fixtures" / "posthog"
SYNTHETIC = Path(__file__).parent / "fixtures" / "synthetic"
SNAPSHOT = datetime(2024, 5, 1, 12, 34, 56, 789012, tzinfo=timezone.utc)
TABLES = (
    "trend_points",
    "funnel_steps",
    "funnel_conversion_bins",
    "retention_cells",
    "path_edges",
    "sql_rows",
)


def load(name: str, folder: Path = FIXTURES) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((folder / f"{name}.json").read_text())
    return payload


def synthetic(name: str) -> dict[str, Any]:
    return load(name, SYNTHETIC)


def ref(insight_id: int = 7, variant: str = "", project_id: int = 3) -> SnapshotRef:
    return SnapshotRef(project_id=project_id, insight_id=insight_id, snapshot=SNAPSHOT, variant=variant)


def build(
    payload: Mapping[str, Any], insight: Mapping[str, Any] | None = None
) -> tuple[ShapeOutcome, dict[str, list[dict[str, Any]]]]:
    """Add one insight to a fresh TidyRows; return the outcome and each table's rows as dicts."""
    tidy = TidyRows()
    outcome = tidy.add(ref(), payload if insight is None else insight, payload)
    assert tidy.row_count() == outcome.rows
    tables = tidy.take()
    assert sum(t.num_rows for t in tables.values()) == outcome.rows
    for name, table in tables.items():
        assert table.schema == TIDY_SCHEMAS[name]
    return outcome, {name: table.to_pylist() for name, table in tables.items()}


def viz(source_kind: str, result: Any, **source: Any) -> dict[str, Any]:
    """A current-shape insight: InsightVizNode wrapping `source_kind`, with its result."""
    return {
        "filters": {},
        "query": {"kind": "InsightVizNode", "source": {"kind": source_kind, **source}},
        "result": result,
    }


def iso(value: str) -> datetime:
    """Independent ISO parser for expectations: no offset means UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def assert_snapshot_columns(row: Mapping[str, Any], kind: str, variant: str = "") -> None:
    assert row["project_id"] == 3
    assert row["insight_id"] == 7
    assert row["snapshot"] == SNAPSHOT
    assert row["last_refresh"] == SNAPSHOT
    assert row["variant"] == variant
    assert row["kind"] == kind


def by_key(rows: list[dict[str, Any]], *key: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    keyed = {tuple(row[k] for k in key): row for row in rows}
    assert len(keyed) == len(rows), "primary key not unique"
    return keyed


# --- real payloads -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("dataTableHogQL", "sql"),
        ("funnelHistoricalTrends", "funnels"),
        ("funnelLeftToRight", "funnels"),
        ("funnelLeftToRightCompare", "funnels"),
        ("funnelTimeToConvertCompare", "funnels"),
        ("retention", "retention"),
        ("sqlLineChart", "sql"),
        ("stickiness", "stickiness"),
        ("trendsLine", "trends"),
        ("trendsNumber", "trends"),
        ("userPaths", "paths"),
    ],
)
def test_fixture_kind(name: str, kind: str) -> None:
    assert insight_kind(load(name)) == kind


def test_every_fixture_is_recognised() -> None:
    names = sorted(p.stem for p in FIXTURES.glob("*.json"))
    assert len(names) == 11
    for name in names:
        outcome, _ = build(load(name))
        assert outcome.recognised, (name, outcome)
        assert outcome.rows > 0, name


def test_trends_line_fixture() -> None:
    payload = load("trendsLine")
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=8, recognised=True, shape="trends")
    assert list(tables) == ["trend_points"]
    points = by_key(tables["trend_points"], "series_index", "point_index")
    expected = {
        (s, p): (series, value)
        for s, series in enumerate(payload["result"])
        for p, value in enumerate(series["data"])
    }
    assert set(points) == set(expected)
    for (s, p), (series, value) in expected.items():
        row = points[s, p]
        assert_snapshot_columns(row, "trends")
        assert row["value"] == value
        assert row["day"] == series["days"][p]
        assert row["date"] == iso(series["days"][p])
        assert row["label"] == series["labels"][p]
        assert row["series_label"] == series["label"]
        assert row["action_id"] == series["action"]["id"]
        assert row["action_name"] == series["action"]["name"]
        assert row["math"] is None
        assert row["series_count"] == series["count"]
        assert row["interval"] is None
        assert row["breakdown_value"] is None
        assert row["is_aggregate"] is False
    # spot values, written out
    assert points[0, 3]["value"] == 15625.0
    assert points[0, 3]["day"] == "2022-03-07"
    assert points[0, 3]["date"] == datetime(2022, 3, 7, tzinfo=timezone.utc)
    assert points[0, 7]["label"] == "11-Mar-2022"


def test_trends_number_fixture_is_one_aggregate_row() -> None:
    payload = load("trendsNumber")
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=1, recognised=True, shape="trends_aggregate")
    [row] = tables["trend_points"]
    series = payload["result"][0]
    assert row["value"] == series["aggregated_value"] == 3141592
    assert row["aggregated_value"] == series["aggregated_value"]
    assert row["is_aggregate"] is True
    assert (row["series_index"], row["point_index"]) == (0, 0)
    assert row["day"] is None and row["date"] is None and row["label"] is None
    assert row["series_label"] == "signed_up"
    assert row["action_id"] == "signed_up"


def test_stickiness_fixture_has_integer_intervals() -> None:
    payload = load("stickiness")
    outcome, tables = build(payload)
    assert outcome.recognised and outcome.shape == "trends"
    points = by_key(tables["trend_points"], "series_index", "point_index")
    n = 0
    for s, series in enumerate(payload["result"]):
        for p, value in enumerate(series["data"]):
            row = points[s, p]
            assert_snapshot_columns(row, "stickiness")
            assert row["value"] == value
            assert row["interval"] == series["days"][p]
            assert row["day"] == str(series["days"][p])
            assert row["date"] is None
            assert row["label"] == series["labels"][p]
            n += 1
    assert n == outcome.rows == len(points)
    assert points[0, 1]["value"] == 57
    assert points[0, 1]["interval"] == 2
    assert points[0, 1]["label"] == "2 days"


def test_funnel_historical_trends_fixture() -> None:
    payload = load("funnelHistoricalTrends")
    outcome, tables = build(payload)
    assert outcome.recognised and outcome.shape == "funnel_trends"
    points = by_key(tables["trend_points"], "series_index", "point_index")
    assert len(points) == sum(len(series["data"]) for series in payload["result"])
    for s, series in enumerate(payload["result"]):
        for p, value in enumerate(series["data"]):
            row = points[s, p]
            assert_snapshot_columns(row, "funnels")
            assert row["value"] == value
            assert row["day"] == series["days"][p]
            assert row["date"] == iso(series["days"][p])
            assert row["label"] == series["labels"][p]
            assert row["series_count"] == series["count"]
    assert points[0, 2]["value"] == 16.66


def test_funnel_steps_fixture() -> None:
    payload = load("funnelLeftToRight")
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=3, recognised=True, shape="funnel_steps")
    steps = by_key(tables["funnel_steps"], "breakdown_index", "step_order")
    for step in payload["result"]:
        row = steps[0, step["order"]]
        assert_snapshot_columns(row, "funnels")
        assert row["count"] == step["count"]
        assert row["name"] == step["name"]
        assert row["custom_name"] == step["custom_name"]
        assert row["action_id"] == step["action_id"]
        assert row["step_type"] == step["type"]
        assert row["average_conversion_time"] == step["average_conversion_time"]
        assert row["median_conversion_time"] == step["median_conversion_time"]
        assert row["breakdown_value"] is None
    assert [steps[0, order]["count"] for order in range(3)] == [20166, 8438, 2864]


def test_retention_fixture() -> None:
    payload = load("retention")
    outcome, tables = build(payload)
    assert outcome.recognised and outcome.shape == "retention"
    cells = by_key(tables["retention_cells"], "cohort_index", "period_index")
    expected = {
        (c, p): (cohort, value)
        for c, cohort in enumerate(payload["result"])
        for p, value in enumerate(cohort["values"])
    }
    assert set(cells) == set(expected)
    assert outcome.rows == len(expected) == 60
    for (c, p), (cohort, value) in expected.items():
        row = cells[c, p]
        assert_snapshot_columns(row, "retention")
        assert row["count"] == value["count"]
        assert row["cohort_date"] == iso(cohort["date"])
        assert row["cohort_label"] == cohort["label"]
        assert row["period_label"] is None
        assert row["breakdown_value"] is None
    # newer cohorts have fewer values
    assert max(p for c, p in cells if c == 10) == 0
    assert cells[4, 1]["count"] == 5001
    assert cells[4, 1]["cohort_date"] == datetime(2022, 3, 5, tzinfo=timezone.utc)


def test_paths_fixture() -> None:
    payload = load("userPaths")
    outcome, tables = build(payload)
    assert outcome.recognised and outcome.shape == "paths"
    edges = by_key(tables["path_edges"], "source", "target")
    assert len(edges) == len(payload["result"]) == 49
    for index, link in enumerate(payload["result"]):
        row = edges[link["source"], link["target"]]
        assert_snapshot_columns(row, "paths")
        assert row["edge_index"] == index
        assert row["value"] == link["value"]
        assert row["average_conversion_time"] == link["average_conversion_time"]
        source_step, source_name = link["source"].split("_", 1)
        target_step, target_name = link["target"].split("_", 1)
        assert (row["source_step"], row["source_name"]) == (int(source_step), source_name)
        assert (row["target_step"], row["target_name"]) == (int(target_step), target_name)
    first = edges["1_http://amazingstore.com", "2_http://amazingstore.com/product"]
    assert first["value"] == 3705
    assert first["source_name"] == "http://amazingstore.com"


@pytest.mark.parametrize("name", ["dataTableHogQL", "sqlLineChart"])
def test_sql_fixtures(name: str) -> None:
    payload = load(name)
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=len(payload["result"]), recognised=True, shape="sql")
    rows = by_key(tables["sql_rows"], "row_index")
    for index, values in enumerate(payload["result"]):
        row = rows[(index,)]
        assert_snapshot_columns(row, "sql")
        decoded = json.loads(row["row"])
        assert decoded == dict(zip(payload["columns"], values, strict=True))
        assert list(decoded) == payload["columns"]  # column order kept
        expected = dict(zip(payload["columns"], values, strict=True))
        assert row["row"] == json.dumps(expected, separators=(",", ":"), ensure_ascii=False)  # compact


def test_sql_fixture_keeps_json_types() -> None:
    _, tables = build(load("sqlLineChart"))
    first = json.loads(tables["sql_rows"][0]["row"])
    assert first["month"] == "2025-10-01"
    assert first["s0"] == 152 and isinstance(first["s0"], int)
    assert first["s5"] is None
    _, tables = build(load("dataTableHogQL"))
    assert tables["sql_rows"][0]["row"] == (
        '{"event":"$autocapture","person.properties.email":"test@posthog.com",'
        '"properties.$browser":"Chrome","count()":324}'
    )


# --- current shapes ------------------------------------------------------------------------------------


def test_trends_breakdown_and_compare() -> None:
    days_now = ["2024-01-08", "2024-01-09", "2024-01-10"]
    days_before = ["2024-01-01", "2024-01-02", "2024-01-03"]
    result: list[dict[str, Any]] = [
        {
            "action": {"id": 12, "name": "Signed up", "math": "dau", "order": 0},
            "label": "Signed up",
            "count": 6,
            "data": [1, 2, 3],
            "days": days_now,
            "labels": ["8-Jan", "9-Jan", "10-Jan"],
            "breakdown_value": "Chrome",
            "compare": True,
            "compare_label": "current",
        },
        {
            "action": {"id": 12, "name": "Signed up", "math": "dau", "order": 0},
            "label": "Signed up",
            "count": 1.5,
            "data": [0.5, 0, 1],
            "days": days_before,
            "labels": ["1-Jan", "2-Jan", "3-Jan"],
            "breakdown_value": ["Safari", 17],
            "compare": True,
            "compare_label": "previous",
        },
        {
            "action": {"id": "$pageview", "name": "$pageview"},
            "label": "$pageview",
            "count": 4,
            "data": [4, 0, 0],
            "days": days_now,
            "labels": ["8-Jan", "9-Jan", "10-Jan"],
            "breakdown_value": 42,
            "aggregated_value": 4,
        },
    ]
    payload = viz("TrendsQuery", result, breakdownFilter={"breakdown": "$browser"})
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=9, recognised=True, shape="trends")
    points = by_key(tables["trend_points"], "series_index", "point_index")
    for s, series in enumerate(result):
        for p, value in enumerate(series["data"]):
            row = points[s, p]
            assert row["value"] == value
            assert row["day"] == series["days"][p]
            assert row["date"] == iso(series["days"][p])
            assert row["series_count"] == series["count"]
            assert row["is_aggregate"] is False
    assert points[0, 0]["action_id"] == "12"
    assert points[0, 0]["math"] == "dau"
    assert points[0, 0]["breakdown_value"] == "Chrome"
    assert points[1, 0]["breakdown_value"] == '["Safari",17]'
    assert points[2, 0]["breakdown_value"] == "42"
    assert points[0, 2]["compare_label"] == "current"
    assert points[1, 2]["compare_label"] == "previous"
    assert points[1, 0]["date"] == datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert points[2, 1]["aggregated_value"] == 4.0
    assert points[2, 1]["compare_label"] is None


def test_trends_number_display_current_shape() -> None:
    result = [
        {
            "action": {"id": "signed_up"},
            "label": f"signed_up - {b}",
            "breakdown_value": b,
            "aggregated_value": v,
        }
        for b, v in (("US", 10), ("DE", 2.5), ("FR", 0))
    ]
    outcome, tables = build(viz("TrendsQuery", result, trendsFilter={"display": "BoldNumber"}))
    assert outcome == ShapeOutcome(rows=3, recognised=True, shape="trends_aggregate")
    rows = by_key(tables["trend_points"], "series_index", "point_index")
    for s, series in enumerate(result):
        row = rows[s, 0]
        assert row["value"] == series["aggregated_value"]
        assert row["is_aggregate"] is True
        assert row["breakdown_value"] == series["breakdown_value"]
        assert row["day"] is None and row["date"] is None


def test_series_without_points_or_aggregate_gives_no_rows() -> None:
    result = [{"label": "a", "data": [], "days": []}, {"label": "b", "data": [5], "days": ["2024-01-01"]}]
    outcome, tables = build(viz("TrendsQuery", result))
    assert outcome == ShapeOutcome(rows=1, recognised=True, shape="trends")
    [row] = tables["trend_points"]
    assert (row["series_index"], row["point_index"], row["value"]) == (1, 0, 5.0)


def test_lifecycle_statuses() -> None:
    days = ["2024-02-01", "2024-02-02"]
    statuses: dict[str, list[int]] = {
        "new": [3, 4],
        "returning": [2, 1],
        "resurrecting": [0, 1],
        "dormant": [-2, -5],
    }
    result: list[dict[str, Any]] = [
        {"action": {"id": "$pageview"}, "label": f"$pageview - {status}", "status": status, "data": data}
        | {"days": days, "labels": ["1-Feb", "2-Feb"], "count": sum(data)}
        for status, data in statuses.items()
    ]
    outcome, tables = build(viz("LifecycleQuery", result))
    assert outcome.recognised and outcome.rows == 8
    points = by_key(tables["trend_points"], "series_index", "point_index")
    for s, series in enumerate(result):
        for p, value in enumerate(series["data"]):
            assert points[s, p]["status"] == series["status"]
            assert points[s, p]["value"] == value
            assert points[s, p]["kind"] == "lifecycle"
    assert points[3, 1]["value"] == -5.0
    assert points[3, 1]["status"] == "dormant"


def test_stickiness_current_shape() -> None:
    result = [
        {"action": {"id": 3, "name": "Action 3"}, "label": "Action 3", "count": 9}
        | {"data": [5, 3, 1], "days": [1, 2, 3], "labels": ["1 day", "2 days", "3 days"]}
    ]
    outcome, tables = build(viz("StickinessQuery", result))
    assert outcome.recognised
    rows = tables["trend_points"]
    assert [r["interval"] for r in rows] == [1, 2, 3]
    assert [r["day"] for r in rows] == ["1", "2", "3"]
    assert [r["date"] for r in rows] == [None, None, None]
    assert [r["value"] for r in rows] == [5.0, 3.0, 1.0]
    assert rows[0]["action_id"] == "3"


def test_hourly_and_offset_datetimes_in_days() -> None:
    days = ["2024-01-01 10:00:00", "2024-01-01 11:00:00", "2024-01-01T12:00:00Z", "2024-01-01T15:00:00+02:00"]
    result = [
        {"label": "x", "data": [1, 2, 3, 4], "days": days, "labels": ["10:00", "11:00", "12:00", "13:00"]}
    ]
    outcome, tables = build(viz("TrendsQuery", result, interval="hour"))
    assert outcome.recognised
    rows = tables["trend_points"]
    assert [r["day"] for r in rows] == days
    assert [r["date"] for r in rows] == [
        datetime(2024, 1, 1, hour, tzinfo=timezone.utc) for hour in (10, 11, 12, 13)
    ]


def test_days_that_are_not_dates_give_null_dates() -> None:
    days = ["2024-01-01", "week 2", "2024-01-03T00:00:00.5+00:00"]
    result = [{"label": "x", "data": [1, 2, 3], "days": days}]
    outcome, tables = build(viz("TrendsQuery", result))
    assert outcome.recognised
    rows = tables["trend_points"]
    assert [r["date"] for r in rows] == [
        datetime(2024, 1, 1, tzinfo=timezone.utc),
        None,
        datetime(2024, 1, 3, 0, 0, 0, 500000, tzinfo=timezone.utc),
    ]
    assert [r["label"] for r in rows] == [None, None, None]


def test_days_and_labels_shorter_or_longer_than_data() -> None:
    result = [{"label": "x", "data": [1, 2, 3], "days": ["2024-01-01"], "labels": ["a", "b", "c", "d"]}]
    outcome, tables = build(viz("TrendsQuery", result))
    assert outcome.rows == 3
    rows = tables["trend_points"]
    assert [r["day"] for r in rows] == ["2024-01-01", None, None]
    assert [r["label"] for r in rows] == ["a", "b", "c"]


def test_label_like_values_that_are_not_strings_become_text() -> None:
    result = [{"label": 5, "data": [1, 2], "days": ["2024-01-01", 5], "labels": [{"a": 1}, 2.5]}]
    outcome, tables = build(viz("TrendsQuery", result))
    assert outcome.recognised and outcome.rows == 2
    rows = tables["trend_points"]
    assert [r["day"] for r in rows] == ["2024-01-01", "5"]
    assert [r["date"] for r in rows] == [datetime(2024, 1, 1, tzinfo=timezone.utc), None]
    assert [r["label"] for r in rows] == ['{"a":1}', "2.5"]
    assert rows[0]["series_label"] == "5"


def test_null_values_in_data_are_null() -> None:
    result = [{"label": "x", "data": [1, None, 3.25], "days": ["2024-01-01", "2024-01-02", "2024-01-03"]}]
    _, tables = build(viz("TrendsQuery", result))
    assert [r["value"] for r in tables["trend_points"]] == [1.0, None, 3.25]


def funnel_step(order: int, count: int, **extra: Any) -> dict[str, Any]:
    return {
        "action_id": "$pageview" if order == 0 else 17,
        "name": "$pageview" if order == 0 else "Purchase",
        "custom_name": "Buy" if order else None,
        "order": order,
        "count": count,
        "type": "events" if order == 0 else "actions",
        "average_conversion_time": None if order == 0 else 12.5 * order,
        "median_conversion_time": None if order == 0 else 10 * order,
        **extra,
    }


def test_funnel_steps_broken_down() -> None:
    breakdowns: list[tuple[Any, list[int]]] = [
        (["Chrome"], [100, 40, 10]),
        (["Safari"], [50, 5, 0]),
        ([""], [7, 0, 0]),
    ]
    result = [
        [
            funnel_step(order, count, breakdown=value, breakdown_value=value)
            for order, count in enumerate(counts)
        ]
        for value, counts in breakdowns
    ]
    payload = viz("FunnelsQuery", result, funnelsFilter={"funnelVizType": "steps"}, breakdownFilter={})
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=9, recognised=True, shape="funnel_steps_breakdown")
    steps = by_key(tables["funnel_steps"], "breakdown_index", "step_order")
    for b, group in enumerate(result):
        for step in group:
            row = steps[b, step["order"]]
            assert row["count"] == step["count"]
            assert row["action_id"] == str(step["action_id"])
            assert row["custom_name"] == step["custom_name"]
            assert row["average_conversion_time"] == step["average_conversion_time"]
            assert row["median_conversion_time"] == step["median_conversion_time"]
            assert row["breakdown_value"] == json.dumps(step["breakdown_value"], separators=(",", ":"))
    assert steps[0, 1]["breakdown_value"] == '["Chrome"]'
    assert steps[1, 2]["count"] == 0
    assert steps[0, 2]["step_type"] == "actions"


def test_funnel_step_order_is_the_steps_own_order() -> None:
    result = [funnel_step(2, 5), funnel_step(0, 30), funnel_step(1, 12)]
    _, tables = build(viz("FunnelsQuery", result))
    assert {r["step_order"]: r["count"] for r in tables["funnel_steps"]} == {0: 30, 1: 12, 2: 5}


def test_funnel_time_to_convert() -> None:
    result: dict[str, Any] = {
        "bins": [[0, 4], [60, 10], [120.5, 3], [3600, 0]],
        "average_conversion_time": 95.25,
    }
    payload = viz("FunnelsQuery", result, funnelsFilter={"funnelVizType": "time_to_convert"})
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=4, recognised=True, shape="funnel_time_to_convert")
    bins = by_key(tables["funnel_conversion_bins"], "bin_index")
    for index, (seconds, count) in enumerate(result["bins"]):
        row = bins[(index,)]
        assert row["bin_seconds"] == seconds
        assert row["count"] == count
        assert row["average_conversion_time"] == 95.25
        assert_snapshot_columns(row, "funnels")


def test_funnel_trends_with_breakdown_value() -> None:
    days = ["2024-03-01", "2024-03-02"]
    result: list[dict[str, Any]] = [
        {
            "count": 2,
            "data": [50.0, 25.5],
            "days": days,
            "labels": ["1-Mar", "2-Mar"],
            "breakdown_value": ["Chrome"],
        },
        {
            "count": 2,
            "data": [10, 0],
            "days": days,
            "labels": ["1-Mar", "2-Mar"],
            "breakdown_value": ["Firefox"],
        },
    ]
    # the viz type says steps but the payload is the trends shape: the payload decides
    payload = viz("FunnelsQuery", result, funnelsFilter={"funnelVizType": "steps"})
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=4, recognised=True, shape="funnel_trends")
    points = by_key(tables["trend_points"], "series_index", "point_index")
    for s, series in enumerate(result):
        for p, value in enumerate(series["data"]):
            assert points[s, p]["value"] == value
            assert points[s, p]["breakdown_value"] == json.dumps(series["breakdown_value"])
            assert points[s, p]["date"] == iso(days[p])
            assert points[s, p]["kind"] == "funnels"


def test_legacy_funnel_viz_hint_is_only_a_hint() -> None:
    payload = {"filters": {"insight": "FUNNELS", "funnel_viz_type": "trends"}, "result": [funnel_step(0, 9)]}
    outcome, tables = build(payload)
    assert outcome.shape == "funnel_steps"
    assert tables["funnel_steps"][0]["count"] == 9


def test_retention_with_breakdown_and_period_labels() -> None:
    result: list[dict[str, Any]] = []
    for breakdown in ("Chrome", "Safari"):
        for c in range(3):
            result.append(
                {
                    "date": f"2024-01-0{c + 1}T00:00:00Z",
                    "label": f"Day {c}",
                    "breakdown_value": breakdown,
                    "values": [{"count": 100 - 10 * p - c, "label": f"Day {p}"} for p in range(3 - c)],
                }
            )
    outcome, tables = build(viz("RetentionQuery", result, breakdownFilter={"breakdown": "$browser"}))
    assert outcome == ShapeOutcome(rows=12, recognised=True, shape="retention")
    cells = by_key(tables["retention_cells"], "cohort_index", "period_index")
    for c, cohort in enumerate(result):
        for p, value in enumerate(cohort["values"]):
            row = cells[c, p]
            assert row["count"] == value["count"]
            assert row["period_label"] == value["label"]
            assert row["breakdown_value"] == cohort["breakdown_value"]
            assert row["cohort_date"] == iso(cohort["date"])
            assert row["cohort_label"] == cohort["label"]
    assert cells[4, 1]["count"] == 89
    assert cells[4, 1]["breakdown_value"] == "Safari"


def test_paths_without_step_prefix_and_float_values() -> None:
    result = [
        {"source": "1_/home", "target": "2_/pricing", "value": 10, "average_conversion_time": 3.5},
        {"source": "$pageview", "target": "12_/a_b", "value": 2.5, "average_conversion_time": None},
    ]
    outcome, tables = build(viz("PathsQuery", result))
    assert outcome.rows == 2
    rows = tables["path_edges"]
    assert (rows[1]["source_step"], rows[1]["source_name"]) == (None, "$pageview")
    assert (rows[1]["target_step"], rows[1]["target_name"]) == (12, "/a_b")
    assert rows[1]["value"] == 2.5
    assert rows[1]["average_conversion_time"] is None


def test_sql_column_names_from_types_or_positions() -> None:
    base = {"query": {"kind": "DataVisualizationNode", "source": {"kind": "HogQLQuery", "query": "select 1"}}}
    rows_in = [[1, "a", None, {"k": [1, 2]}], [2.5, "b", True, []]]
    types = [["n", "Int"], ["s", "String"], ["x", "Nullable"], ["j", "JSON"]]
    _, tables = build(base | {"result": rows_in, "types": types})
    assert [json.loads(r["row"]) for r in tables["sql_rows"]] == [
        dict(zip(["n", "s", "x", "j"], row, strict=True)) for row in rows_in
    ]
    _, tables = build(base | {"result": rows_in})
    assert json.loads(tables["sql_rows"][0]["row"]) == {"c0": 1, "c1": "a", "c2": None, "c3": {"k": [1, 2]}}
    _, tables = build(base | {"result": [[1, 2, 3]], "columns": ["a", "a", "b"]})
    assert json.loads(tables["sql_rows"][0]["row"]) == {"a": 1, "a_1": 2, "b": 3}


def test_sql_rows_from_a_query_response_results_key() -> None:
    payload = {"query": {"kind": "HogQLQuery"}, "results": [[1], [2]], "columns": ["n"]}
    outcome, tables = build(payload)
    assert outcome.rows == 2
    assert [r["row"] for r in tables["sql_rows"]] == ['{"n":1}', '{"n":2}']


def test_many_points_column_sums() -> None:
    n_series, n_points = 5, 1000
    start = datetime(2021, 1, 1, tzinfo=timezone.utc)
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(n_points)]
    result = [
        {"label": f"s{s}", "data": [s * n_points + p for p in range(n_points)], "days": days}
        for s in range(n_series)
    ]
    tidy = TidyRows()
    assert tidy.add(ref(), viz("TrendsQuery", result), viz("TrendsQuery", result)).rows == n_series * n_points
    table = tidy.take()["trend_points"]
    assert table.column("value").to_pylist() == [float(v) for v in range(n_series * n_points)]
    assert table.column("point_index").to_pylist() == list(range(n_points)) * n_series
    assert table.column("series_index").to_pylist() == [s for s in range(n_series) for _ in range(n_points)]
    assert table.column("date").to_pylist()[-1] == start + timedelta(days=n_points - 1)


def series_of(n: int, label: Any = "s", **extra: Any) -> dict[str, Any]:
    start = datetime(2023, 1, 1, tzinfo=timezone.utc)
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(n)]
    return {"label": label, "data": list(range(n)), "days": days, "labels": days, **extra}


def test_small_and_large_insights_interleave_in_order() -> None:
    # small insights are checked in Python and converted at take(), large ones converted on add()
    sizes = [3, 500, 1, 200, 7, 129, 128]
    tidy = TidyRows()
    for insight_id, n in enumerate(sizes):
        payload = viz("TrendsQuery", [series_of(n, label=f"i{insight_id}")])
        assert tidy.add(ref(insight_id=insight_id), payload, payload).rows == n
    table = tidy.take()["trend_points"]
    assert table.num_rows == sum(sizes)
    assert table.column("insight_id").to_pylist() == [i for i, n in enumerate(sizes) for _ in range(n)]
    assert table.column("series_label").to_pylist() == [
        f"i{i}" for i, n in enumerate(sizes) for _ in range(n)
    ]
    assert table.column("value").to_pylist() == [float(p) for n in sizes for p in range(n)]
    assert table.column("point_index").to_pylist() == [p for n in sizes for p in range(n)]
    assert table.column("day").to_pylist() == table.column("label").to_pylist()
    assert table.column("date").null_count == 0


@pytest.mark.parametrize("n", [5, 1000])
def test_value_checks_are_the_same_for_small_and_large_insights(n: int) -> None:
    big = 2**60  # beyond what a double holds exactly: pyarrow refuses it, it is kept as the nearest double
    series = series_of(n, label=17)
    series["data"][-1] = big
    series["labels"][0] = {"a": 1}
    outcome, tables = build(viz("TrendsQuery", [series]))
    assert outcome.recognised and outcome.rows == n
    rows = tables["trend_points"]
    assert rows[-1]["value"] == float(big)
    assert rows[0]["label"] == '{"a":1}'
    assert rows[0]["series_label"] == "17"
    bad = series_of(n)
    bad["data"][-1] = "12"
    tidy = TidyRows()
    outcome = tidy.add(ref(), viz("TrendsQuery", [bad]), viz("TrendsQuery", [bad]))
    assert outcome.recognised is False and outcome.rows == 0 and tidy.row_count() == 0


def test_mappings_that_are_not_dicts() -> None:
    series = MappingProxyType({"label": "x", "data": [1, 2], "days": ["2024-01-01", "2024-01-02"]})
    payload = MappingProxyType(viz("TrendsQuery", [series]))
    outcome, tables = build(payload)
    assert outcome.recognised and outcome.rows == 2
    assert [r["value"] for r in tables["trend_points"]] == [1.0, 2.0]


# --- compared funnels (real payloads) ------------------------------------------------------------------


def test_funnel_steps_compare_fixture() -> None:
    payload = load("funnelLeftToRightCompare")
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=6, recognised=True, shape="funnel_steps_compare")
    steps = by_key(tables["funnel_steps"], "breakdown_index", "step_order")
    labels = ["current", "previous"]
    for position, step in enumerate(payload["result"]):
        group = labels.index(step["compare_label"])
        assert group == position // 3  # the periods come one after the other
        row = steps[group, step["order"]]
        assert_snapshot_columns(row, "funnels")
        assert row["count"] == step["count"]
        assert row["compare_label"] == step["compare_label"]
        assert row["average_conversion_time"] == step["average_conversion_time"]
    assert [steps[1, order]["count"] for order in range(3)] == [16000, 6200, 1900]
    assert steps[0, 0]["compare_label"] == "current"


def test_funnel_time_to_convert_compare_fixture() -> None:
    payload = load("funnelTimeToConvertCompare")
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=18, recognised=True, shape="funnel_time_to_convert_compare")
    bins = by_key(tables["funnel_conversion_bins"], "bin_index")
    expected = [
        (period["compare_label"], period["average_conversion_time"], seconds, count)
        for period in payload["result"]
        for seconds, count in period["bins"]
    ]
    assert sorted(i for (i,) in bins) == list(range(len(expected)))
    for index, (label, average, seconds, count) in enumerate(expected):
        row = bins[(index,)]
        assert_snapshot_columns(row, "funnels")
        assert (row["compare_label"], row["average_conversion_time"]) == (label, average)
        assert (row["bin_seconds"], row["count"]) == (seconds, count)
    assert (bins[(9,)]["compare_label"], bins[(9,)]["count"]) == ("previous", 3120)


def test_funnel_compare_in_breakdown_lists_keeps_the_label() -> None:
    result = [
        [funnel_step(0, 10, compare_label="current"), funnel_step(1, 4, compare_label="current")],
        [funnel_step(0, 8, compare_label="previous"), funnel_step(1, 2, compare_label="previous")],
    ]
    outcome, tables = build(viz("FunnelsQuery", result))
    assert outcome.shape == "funnel_steps_breakdown"
    steps = by_key(tables["funnel_steps"], "breakdown_index", "step_order")
    assert {k: (r["count"], r["compare_label"]) for k, r in steps.items()} == {
        (0, 0): (10, "current"),
        (0, 1): (4, "current"),
        (1, 0): (8, "previous"),
        (1, 1): (2, "previous"),
    }


def test_funnel_steps_without_compare_have_no_label() -> None:
    _, tables = build(load("funnelLeftToRight"))
    assert {r["compare_label"] for r in tables["funnel_steps"]} == {None}
    outcome, tables = build(viz("FunnelsQuery", {"bins": [[0, 1]], "average_conversion_time": 2}))
    assert outcome.shape == "funnel_time_to_convert"
    assert tables["funnel_conversion_bins"][0]["compare_label"] is None


# --- calendar heatmap ----------------------------------------------------------------------------------


def test_calendar_heatmap_is_a_row_per_cell() -> None:
    payload = synthetic("trendsCalendarHeatmap")
    outcome, tables = build(payload)
    [series] = payload["result"]
    grid = series["calendar_heatmap_data"]
    assert outcome == ShapeOutcome(rows=len(grid["data"]), recognised=True, shape="trends_calendar_heatmap")
    assert list(tables) == ["trend_points"]
    points = by_key(tables["trend_points"], "series_index", "point_index")
    assert set(points) == {(0, p) for p in range(len(grid["data"]))}
    for position, cell in enumerate(grid["data"]):
        row = points[0, position]
        assert_snapshot_columns(row, "trends")
        assert (row["weekday"], row["hour"], row["value"]) == (cell["row"], cell["column"], cell["value"])
        assert row["series_label"] == series["label"] == "$pageview"
        assert row["action_id"] == series["action"]["id"]
        assert row["action_name"] == series["action"]["name"]
        assert row["math"] == "total"
        assert row["aggregated_value"] == grid["allAggregations"] == series["aggregated_value"]
        assert row["series_count"] == series["count"]
        assert row["is_aggregate"] is False
        assert row["day"] is None and row["date"] is None and row["label"] is None
        assert row["interval"] is None
        assert row["box_median"] is None
    # the margins are not rows: they are sums of the cells here, and the total is the aggregated value
    assert sum(r["value"] for r in points.values()) == grid["allAggregations"]
    monday = sum(r["value"] for r in points.values() if r["weekday"] == 1)
    assert monday == next(a["value"] for a in grid["rowAggregations"] if a["row"] == 1)


def test_calendar_heatmap_query_result_is_the_grid() -> None:
    payload = synthetic("calendarHeatmapQuery")
    assert insight_kind(payload) == "trends"
    outcome, tables = build(payload)
    cells = payload["result"]["data"]
    assert outcome == ShapeOutcome(rows=len(cells), recognised=True, shape="trends_calendar_heatmap")
    rows = tables["trend_points"]
    assert [(r["weekday"], r["hour"], r["value"]) for r in rows] == [
        (c["row"], c["column"], float(c["value"])) for c in cells
    ]
    assert [r["point_index"] for r in rows] == list(range(len(cells)))
    assert {r["series_index"] for r in rows} == {0}
    assert {r["aggregated_value"] for r in rows} == {61.0}
    assert {r["series_label"] for r in rows} == {None}


def test_calendar_heatmap_without_cells_is_recognised_and_empty() -> None:
    series = {"label": "x", "data": [], "aggregated_value": 0, "count": 0}
    grid = {"data": [], "rowAggregations": [], "columnAggregations": [], "allAggregations": 0}
    payload = viz("TrendsQuery", [series | {"calendar_heatmap_data": grid}])
    assert build(payload) == (ShapeOutcome(rows=0, recognised=True, shape="trends_calendar_heatmap"), {})


def test_calendar_heatmap_null_is_an_ordinary_aggregate() -> None:
    series = {"label": "x", "data": [], "aggregated_value": 5, "calendar_heatmap_data": None}
    outcome, tables = build(viz("TrendsQuery", [series]))
    assert outcome.shape == "trends_aggregate"
    assert tables["trend_points"][0]["weekday"] is None


def test_heatmap_series_beside_a_line_series_pads_the_sparse_columns() -> None:
    # not something PostHog sends; it checks that sparse columns line up with their rows
    line = series_of(3, label="line")
    grid = {"data": [{"row": 7, "column": 23, "value": 4}, {"row": 1, "column": 0, "value": 0.5}]}
    heat = {"label": "heat", "data": [], "calendar_heatmap_data": grid}
    outcome, tables = build(viz("TrendsQuery", [line, heat, series_of(2, label="after")]))
    assert outcome == ShapeOutcome(rows=7, recognised=True, shape="trends_calendar_heatmap")
    rows = tables["trend_points"]
    assert [r["series_label"] for r in rows] == ["line"] * 3 + ["heat"] * 2 + ["after"] * 2
    assert [r["weekday"] for r in rows] == [None, None, None, 7, 1, None, None]
    assert [r["hour"] for r in rows] == [None, None, None, 23, 0, None, None]
    assert [r["value"] for r in rows] == [0.0, 1.0, 2.0, 4.0, 0.5, 0.0, 1.0]
    assert [r["day"] is None for r in rows] == [False] * 3 + [True] * 2 + [False] * 2


# --- box plot ------------------------------------------------------------------------------------------


def test_box_plot_is_a_row_per_box() -> None:
    payload = synthetic("trendsBoxPlot")
    boxes = payload["result"]
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=len(boxes), recognised=True, shape="trends_box_plot")
    points = by_key(tables["trend_points"], "series_index", "point_index")
    position: dict[int, int] = {}
    for box in boxes:
        s = box["series_index"]
        p = position[s] = position.get(s, -1) + 1
        row = points[s, p]
        assert_snapshot_columns(row, "trends")
        assert row["value"] == box["mean"]
        assert (row["box_min"], row["box_p25"], row["box_median"]) == (box["min"], box["p25"], box["median"])
        assert (row["box_p75"], row["box_max"]) == (box["p75"], box["max"])
        assert row["series_label"] == box["series_label"]
        assert row["day"] == box["day"]
        assert row["date"] == iso(box["day"])
        assert row["label"] == box["label"]
        assert row["weekday"] is None and row["hour"] is None
        assert row["is_aggregate"] is False
        assert row["aggregated_value"] is None and row["action_id"] is None
    assert position == {0: 6, 1: 6}
    assert points[0, 0]["box_median"] == 78.3
    assert points[1, 3]["value"] == 0.0  # a day without events: PostHog fills zeros


def test_box_plot_series_are_grouped_and_old_names_read() -> None:
    def box(day: str, series: int | None, median: float, **extra: Any) -> dict[str, Any]:
        body = {"day": day, "label": day, "min": 1.0, "median": median, "max": 9.0, "mean": median + 1}
        if series is not None:
            body |= {"series_index": series, "series_label": f"s{series}"}
        return body | extra

    result = [
        box("2024-01-01", 1, 5.0, p25=2.0, p75=7.0),
        box("2024-01-01", 0, 4.0, p25=3.0, p75=6.0),
        box("2024-01-02", 1, 5.5, p25=2.5, p75=7.5),
    ]
    outcome, tables = build(viz("TrendsQuery", result, trendsFilter={"display": "BoxPlot"}))
    assert outcome == ShapeOutcome(rows=3, recognised=True, shape="trends_box_plot")
    rows = by_key(tables["trend_points"], "series_index", "point_index")
    assert {k: (r["box_median"], r["day"]) for k, r in rows.items()} == {
        (1, 0): (5.0, "2024-01-01"),
        (1, 1): (5.5, "2024-01-02"),
        (0, 0): (4.0, "2024-01-01"),
    }
    # the first version's names (q1, q3) and no series_index (one series)
    result = [box("2024-01-01", None, 4.0, q1=3.0, q3=6.0), box("2024-01-02", None, 2.0, q1=1.0, q3=3.0)]
    _, tables = build(viz("TrendsQuery", result))
    single = tables["trend_points"]
    assert [(r["series_index"], r["point_index"]) for r in single] == [(0, 0), (0, 1)]
    assert [(r["box_p25"], r["box_p75"]) for r in single] == [(3.0, 6.0), (1.0, 3.0)]
    assert {r["series_label"] for r in single} == {None}


def test_large_box_plot_and_heatmap_take_the_arrow_path() -> None:
    days = [(datetime(2024, 1, 1) + timedelta(days=i)).date().isoformat() for i in range(150)]
    boxes = [
        {"day": d, "label": d, "min": 0, "p25": i, "median": i + 1, "p75": i + 2, "max": 500, "mean": i + 0.5}
        | {"series_index": s, "series_label": f"s{s}"}
        for s in range(2)
        for i, d in enumerate(days)
    ]
    outcome, tables = build(viz("TrendsQuery", boxes))
    assert outcome.rows == 300
    rows = tables["trend_points"]
    assert [r["box_median"] for r in rows] == [float(i + 1) for _ in range(2) for i in range(150)]
    assert [r["point_index"] for r in rows] == list(range(150)) * 2
    cells = [{"row": r, "column": h, "value": r * 100 + h} for r in range(1, 8) for h in range(24)]
    heat = {"label": "h", "data": [], "calendar_heatmap_data": {"data": cells, "allAggregations": 1}}
    outcome, tables = build(viz("TrendsQuery", [heat]))
    assert outcome.rows == 168
    assert [(r["weekday"], r["hour"], r["value"]) for r in tables["trend_points"]] == [
        (c["row"], c["column"], float(c["value"])) for c in cells
    ]


def test_new_shapes_interleave_with_plain_series_in_one_batch() -> None:
    tidy = TidyRows()
    payloads = [
        viz("TrendsQuery", [series_of(3)]),
        synthetic("trendsCalendarHeatmap"),
        viz("TrendsQuery", [series_of(200)]),
        synthetic("trendsBoxPlot"),
        viz("TrendsQuery", [series_of(2)]),
    ]
    sizes = [tidy.add(ref(insight_id=i), p, p).rows for i, p in enumerate(payloads)]
    table = tidy.take()["trend_points"]
    assert table.num_rows == sum(sizes)
    insight = table.column("insight_id").to_pylist()
    weekday = table.column("weekday").to_pylist()
    median = table.column("box_median").to_pylist()
    for i, (w, m) in enumerate(zip(weekday, median, strict=True)):
        assert (w is not None) is (insight[i] == 1), i
        assert (m is not None) is (insight[i] == 3), i
    cells = payloads[1]["result"][0]["calendar_heatmap_data"]["data"]
    assert [w for w, i in zip(weekday, insight, strict=True) if i == 1] == [c["row"] for c in cells]
    keys = table.select(list(TIDY_PRIMARY_KEYS["trend_points"])).to_pylist()
    assert len({tuple(k.values()) for k in keys}) == len(keys)


# --- retention with fractional counts ----------------------------------------------------------------


def test_retention_sampled_counts_keep_their_exact_value() -> None:
    payload = synthetic("retentionSampled")
    outcome, tables = build(payload)
    assert outcome.recognised and outcome.shape == "retention"
    cells = by_key(tables["retention_cells"], "cohort_index", "period_index")
    for c, cohort in enumerate(payload["result"]):
        for p, value in enumerate(cohort["values"]):
            row = cells[c, p]
            assert row["value"] == value["count"]
            assert row["count"] == int(value["count"] + 0.5)
    assert (cells[0, 2]["value"], cells[0, 2]["count"]) == (pytest.approx(203.333333), 203)
    assert (cells[1, 2]["value"], cells[1, 2]["count"]) == (156.5, 157)  # half way: up


def test_retention_integer_counts_have_the_same_value() -> None:
    _, tables = build(load("retention"))
    assert all(r["value"] == float(r["count"]) for r in tables["retention_cells"])
    result = [{"date": "2024-01-01", "values": [2.5, 2.4999, 0.5, 3, 2**53 + 1, None]}]
    _, tables = build(viz("RetentionQuery", result))
    rows = tables["retention_cells"]
    assert [r["count"] for r in rows] == [3, 2, 1, 3, 2**53 + 1, None]
    assert [r["value"] for r in rows] == [2.5, 2.4999, 0.5, 3.0, float(2**53 + 1), None]


# --- tables over other sources ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dataTableEvents", "dataTableActors", "webStatsTable"])
def test_table_rows_from_arrays_with_columns(name: str) -> None:
    payload = synthetic(name)
    assert insight_kind(payload) == "table"
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=len(payload["result"]), recognised=True, shape="table")
    rows = by_key(tables["sql_rows"], "row_index")
    for index, values in enumerate(payload["result"]):
        row = rows[(index,)]
        assert_snapshot_columns(row, "table")
        assert json.loads(row["row"]) == dict(zip(payload["columns"], values, strict=True))
        assert list(json.loads(row["row"])) == payload["columns"]


def test_table_rows_that_are_objects_stay_as_they_are() -> None:
    payload = synthetic("webOverview")
    outcome, tables = build(payload)
    assert outcome == ShapeOutcome(rows=5, recognised=True, shape="table")
    rows = [json.loads(r["row"]) for r in tables["sql_rows"]]
    assert rows == payload["result"]
    assert list(rows[0]) == list(payload["result"][0])  # key order kept
    assert rows[4]["key"] == "bounce rate" and rows[4]["isIncreaseBad"] is True


def test_table_hog_query_and_query_api_results() -> None:
    base = {"query": {"kind": "DataTableNode", "source": {"kind": "HogQuery", "code": "return [[1, 'a']]"}}}
    outcome, tables = build(base | {"result": [[1, "a"], [2, None]], "columns": ["n", "s"]})
    assert outcome == ShapeOutcome(rows=2, recognised=True, shape="table")
    assert [r["row"] for r in tables["sql_rows"]] == ['{"n":1,"s":"a"}', '{"n":2,"s":null}']
    # a bare source answered by /query (`results`)
    payload = {
        "query": {"kind": "EventsQuery", "select": ["event"]},
        "results": [["$pageview"]],
        "columns": ["event"],
    }
    outcome, tables = build(payload)
    assert (outcome.shape, tables["sql_rows"][0]["row"]) == ("table", '{"event":"$pageview"}')


def test_sql_and_table_keep_their_kind() -> None:
    _, tables = build(load("dataTableHogQL"))
    assert {r["kind"] for r in tables["sql_rows"]} == {"sql"}
    _, tables = build(synthetic("dataTableEvents"))
    assert {r["kind"] for r in tables["sql_rows"]} == {"table"}


def test_every_synthetic_fixture_is_recognised() -> None:
    names = sorted(p.stem for p in SYNTHETIC.glob("*.json"))
    assert len(names) == 8
    tidy = TidyRows()
    for insight_id, name in enumerate(names):
        payload = synthetic(name)
        outcome = tidy.add(ref(insight_id=insight_id), payload, payload)
        assert outcome.recognised and outcome.rows > 0, (name, outcome)
    for name, table in tidy.take().items():
        assert table.schema == TIDY_SCHEMAS[name]
        keys = table.select(list(TIDY_PRIMARY_KEYS[name])).to_pylist()
        assert len({tuple(k.values()) for k in keys}) == len(keys), name


# --- kinds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("insight", "kind"),
    [
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery"}}}, "trends"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "StickinessQuery"}}}, "stickiness"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "LifecycleQuery"}}}, "lifecycle"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "FunnelsQuery"}}}, "funnels"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "RetentionQuery"}}}, "retention"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "PathsQuery"}}}, "paths"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": "HogQLQuery"}}}, "sql"),
        ({"query": {"kind": "DataVisualizationNode", "source": {"kind": "HogQLQuery"}}}, "sql"),
        ({"query": {"kind": "TrendsQuery"}}, "trends"),
        ({"query": None, "filters": {"insight": "TRENDS"}}, "trends"),
        ({"filters": {"insight": "FUNNELS"}}, "funnels"),
        ({"filters": {"insight": "RETENTION"}}, "retention"),
        ({"filters": {"insight": "PATHS"}}, "paths"),
        ({"filters": {"insight": "STICKINESS"}}, "stickiness"),
        ({"filters": {"insight": "lifecycle"}}, "lifecycle"),
        ({"query": {"kind": "InsightVizNode", "source": None}, "filters": {"insight": "PATHS"}}, "paths"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "WebOverviewQuery"}}}, "unknown"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": "EventsQuery"}}}, "table"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": "ActorsQuery"}}}, "table"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": "PersonsNode"}}}, "table"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": "WebStatsTableQuery"}}}, "table"),
        ({"query": {"kind": "DataVisualizationNode", "source": {"kind": "WebOverviewQuery"}}}, "table"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": "HogQuery", "code": "return 1"}}}, "table"),
        ({"query": {"kind": "DataTableNode", "source": None}}, "unknown"),
        ({"query": {"kind": "DataTableNode", "source": {"kind": ""}}}, "unknown"),
        ({"query": {"kind": "DataTableNode"}, "filters": {"insight": "TRENDS"}}, "trends"),
        ({"query": {"kind": "EventsQuery", "select": ["*"]}}, "table"),
        ({"query": {"kind": "WebOverviewQuery"}}, "table"),
        ({"query": {"kind": "HogQuery"}}, "table"),
        ({"query": {"kind": "HogQLQuery", "query": "select 1"}}, "sql"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "CalendarHeatmapQuery"}}}, "trends"),
        ({"query": {"kind": "CalendarHeatmapQuery"}}, "trends"),
        ({"query": {"kind": "SomeFutureQuery"}}, "unknown"),
        ({"query": {"kind": "InsightVizNode", "source": {"kind": "HogQLQuery"}}}, "unknown"),
        ({"query": {"kind": "InsightVizNode"}}, "unknown"),
        ({"query": "TrendsQuery", "filters": None}, "unknown"),
        ({"filters": {"insight": None}}, "unknown"),
        ({"filters": {"insight": "SESSIONS"}}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_insight_kind(insight: dict[str, Any], kind: str) -> None:
    assert insight_kind(insight) == kind


# --- garbage and empties -------------------------------------------------------------------------------


GOOD_POINTS = [{"label": "ok", "data": [1, 2], "days": ["2024-01-01", "2024-01-02"]}]
HEAT: dict[str, Any] = {"label": "heat", "data": [], "aggregated_value": 1}
BOX: dict[str, Any] = {
    "day": "2024-01-01",
    "label": "1-Jan",
    "min": 0,
    "p25": 1,
    "median": 2,
    "p75": 3,
    "max": 4,
}
BOX |= {"mean": 2.5, "series_index": 0, "series_label": "s"}


def heat(cells: list[Any]) -> dict[str, Any]:
    return HEAT | {"calendar_heatmap_data": {"data": cells, "allAggregations": 1}}


GARBAGE: dict[str, dict[str, Any]] = {
    "unknown kind": {
        "query": {"kind": "InsightVizNode", "source": {"kind": "WebOverviewQuery"}},
        "result": [{}],
    },
    "no kind at all": {"result": GOOD_POINTS},
    "trends result a string": viz("TrendsQuery", "oops"),
    "trends series a number": viz("TrendsQuery", [1, 2]),
    "trends data a dict": viz("TrendsQuery", [{"data": {"a": 1}}]),
    "bad value in the second series": viz(
        "TrendsQuery", [*GOOD_POINTS, {"label": "bad", "data": [1, "many"], "days": ["2024-01-01", "x"]}]
    ),
    "aggregated_value a string": viz("TrendsQuery", [{"label": "n", "aggregated_value": "lots"}]),
    "funnel step without count": viz("FunnelsQuery", [funnel_step(0, 5), {"order": 1, "name": "x"}]),
    "funnel fractional count": viz("FunnelsQuery", [funnel_step(0, 5) | {"count": 2.5}]),
    "funnel dict without bins": viz("FunnelsQuery", {"average_conversion_time": 3}),
    "funnel bins not pairs": viz("FunnelsQuery", {"bins": [[1, 2], [3]]}),
    "funnel mixed lists and steps": viz("FunnelsQuery", [[funnel_step(0, 1)], funnel_step(0, 1)]),
    "funnel scalars": viz("FunnelsQuery", [1, 2, 3]),
    "funnel result a string": viz("FunnelsQuery", "steps"),
    "retention cohort without values": viz("RetentionQuery", [{"date": "2024-01-01", "label": "Day 0"}]),
    "retention value without count": viz("RetentionQuery", [{"values": [{"count": 1}, {"label": "x"}]}]),
    "retention count a string": viz("RetentionQuery", [{"values": [{"count": "1"}]}]),
    "paths source missing": viz(
        "PathsQuery", [{"source": "1_a", "target": "2_b", "value": 1}, {"target": "x"}]
    ),
    "paths value a string": viz("PathsQuery", [{"source": "1_a", "target": "2_b", "value": "1"}]),
    "sql rows scalars": {
        "query": {"kind": "DataTableNode", "source": {"kind": "HogQLQuery"}},
        "result": [1, 2],
    },
    "sql result a dict": {"query": {"kind": "DataTableNode", "source": {"kind": "HogQLQuery"}}, "result": {}},
    "heatmap not an object": viz("TrendsQuery", [HEAT | {"calendar_heatmap_data": [1, 2]}]),
    "heatmap data not a list": viz("TrendsQuery", [HEAT | {"calendar_heatmap_data": {"data": {"row": 1}}}]),
    "heatmap without data": viz("TrendsQuery", [HEAT | {"calendar_heatmap_data": {"allAggregations": 3}}]),
    "heatmap cell without value": viz("TrendsQuery", [heat([{"row": 1, "column": 2}])]),
    "heatmap cell a number": viz("TrendsQuery", [heat([5])]),
    "heatmap value a string": viz("TrendsQuery", [heat([{"row": 1, "column": 2, "value": "many"}])]),
    "heatmap weekday fractional": viz("TrendsQuery", [heat([{"row": 1.5, "column": 2, "value": 1}])]),
    "heatmap hour a string": viz("TrendsQuery", [heat([{"row": 1, "column": "10", "value": 1}])]),
    "heatmap weekday fractional in a large grid": viz(
        "TrendsQuery",
        [
            heat(
                [{"row": r, "column": h, "value": 1} for r in range(1, 8) for h in range(24)]
                + [{"row": 2.5, "column": 1, "value": 1}]
            )
        ],
    ),
    "heatmap beside data": viz("TrendsQuery", [heat([{"row": 1, "column": 2, "value": 1}]) | {"data": [1]}]),
    "heatmap query bad cell": viz("CalendarHeatmapQuery", {"data": [{"row": 1}], "allAggregations": 1}),
    "heatmap query total a string": viz("CalendarHeatmapQuery", {"data": [], "allAggregations": "x"}),
    "box median a string": viz("TrendsQuery", [BOX | {"median": "5"}]),
    "box mean a string": viz("TrendsQuery", [BOX, BOX | {"mean": "n/a"}]),
    "box series_index a string": viz("TrendsQuery", [BOX | {"series_index": "0"}]),
    "box series_index too big": viz("TrendsQuery", [BOX | {"series_index": 2**40}]),
    "box then a series": viz("TrendsQuery", [BOX, {"label": "x", "data": [1], "days": ["2024-01-01"]}]),
    "box then a number": viz("TrendsQuery", [BOX, 3]),
    "funnel step order repeats": viz("FunnelsQuery", [funnel_step(0, 5), funnel_step(0, 3)]),
    "funnel compare bins not a list": viz("FunnelsQuery", [{"compare_label": "current", "bins": 3}]),
    "funnel compare bins not pairs": viz("FunnelsQuery", [{"compare_label": "current", "bins": [[1, 2, 3]]}]),
    "funnel compare step order repeats": viz(
        "FunnelsQuery",
        [funnel_step(0, 5, compare_label="current"), funnel_step(0, 3, compare_label="current")],
    ),
    "retention count not a number": viz("RetentionQuery", [{"values": [{"count": float("nan")}]}]),
    "retention count infinite": viz("RetentionQuery", [{"values": [{"count": float("inf")}]}]),
    "retention count a bool": viz("RetentionQuery", [{"values": [True]}]),
    "table result a dict": {
        "query": {"kind": "DataTableNode", "source": {"kind": "HogQuery"}},
        "result": {"a": 1},
    },
    "table result a string": {
        "query": {"kind": "DataTableNode", "source": {"kind": "HogQuery"}},
        "result": "hi",
    },
    "table rows scalars": {
        "query": {"kind": "DataTableNode", "source": {"kind": "EventsQuery"}},
        "result": [1],
    },
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_garbage_adds_nothing(case: str) -> None:
    tidy = TidyRows()
    good = viz("TrendsQuery", copy.deepcopy(GOOD_POINTS))
    assert tidy.add(ref(insight_id=1), good, good).rows == 2
    outcome = tidy.add(ref(insight_id=2), GARBAGE[case], GARBAGE[case])
    assert outcome.recognised is False
    assert outcome.rows == 0
    assert outcome.shape == "unknown"
    assert outcome.note
    assert tidy.row_count() == 2
    tables = tidy.take()
    assert list(tables) == ["trend_points"]
    assert tables["trend_points"].column("insight_id").to_pylist() == [1, 1]
    # the builder is still usable afterwards
    assert tidy.add(ref(insight_id=3), good, good).rows == 2


def test_response_not_a_mapping_and_bad_ref_do_not_raise() -> None:
    tidy = TidyRows()
    good = viz("TrendsQuery", GOOD_POINTS)
    outcome = tidy.add(ref(), good, "not a response")  # type: ignore[arg-type]
    assert outcome.recognised is False and outcome.note
    bad_ref = SnapshotRef(project_id="3", insight_id=7, snapshot=SNAPSHOT)  # type: ignore[arg-type]
    outcome = tidy.add(bad_ref, good, good)
    assert outcome.recognised is False and outcome.note and "project_id" in outcome.note
    assert tidy.row_count() == 0 and tidy.take() == {}


@pytest.mark.parametrize("result", [None, []])
@pytest.mark.parametrize("source_kind", ["TrendsQuery", "FunnelsQuery", "RetentionQuery", "PathsQuery"])
def test_empty_results(result: Any, source_kind: str) -> None:
    tidy = TidyRows()
    payload = viz(source_kind, result)
    assert tidy.add(ref(), payload, payload) == ShapeOutcome(rows=0, recognised=True, shape="empty")
    assert tidy.row_count() == 0 and tidy.take() == {}


def test_empty_bins_and_empty_breakdowns_are_recognised() -> None:
    outcome, tables = build(viz("FunnelsQuery", {"bins": [], "average_conversion_time": None}))
    assert outcome == ShapeOutcome(rows=0, recognised=True, shape="funnel_time_to_convert")
    assert tables == {}
    outcome, tables = build(viz("FunnelsQuery", [[], []]))
    assert outcome == ShapeOutcome(rows=0, recognised=True, shape="funnel_steps_breakdown")


def test_missing_result_key_is_empty() -> None:
    tidy = TidyRows()
    assert tidy.add(ref(), viz("TrendsQuery", None), {"is_cached": False}).shape == "empty"


# --- schemas, accumulation, take ----------------------------------------------------------------------


def test_schemas_start_with_the_snapshot_key_and_keys_are_not_nullable() -> None:
    assert set(TIDY_SCHEMAS) == set(TIDY_PRIMARY_KEYS) == set(TABLES)
    for name, schema in TIDY_SCHEMAS.items():
        assert schema.names[:6] == ["project_id", "insight_id", "snapshot", "variant", "last_refresh", "kind"]
        assert schema.field("project_id").type == pa.int64()
        assert schema.field("insight_id").type == pa.int64()
        assert schema.field("snapshot").type == pa.timestamp("us", tz="UTC")
        assert schema.field("last_refresh").type == pa.timestamp("us", tz="UTC")
        assert schema.field("variant").type == pa.string()
        key = TIDY_PRIMARY_KEYS[name]
        assert key[:4] == ("project_id", "insight_id", "snapshot", "variant")
        for field in schema:
            assert field.nullable is (field.name not in key), (name, field.name)


# The columns each table had before the heatmap, box plot, compare and sampled-retention columns: schemas
# only grow (new nullable columns after these), keys and primary keys stay as they were.
COLUMNS_BEFORE: dict[str, list[str]] = {
    "trend_points": [
        *("project_id", "insight_id", "snapshot", "variant", "last_refresh", "kind", "series_index"),
        *("point_index", "series_label", "action_id", "action_name", "math", "breakdown_value"),
        *("compare_label", "status", "day", "interval", "date", "label", "value", "series_count"),
        *("aggregated_value", "is_aggregate"),
    ],
    "funnel_steps": [
        *("project_id", "insight_id", "snapshot", "variant", "last_refresh", "kind", "breakdown_index"),
        *("step_order", "name", "custom_name", "action_id", "step_type", "count"),
        *("average_conversion_time", "median_conversion_time", "breakdown_value", "breakdown"),
    ],
    "funnel_conversion_bins": [
        *("project_id", "insight_id", "snapshot", "variant", "last_refresh", "kind", "bin_index"),
        *("bin_seconds", "count", "average_conversion_time"),
    ],
    "retention_cells": [
        *("project_id", "insight_id", "snapshot", "variant", "last_refresh", "kind", "cohort_index"),
        *("period_index", "cohort_date", "cohort_label", "period_label", "count", "breakdown_value"),
    ],
    "path_edges": [
        *("project_id", "insight_id", "snapshot", "variant", "last_refresh", "kind", "source", "target"),
        *("source_step", "target_step", "source_name", "target_name", "value", "average_conversion_time"),
        "edge_index",
    ],
    "sql_rows": [
        "project_id",
        "insight_id",
        "snapshot",
        "variant",
        "last_refresh",
        "kind",
        "row_index",
        "row",
    ],
}
COLUMNS_ADDED: dict[str, list[tuple[str, pa.DataType]]] = {
    "trend_points": [
        ("weekday", pa.int32()),
        ("hour", pa.int32()),
        *((f"box_{n}", pa.float64()) for n in ("min", "p25", "median", "p75", "max")),
    ],
    "funnel_steps": [("compare_label", pa.string())],
    "funnel_conversion_bins": [("compare_label", pa.string())],
    "retention_cells": [("value", pa.float64())],
    "path_edges": [],
    "sql_rows": [],
}


def test_schemas_only_grow() -> None:
    snapshot_key = ("project_id", "insight_id", "snapshot", "variant")
    primary_keys = dict(TIDY_PRIMARY_KEYS)
    assert primary_keys == {
        "trend_points": (*snapshot_key, "series_index", "point_index"),
        "funnel_steps": (*snapshot_key, "breakdown_index", "step_order"),
        "funnel_conversion_bins": (*snapshot_key, "bin_index"),
        "retention_cells": (*snapshot_key, "cohort_index", "period_index"),
        "path_edges": (*snapshot_key, "source", "target"),
        "sql_rows": (*snapshot_key, "row_index"),
    }
    for name, schema in TIDY_SCHEMAS.items():
        before = COLUMNS_BEFORE[name]
        assert schema.names[: len(before)] == before, name
        added = [(f.name, f.type) for f in schema][len(before) :]
        assert added == COLUMNS_ADDED[name], name
        assert all(schema.field(column).nullable for column, _ in added), name
    assert TIDY_SCHEMAS["retention_cells"].field("count").type == pa.int64()  # kept for existing warehouses


def test_accumulates_many_insights_and_take_resets() -> None:
    tidy = TidyRows()
    expected_rows: dict[str, int] = {}
    for insight_id, name in enumerate(sorted(p.stem for p in FIXTURES.glob("*.json"))):
        payload = load(name)
        outcome = tidy.add(ref(insight_id=insight_id, variant="dashboard=4"), payload, payload)
        table = {
            "trends": "trend_points",
            "trends_aggregate": "trend_points",
            "funnel_trends": "trend_points",
            "funnel_steps": "funnel_steps",
            "funnel_steps_compare": "funnel_steps",
            "funnel_time_to_convert_compare": "funnel_conversion_bins",
            "retention": "retention_cells",
            "paths": "path_edges",
            "sql": "sql_rows",
        }[outcome.shape]
        expected_rows[table] = expected_rows.get(table, 0) + outcome.rows
    assert tidy.row_count() == sum(expected_rows.values()) == 243 + 6 + 18
    tables = tidy.take()
    assert {name: t.num_rows for name, t in tables.items()} == expected_rows
    for name, table in tables.items():
        assert table.schema == TIDY_SCHEMAS[name]
        assert table.column("variant").unique().to_pylist() == ["dashboard=4"]
        assert table.column("snapshot").null_count == 0
        keys = table.select(list(TIDY_PRIMARY_KEYS[name])).to_pylist()
        assert len({tuple(k.values()) for k in keys}) == len(keys), name
    trend_ids = tables["trend_points"].column("insight_id").to_pylist()
    assert trend_ids == sorted(trend_ids)  # insights in the order they were added
    assert tidy.row_count() == 0
    assert tidy.take() == {}


def test_snapshot_is_stored_as_a_utc_instant() -> None:
    tidy = TidyRows()
    local = SNAPSHOT.astimezone(timezone(timedelta(hours=2)))
    naive = SNAPSHOT.replace(tzinfo=None)
    payload = viz("TrendsQuery", GOOD_POINTS)
    for insight_id, moment in enumerate((SNAPSHOT, local, naive)):
        tidy.add(SnapshotRef(3, insight_id, moment, "window=2024-01-01..2024-01-31"), payload, payload)
    table = tidy.take()["trend_points"]
    assert set(table.column("snapshot").to_pylist()) == {SNAPSHOT}
    assert set(table.column("last_refresh").to_pylist()) == {SNAPSHOT}
    assert set(table.column("variant").to_pylist()) == {"window=2024-01-01..2024-01-31"}


def test_take_in_batches() -> None:
    tidy = TidyRows()
    payload = load("trendsLine")
    for insight_id in range(3):
        tidy.add(ref(insight_id=insight_id), payload, payload)
    assert tidy.row_count() == 24
    first = tidy.take()["trend_points"]
    tidy.add(ref(insight_id=9), payload, payload)
    assert tidy.row_count() == 8
    second = tidy.take()["trend_points"]
    assert first.num_rows == 24 and second.num_rows == 8
    assert second.column("insight_id").unique().to_pylist() == [9]
    assert second.column("point_index").to_pylist() == list(range(8))
