"""The list endpoint's filters and ordering, as PostHog's `_filter_request` and `order_queryset`.

Ordering is the part clients get wrong: without `order`, PostHog sorts by a nullable `order` column
with no tie-breaker, so Postgres may return ties in a different order on every query and offset
pages repeat or skip insights. `ordered` reproduces that with a fresh shuffle of the ties per
request; with an explicit `order` it is stable (ties by ascending id).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from posthog_emulator import errors, synth
from posthog_emulator.models import KEY_USER_ID, Insight, str_to_bool
from posthog_emulator.timeutil import parse_date

Check = Callable[[Insight], bool]

# Field names `order=` accepts (any model field, like Django's order_by).
ORDER_FIELDS: frozenset[str] = frozenset(
    {
        "id",
        "short_id",
        "name",
        "derived_name",
        "description",
        "created_at",
        "created_by",
        "last_modified_at",
        "last_modified_by",
        "updated_at",
        "favorited",
        "saved",
        "order",
        "deleted",
        "last_viewed_at",
        "last_refresh",
        "refreshing",
        "is_sample",
        "team",
        "team_id",
    }
)
# date filter parameter -> (insight attribute, True for "after")
DATE_FILTERS: dict[str, tuple[str, bool]] = {
    "date_from": ("last_modified_at", True),
    "date_to": ("last_modified_at", False),
    "created_date_from": ("created_at", True),
    "created_date_to": ("created_at", False),
    "last_viewed_date_from": ("last_viewed_at", True),
    "last_viewed_date_to": ("last_viewed_at", False),
}


def list_filters(params: Mapping[str, str], now: float) -> list[Check]:
    """One check per filter parameter; raises PostHog's 400 for malformed JSON arrays or dates."""
    checks: list[Check] = []
    for key, raw in params.items():
        if key == "saved":
            checks.append(_saved(str_to_bool(raw)))
        elif key == "favorited":
            checks.append(lambda insight: insight.favorited)
        elif key == "user":
            checks.append(_attr_in("created_by", {KEY_USER_ID}))
        elif key == "short_id":
            checks.append(_attr_in("short_id", {raw}))
        elif key == "created_by":
            ids = _json_list(key, raw)
            if ids:
                try:
                    checks.append(_attr_in("created_by", {int(value) for value in ids}))
                except (TypeError, ValueError) as exc:
                    raise errors.validation("created_by must be a JSON array of user ids", key) from exc
        elif key == "tags":
            tags = {str(tag) for tag in _json_list(key, raw)}
            if tags:
                checks.append(_tags_any(tags))
        elif key == "dashboards":
            checks.extend(_on_dashboard(dashboard_id) for dashboard_id in _json_list(key, raw))
        elif key == "insight":
            checks.append(_insight_type(raw))
        elif key == "search":
            checks.append(_search(raw.lower()))
        elif key in DATE_FILTERS:
            attr, after = DATE_FILTERS[key]
            try:
                bound = parse_date(raw, now).timestamp()
            except ValueError as exc:
                raise errors.validation(f"Invalid date: {raw}", key) from exc
            checks.append(_time_bound(attr, bound, after=after))
    return checks


def ordered(insights: list[Insight], order: str | None, shuffle_seed: str) -> list[Insight]:
    """Sort like PostHog; `shuffle_seed` (unique per request) orders the default sort's ties."""
    if not order:
        shuffled = list(insights)
        random.Random(shuffle_seed).shuffle(shuffled)
        shuffled.sort(key=lambda insight: (insight.order is None, insight.order or 0))
        return shuffled
    descending = order.startswith("-")
    name = order.lstrip("-")
    if name not in ORDER_FIELDS:
        raise errors.validation(f"Cannot resolve keyword '{name}' into field.", "order")
    by_id = sorted(insights, key=lambda insight: insight.id)

    def sort_key(insight: Insight) -> tuple[bool, Any]:
        value = _order_value(insight, name)
        return (value is None, 0 if value is None else value)

    # Postgres puts NULLs last ascending and first descending; ties keep ascending id (stable sort).
    by_id.sort(key=sort_key, reverse=descending)
    return by_id


def _order_value(insight: Insight, name: str) -> Any:
    if name in ("team", "team_id"):
        return insight.project_id
    if name == "last_refresh":
        return None
    if name in ("refreshing", "is_sample"):
        return False
    return getattr(insight, name)


def _json_list(name: str, raw: str) -> list[Any]:
    if not raw:
        return []
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.validation(f"{name} must be a JSON array", name) from exc
    if not isinstance(value, list):
        raise errors.validation(f"{name} must be a JSON array", name)
    return value


# One factory per filter, so that each check captures its own value.
def _saved(wanted: bool) -> Check:
    if wanted:  # saved, or on a dashboard
        return lambda insight: insight.saved or bool(insight.dashboards)
    return lambda insight: not insight.saved


def _attr_in(attr: str, values: set[Any]) -> Check:
    return lambda insight: getattr(insight, attr) in values


def _insight_type(wanted: str) -> Check:
    """PostHog's `insight` filter, clause by clause: JSON is any query that is not a wrapper node
    around HogQL or around one of the six insight queries; SQL is a wrapper around HogQL; a classic
    kind is a legacy insight whose `filters.insight` equals it exactly, or an InsightVizNode around
    its query; any other value matches legacy filters only."""
    source_kind = synth.SOURCE_KIND_BY_INSIGHT.get(wanted)

    def check(insight: Insight) -> bool:
        query = insight.query
        legacy = not query and insight.filters.get("insight") == wanted
        if not query:
            return legacy and wanted not in ("JSON", "SQL")
        source = query.get("source")
        inner = source.get("kind") if isinstance(source, dict) else None
        wrapped = query.get("kind") in synth.WRAPPER_KINDS
        if wanted == "JSON":
            return not (wrapped and (inner == "HogQLQuery" or inner in synth.INSIGHT_BY_SOURCE_KIND))
        if wanted == "SQL":
            return wrapped and inner == "HogQLQuery"
        return source_kind is not None and query.get("kind") == "InsightVizNode" and inner == source_kind

    return check


def _tags_any(tags: set[str]) -> Check:
    return lambda insight: not tags.isdisjoint(insight.tags)


def _on_dashboard(dashboard_id: Any) -> Check:
    return lambda insight: dashboard_id in insight.dashboards


def _search(needle: str) -> Check:
    def check(insight: Insight) -> bool:
        texts = (insight.name, insight.derived_name, insight.description, *insight.tags)
        return any(needle in (text or "").lower() for text in texts)

    return check


def _time_bound(attr: str, bound: float, *, after: bool) -> Check:
    def check(insight: Insight) -> bool:
        value = getattr(insight, attr)
        if value is None:
            return False
        return bool(value > bound) if after else bool(value < bound)

    return check
