"""The dashboards list's filters and order, and what a dashboard's body may set, as PostHog's
`DashboardsViewSet` and `DashboardSerializer` have them.

The order is the part a client must not trust across pages: PostHog sorts by `-pinned, name` with no
tie-breaker and takes no `order` parameter, so dashboards of the same name may come back in another order
on every request. `ordered` reshuffles the ties per request, as the insights' default order does.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from posthog_emulator import errors
from posthog_emulator.models import CREATION_MODES, Dashboard

# What POST and PATCH may set (`creation_mode` is read-only: PostHog derives it from use_template and
# use_dashboard, and makes unlisted dashboards through an action of their own).
WRITABLE_FIELDS: tuple[str, ...] = ("name", "description", "pinned", "tags", "filters", "deleted")


def listed(
    dashboards: Iterable[Dashboard], *, tags: list[str], creation_mode: str | None, shuffle_seed: str
) -> list[Dashboard]:
    """The list's queryset: deleted ones out; unlisted ones out unless `creation_mode` asks for a mode;
    `tags` (repeated parameters) keep the dashboards with any of them; ordered `-pinned, name`."""
    if creation_mode is not None and creation_mode not in CREATION_MODES:
        return []
    found = [
        d
        for d in dashboards
        if not d.deleted
        and (d.creation_mode == creation_mode if creation_mode else d.creation_mode != "unlisted")
        and (not tags or not set(tags).isdisjoint(d.tags))
    ]
    return ordered(found, shuffle_seed)


def ordered(dashboards: list[Dashboard], shuffle_seed: str) -> list[Dashboard]:
    """`order_by("-pinned", "name")`: pinned first, then by name (NULL names last, as Postgres sorts them
    ascending); ties in no particular order, a new one per request."""
    shuffled = list(dashboards)
    random.Random(shuffle_seed).shuffle(shuffled)
    shuffled.sort(key=lambda d: (not d.pinned, d.name is None, d.name or ""))
    return shuffled


def clean_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The writable fields of a POST or PATCH body, checked like the serializer does."""
    clean: dict[str, Any] = {}
    for key in WRITABLE_FIELDS:
        if key not in body:
            continue
        value = body[key]
        if key == "name" and value is not None and not isinstance(value, str):
            raise errors.validation("Not a valid string.", key, "invalid")
        if key == "description" and not isinstance(value, str):
            raise errors.validation("Not a valid string.", key, "invalid")
        if key in ("pinned", "deleted") and not isinstance(value, bool):
            raise errors.validation("Must be a valid boolean.", key, "invalid")
        if key == "tags" and (not isinstance(value, list) or not all(isinstance(t, str) for t in value)):
            raise errors.validation("tags must be a list of strings", key)
        if key == "filters" and not isinstance(value, dict):
            raise errors.validation("Filters must be a dictionary", key)
        clean[key] = sorted(set(value)) if key == "tags" else value
    return clean
