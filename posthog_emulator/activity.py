"""Activity log records, as PostHog's `ActivityLogSerializer` shows them, and their pages.

Seeded insights get their "created" record lazily (on the first activity request of a project), so
start-up does not pay for a log nobody reads; API changes (create, update, delete, restore) add
records with `detail.changes` holding each field's before/after.
"""

from __future__ import annotations

import copy
import random
import uuid
from collections.abc import Iterable
from typing import Any

from posthog_emulator.models import Insight
from posthog_emulator.timeutil import iso


def entry(
    insight: Insight,
    activity: str,
    changes: list[dict[str, Any]] | None,
    user: dict[str, Any],
    at: float,
    key: str,
) -> dict[str, Any]:
    """One record; `key` makes its id (a UUID) unique and reproducible."""
    return {
        "id": str(uuid.UUID(int=random.Random(key).getrandbits(128), version=4)),
        "user": {"first_name": user["first_name"], "email": user["email"]},
        "unread": False,
        "is_system": False,
        "activity": activity,
        "scope": "Insight",
        "item_id": str(insight.id),
        "detail": {
            "id": None,
            "changes": changes,
            "merge": None,
            "trigger": None,
            "name": insight.name or insight.derived_name,
            "short_id": insight.short_id,
            "type": None,
        },
        "created_at": iso(at),
    }


def change(field: str, before: Any, after: Any) -> dict[str, Any]:
    return {"type": "Insight", "action": "changed", "field": field, "before": before, "after": after}


def seeded_log(insights: Iterable[Insight], users: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """The "created" records of seeded insights, oldest first."""
    ordered = sorted((i for i in insights if i.seeded), key=lambda i: (i.created_at, i.id))
    return [
        entry(
            insight, "created", None, users[insight.created_by], insight.created_at, f"created:{insight.id}"
        )
        for insight in ordered
    ]


def page(
    log: list[dict[str, Any]], item_id: str | None, *, limit: int, page: int
) -> tuple[list[dict[str, Any]], bool, bool, int]:
    """PostHog's page-based activity pagination, newest first: (results, has_next, has_previous, total)."""
    records = log if item_id is None else [record for record in log if record["item_id"] == item_id]
    start = (page - 1) * limit
    results = records[::-1][start : start + limit]
    return copy.deepcopy(results), start + limit < len(records), page > 1, len(records)
