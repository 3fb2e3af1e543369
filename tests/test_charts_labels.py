"""Breakdown values in words, as PostHog's legend writes them (charts.labels): the stored text in, the
label out. The cases the emulator and the PostHog-shaped payloads of test_show do not reach."""

from __future__ import annotations

from typing import Any

import pytest

from posthog_insights_cli.charts.labels import breakdown_label, period_label
from posthog_insights_cli.charts.style import compact, duration, human


@pytest.mark.parametrize(
    ("stored", "options", "expected"),
    [
        ("Edge", {}, "Edge"),
        ('["Edge"]', {}, "Edge"),
        ('["Edge","Mac"]', {}, "Edge / Mac"),
        ("$$_posthog_breakdown_other_$$", {}, "Other"),
        ("$$_posthog_breakdown_null_$$", {}, "None"),
        ('["$$_posthog_breakdown_other_$$","$$_posthog_breakdown_other_$$"]', {}, "Other"),
        ('["Edge","$$_posthog_breakdown_null_$$"]', {}, "Edge / None"),
        ("9007199254740991", {}, "Other"),  # PostHog's numeric "other" (2^53 - 1)
        ("9007199254740990", {}, "None"),
        ("", {}, "None"),
        ("42", {}, "42"),
        ("[1,5]", {"histogram": True}, "1 – 5"),
        ("[5.0,5.0]", {"histogram": True}, "5"),
        ("3", {"breakdown_type": "cohort", "series_label": "Paying users"}, "Paying users"),
        (
            "3",
            {
                "breakdown_type": "cohort",
                "series_label": "$pageview - Paying users",
                "series_name": "$pageview",
            },
            "Paying users",
        ),
        ("all", {"breakdown_type": "cohort", "series_label": "all users"}, "All users"),
        ("0", {"breakdown_type": "cohort"}, "All users"),
        ("7", {"breakdown_type": "cohort"}, "Cohort 7"),
        (None, {}, None),
    ],
)
def test_breakdown_label(stored: str | None, options: dict[str, Any], expected: str | None) -> None:
    assert breakdown_label(stored, **options) == expected


def test_period_and_number_words() -> None:
    assert [period_label(v) for v in ("current", "previous", None)] == [
        "Current period",
        "Previous period",
        None,
    ]
    assert [human(v) for v in (3141592, 2.5, 0.126, -0.0)] == ["3,141,592", "2.5", "0.13", "0"]
    assert [compact(v) for v in (950, 12500, 3_400_000)] == ["950", "12.5K", "3.4M"]
    assert [duration(s) for s in (45, 725, 12000, 190000)] == ["45s", "12m 5s", "3h 20m", "2d 4h"]
