"""Readable names for breakdown values, series and periods, as PostHog's legend shows them.

The tidy tables keep a breakdown value as PostHog sent it, as text: a string as is (`Edge`), anything else
as compact JSON (`["Edge"]` from a funnel, `["Edge","Mac"]` from a breakdown by two properties, `5`, a
cohort id). PostHog's frontend (`formatBreakdownLabel`) turns those into words; this module does the
same: lists joined with " / ", its "other" and "null" sentinels as Other and None, a cohort by the name
the series label carries, a histogram bucket `[1,5]` as "1 – 5".
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

OTHER: Final = "Other"
NONE: Final = "None"
ALL_USERS: Final = "All users"
# PostHog's sentinels (posthog/hogql_queries/insights/trends/breakdown.py and the frontend's utils.tsx).
_OTHER_VALUES: Final = frozenset({"$$_posthog_breakdown_other_$$", "9007199254740991", "nan"})
_NULL_VALUES: Final = frozenset({"$$_posthog_breakdown_null_$$", "9007199254740990", ""})


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _one(value: Any) -> str:
    """One breakdown value (not a list) in words."""
    if _missing(value):
        return NONE
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    if text in _OTHER_VALUES:
        return OTHER
    if text in _NULL_VALUES:
        return NONE
    return text


def _parsed(raw: str) -> Any:
    """The JSON a non-string value was stored as; a plain string stays as it is."""
    if raw[:1] in ("[", "{", '"') or raw in ("null", "true", "false"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def breakdown_label(
    raw: Any,
    *,
    breakdown_type: str | None = None,
    series_label: str | None = None,
    series_name: str | None = None,
    histogram: bool = False,
) -> str | None:
    """A stored breakdown value in words; None when the row has no breakdown.

    `series_label` and `series_name` (PostHog's label and the action's name) name a cohort: PostHog sends a
    cohort breakdown's value as the cohort id and puts the cohort's name in the label ("name" alone for one
    series, "series - name" for several). `histogram` (a numeric breakdown in bins): `[1,5]` is a bucket.
    """
    if _missing(raw):
        return None
    value = _parsed(str(raw))
    if breakdown_type == "cohort":
        return _cohort(value, series_label, series_name)
    if isinstance(value, list):
        if histogram and len(value) == 2 and not any(isinstance(v, list) for v in value):
            low, high = (_one(v) for v in value)
            return low if low == high else f"{low} – {high}"
        parts = [_one(v) for v in value]
        if len(set(parts)) == 1 and parts[0] in (OTHER, NONE):
            return parts[0]  # "other" in every property of a multi-property breakdown: one Other
        return " / ".join(parts) if parts else NONE
    return _one(value)


def _cohort(value: Any, series_label: str | None, series_name: str | None) -> str:
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else value
    if _one(value) in ("0", "all"):
        return ALL_USERS
    if series_label:
        prefix = f"{series_name} - " if series_name else ""
        if prefix and series_label.startswith(prefix):
            return series_label[len(prefix) :]
        return series_label
    return f"Cohort {_one(value)}"


def period_label(compare_label: Any) -> str | None:
    """A compared insight's period: `current` / `previous` as words; None without compare."""
    if _missing(compare_label):
        return None
    text = str(compare_label)
    return {"current": "Current period", "previous": "Previous period"}.get(text, text.capitalize())
