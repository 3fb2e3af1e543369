"""The plan a run states before its first request (cost.py): upper bounds that the run then keeps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from posthog_emulator import Emulator, EmulatorConfig
from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.cost import estimate_cost, least_time_s
from posthog_insights_cli.summary import format_summary
from tests.conftest import TEST_KEY, Warehouse, needing_refresh


def _settings(**values: Any) -> PostHogInsightsSettings:
    settings = PostHogInsightsSettings()
    base = {"personal_api_key": TEST_KEY, "project_ids": [1], "host": "http://127.0.0.1:1"}
    for name, value in {**base, **values}.items():
        setattr(settings, name, value)
    settings.check()
    return settings


def test_least_time_counts_the_window_that_holds_longest() -> None:
    windows = ((240, 60.0), (1200, 3600.0))
    assert least_time_s(240, windows) == 0.0  # one minute's worth goes at once
    assert least_time_s(241, windows) == 60.0
    assert least_time_s(1201, windows) == 3600.0
    assert least_time_s(5000, None) == 0.0


@pytest.mark.parametrize(
    ("values", "requests"),
    [
        ({"refresh": "force_cache"}, 20),  # the pages only
        ({"refresh": "async"}, 60),  # the pages, then about twice more each to collect
        ({"refresh": "blocking"}, 20 + 200 + 20),  # a read per ten, a remainder per page
        ({"refresh": "blocking", "refresh_via": "retrieve"}, 20 + 2000),
        ({"refresh": "force_blocking"}, 20 + 2000),
        ({"refresh": "blocking", "max_requests": 100}, 100),
    ],
)
def test_the_estimate_per_way_of_refreshing(values: dict[str, Any], requests: int) -> None:
    estimate = estimate_cost(_settings(**values), {1: 1500, 2: 500})
    assert estimate.pages == 20
    assert estimate.requests == requests


def test_a_first_run_says_it_cannot_count_yet() -> None:
    estimate = estimate_cost(_settings(refresh="async"), {})
    assert estimate.requests is None
    assert estimate.describe().startswith("first run:")


def test_async_by_retrieves_says_its_polls_come_on_top() -> None:
    text = estimate_cost(_settings(refresh="async", refresh_via="retrieve"), {1: 2000}).describe()
    assert "poll" in text
    assert "at most 2,020 requests and their polls" in text
    assert "at least 1.0 h" in text  # 2,020 requests at 1,200 an hour


@pytest.mark.parametrize("refresh", ["blocking", "async"])
def test_the_second_run_keeps_within_the_plan_it_states(tmp_path: Path, refresh: str) -> None:
    config = EmulatorConfig(
        api_key=TEST_KEY, insights=300, seed=5, error_share=0.0, fresh_share=0.5, stale_share=0.25
    )
    warehouse = Warehouse(tmp_path)
    with Emulator(config) as emulator:
        first = warehouse.load(emulator, refresh=refresh)
        assert first.report.plan is not None and first.report.plan.startswith("first run:")
    with Emulator(config) as emulator:  # the same project, as stale as it was before the first run
        needing = needing_refresh(emulator)
        second = warehouse.load(emulator, refresh=refresh)
        assert second.complete, second.report
        plan = second.report.plan
        assert plan is not None and plan.startswith("300 insights known from the last run: 3 list pages")
        most = int(re.search(r"at most ([\d,]+) requests", plan)[1].replace(",", ""))  # type: ignore[index]
        spent = emulator.stats.as_dict()["total"]
        assert 3 < spent <= most, (spent, plan)
        summary = format_summary(second)
        assert f"planned: {plan}" in summary
        if refresh == "async":
            assert second.report.jobs_started == needing  # one per stale or missing insight
            assert f"async jobs started: {second.report.jobs_started}" in summary
        else:
            assert 0 < second.report.computing_reads < needing
