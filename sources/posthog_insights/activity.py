"""`insight_activity`: who changed which insight, when, and what — from the activity log endpoints.

PostHog serves the log newest first, so each run reads pages only until it reaches entries it has seen
(the newest `created_at` per project is kept in the resource's dlt state) — the github verified source's
early stop. The boundary entry is read again and merged on its id, so nothing is duplicated.
The activity log is an action of the insights viewset, so it shares the insights' rate-limit bucket: it is
read through the run's own client and pacer. A key without the `activity_log:read` scope is reported,
not fatal.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, MutableMapping
from typing import Any

import pyarrow as pa

from posthog_insights.client import PostHogClient
from posthog_insights.errors import NotFoundError, PermissionDeniedError
from posthog_insights.planner import parse_time
from posthog_insights.report import RunReport
from posthog_insights.rows import json_text

log = logging.getLogger("posthog_insights")

TABLE_ACTIVITY = "insight_activity"
_CURSORS = "newest_created_at"  # project id -> the newest created_at loaded
_TS = pa.timestamp("us", tz="UTC")
ACTIVITY_SCHEMA = pa.schema(
    [
        pa.field("project_id", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("insight_id", pa.int64()),
        pa.field("short_id", pa.string()),
        pa.field("insight_name", pa.string()),
        pa.field("activity", pa.string()),
        pa.field("scope", pa.string()),
        pa.field("user_email", pa.string()),
        pa.field("user_first_name", pa.string()),
        pa.field("is_system", pa.bool_()),
        pa.field("created_at", _TS),
        pa.field("changed_fields_json", pa.string()),
        pa.field("changes_json", pa.string()),
    ]
)
ACTIVITY_PRIMARY_KEY = ("project_id", "id")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def activity_row(project_id: int, item: Mapping[str, Any]) -> dict[str, Any]:
    detail = _mapping(item.get("detail"))
    user = _mapping(item.get("user"))
    raw_changes = detail.get("changes")
    changes: list[Any] = raw_changes if isinstance(raw_changes, list) else []
    item_id = str(item.get("item_id") or "")
    return {
        "project_id": project_id,
        "id": str(item["id"]),
        "insight_id": int(item_id) if item_id.isdigit() else None,
        "short_id": detail.get("short_id"),
        "insight_name": detail.get("name"),
        "activity": item.get("activity"),
        "scope": item.get("scope"),
        "user_email": user.get("email"),
        "user_first_name": user.get("first_name"),
        "is_system": item.get("is_system"),
        "created_at": parse_time(item.get("created_at")),
        "changed_fields_json": json_text([c.get("field") for c in changes if isinstance(c, Mapping)]),
        "changes_json": json_text(changes),
    }


async def activity_tables(
    client: PostHogClient,
    project_ids: tuple[int, ...],
    state: MutableMapping[str, Any],
    report: RunReport,
) -> AsyncIterator[pa.Table]:
    """One Arrow table per project of the entries newer than the last run's newest."""
    cursors: MutableMapping[str, str] = state.setdefault(_CURSORS, {})
    for project_id in project_ids:
        cursor = parse_time(cursors.get(str(project_id)))
        newest = cursor
        rows: list[dict[str, Any]] = []
        try:
            async for page in client.list_activity(project_id):
                reached_seen = False
                for item in page:
                    created = parse_time(item.get("created_at"))
                    if cursor is not None and created is not None and created < cursor:
                        reached_seen = True
                        break
                    rows.append(activity_row(project_id, item))
                    if created is not None and (newest is None or created > newest):
                        newest = created
                if reached_seen:
                    break
        except (PermissionDeniedError, NotFoundError) as exc:
            log.warning("insight_activity skipped for project %s: %s", project_id, exc)
            report.unfetched.append(f"activity of project {project_id}: {exc}")
            continue
        if newest is not None:
            cursors[str(project_id)] = newest.isoformat()
        if rows:
            yield pa.Table.from_pylist(rows, schema=ACTIVITY_SCHEMA)
