"""What one insight came to in this run (an `Outcome`), from the payload that showed it: a result, a
calculation error, a cache miss, or a status the run decided (pending, an error it saw elsewhere).

Shared by the listing, the list path's collection and the retrieval, which each see insights their own way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from posthog_insights import tables
from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.planner import Candidate
from posthog_insights.rows import Outcome


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def outcome_of(
    settings: PostHogInsightsSettings,
    target: Candidate,
    payload: Mapping[str, Any] | None,
    via: str,
    *,
    status: str | None = None,
    error: str | None = None,
    query_id: str | None = None,
) -> Outcome:
    """The outcome a payload shows (a result, a calculation error, a cache miss), or the one given."""
    if status is None:
        payload = payload or {}
        query_status = payload.get("query_status")
        if payload.get("result") is not None:
            status = tables.STATUS_OK
        elif isinstance(query_status, Mapping) and query_status.get("error"):
            status = tables.STATUS_ERROR
            error = str(query_status.get("error_message") or "calculation failed")
        else:
            status = tables.STATUS_CACHE_MISS
    return Outcome(
        project_id=target.project_id,
        insight_id=target.insight_id,
        status=status,
        seen_at=utcnow(),
        refresh_mode=settings.refresh,
        fetched_via=via,
        response=payload,
        error_message=error,
        query_id=query_id,
        variant=target.variant,
        from_dashboard=_shown_by(target, settings),
    )


def _shown_by(target: Candidate, settings: PostHogInsightsSettings) -> int | None:
    """The dashboard whose view this is: the one the retrieve names (a backfill's `--dashboard`), else
    the run's `from_dashboard`."""
    shown = dict(target.params).get("from_dashboard")
    return int(shown) if shown else settings.from_dashboard
