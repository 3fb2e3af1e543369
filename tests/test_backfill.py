"""Backfills against the emulator: each past window is its own, correct snapshot; an interrupted
backfill resumes without redoing finished windows."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from posthog_insights.backfill import date_windows
from posthog_insights.config import BackfillSettings
from posthog_insights.errors import ConfigError
from posthog_insights_cli.loader import backfill
from tests.conftest import TEST_KEY, Warehouse
from tests.tidy_check import check_all_ok_snapshots


def _backfill(warehouse: Warehouse, emulator: Any, **args: Any) -> Any:
    base: dict[str, Any] = {
        "host": emulator.base_url,
        "project_ids": [1],
        "personal_api_key": TEST_KEY,
        "rate_limit": "off",
        "retry_backoff_s": 0.01,
        "date_from": "2024-01-01",
        "date_to": "2024-01-21",
        "window": "week",
    }
    base.update(args)
    return backfill(pipeline=warehouse.pipeline(), **base)


def _pick(emulator: Any, kind: str) -> dict[str, Any]:
    for insight_id in emulator.store.insight_ids(1):
        insight = emulator.store.insight(1, insight_id)
        source = (insight.get("query") or {}).get("source") or {}
        if source.get("kind") == kind and not insight.get("filters", {}).get("insight"):
            return dict(insight)
    raise AssertionError(f"no {kind} insight in the emulator")


def test_windows_cover_the_range() -> None:
    day = date.fromisoformat
    assert date_windows(day("2024-01-30"), day("2024-03-02"), "month") == [
        (day("2024-01-30"), day("2024-01-31")),
        (day("2024-02-01"), day("2024-02-29")),
        (day("2024-03-01"), day("2024-03-02")),
    ]
    assert date_windows(day("2024-01-03"), day("2024-01-15"), "week") == [
        (day("2024-01-03"), day("2024-01-07")),
        (day("2024-01-08"), day("2024-01-14")),
        (day("2024-01-15"), day("2024-01-15")),
    ]
    days = date_windows(day("2024-01-01"), day("2024-01-03"), "day")
    assert len(days) == 3 and all(a == b for a, b in days)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"window": "year"}, "window:"),
        ({"date_from": "2024-01-03", "date_to": "2024-01-01"}, "to: 2024-01-01 is before from"),
        ({"date_from": "03/01/2024"}, "from: '03/01/2024' is not a date"),
        ({"insights": []}, "insight: no insight given"),
    ],
)
def test_backfill_settings_are_checked(changes: dict[str, object], words: str) -> None:
    fields: dict[str, object] = {
        "project_ids": [1],
        "personal_api_key": "phx_k",
        "insights": ["7"],
        "date_from": "2024-01-01",
        "date_to": "2024-01-31",
    }
    settings = BackfillSettings(**{**fields, **changes})
    with pytest.raises(ConfigError, match=words):
        settings.check()


def test_each_window_is_its_own_correct_snapshot(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=40, error_share=0.0)
    trends = _pick(emulator, "TrendsQuery")
    funnel = _pick(emulator, "FunnelsQuery")
    result = _backfill(warehouse, emulator, insights=[str(trends["id"]), funnel["short_id"]])
    assert result.complete
    rows = warehouse.sql(
        "SELECT insight_id, variant, status, snapshot FROM insight_results WHERE variant LIKE 'window=%' "
        "ORDER BY insight_id, variant"
    )
    variants = [
        "window=2024-01-01..2024-01-07",
        "window=2024-01-08..2024-01-14",
        "window=2024-01-15..2024-01-21",
    ]
    for insight_id in (trends["id"], funnel["id"]):
        mine = [r for r in rows if r[0] == insight_id]
        assert [r[1] for r in mine] == variants
        assert {r[2] for r in mine} == {"ok"}
    # windows give different numbers, and every number equals its window's payload
    sums = warehouse.sql(
        "SELECT variant, SUM(value) FROM trend_points WHERE insight_id = ? GROUP BY variant ORDER BY variant",
        trends["id"],
    )
    assert len(sums) == 3 and len({s for _, s in sums}) == 3
    check_all_ok_snapshots(warehouse)
    latest = warehouse.sql(
        "SELECT DISTINCT variant FROM trend_points_latest WHERE insight_id = ? ORDER BY variant", trends["id"]
    )
    assert [v for (v,) in latest] == variants


def test_interrupted_backfill_resumes(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=30, error_share=0.0)
    trends = _pick(emulator, "TrendsQuery")
    day_args = {"insights": [str(trends["id"])], "date_to": "2024-01-10", "window": "day"}
    first = _backfill(warehouse, emulator, max_requests=5, **day_args)  # 1 resolve + 4 windows
    assert first.report.deferred == 6
    assert warehouse.count("insight_results") == 4
    emulator.reset_stats()
    second = _backfill(warehouse, emulator, **day_args)
    assert second.report.deferred == 0
    assert emulator.stats.by_kind.get("retrieve", 0) == 1 + 6  # resolve + only the missing windows
    variants = warehouse.sql(
        "SELECT COUNT(DISTINCT variant) FROM insight_results WHERE insight_id = ?", trends["id"]
    )
    assert variants == [(10,)]
    third = _backfill(warehouse, emulator, **day_args)
    assert third.row_counts.get("trend_points", 0) == 0
    check_all_ok_snapshots(warehouse)


def test_unknown_insight_is_reported_not_crashed(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=5, error_share=0.0)
    result = _backfill(warehouse, emulator, insights=["nosuchid"])
    assert not result.complete
    assert "HTTP 404" in result.report.unfetched[0]
