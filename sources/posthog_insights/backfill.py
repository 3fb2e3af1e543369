"""Backfills: the same insight recomputed over past date windows, each window kept as its own snapshot.

A backfill is another plan for the same retrieval: each window is a retrieve with `filters_override=
{"date_from", "date_to"}` (PostHog applies it like a dashboard's date filter), recorded under the variant
`window=<from>..<to>` so it never overwrites the plain result nor another window. Windows already loaded
are remembered in the source's dlt state (ledger.py), so an interrupted backfill resumes where it stopped,
spending the same request budget and pacer as a run.

The insights are named (`insights`: one cheap `force_cache` read each resolves a short id and gives the
definition), or are every insight on a dashboard (`backfill_dashboards`): one list read per dashboard
finds them (PostHog's `dashboards` list filter, with `kinds` and `tags` as the list's own filters, one
kind per read), and each window is retrieved as that dashboard shows it (`from_dashboard`, which PostHog
merges the window over: the dashboard's other filters stay), under the variant
`dashboard=<id>;window=<from>..<to>`.
"""

from __future__ import annotations

import calendar
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from posthog_insights.client import PostHogClient
from posthog_insights.config import BackfillSettings, parse_filter
from posthog_insights.errors import (
    AuthenticationError,
    NotFoundError,
    PostHogInsightsError,
    RateLimitExceededError,
)
from posthog_insights.events import Event, ListedPage, Plan
from posthog_insights.ledger import WINDOW_MARK
from posthog_insights.listing import unlisted_refresh
from posthog_insights.outcomes import utcnow
from posthog_insights.planner import Candidate
from posthog_insights.session import Session

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def date_windows(start: date, end: date, size: str) -> list[tuple[date, date]]:
    """Consecutive inclusive windows covering [start, end]: days, ISO weeks (Mon-Sun) or calendar months,
    the first and last clipped to the range."""
    windows: list[tuple[date, date]] = []
    cursor = start
    while cursor <= end:
        if size == "day":
            last = cursor
        elif size == "week":
            last = cursor + timedelta(days=6 - cursor.weekday())
        else:
            last = cursor.replace(day=calendar.monthrange(cursor.year, cursor.month)[1])
        last = min(last, end)
        windows.append((cursor, last))
        cursor = last + timedelta(days=1)
    return windows


def window_variant(start: date, end: date, from_dashboard: int | None) -> str:
    variant = f"{WINDOW_MARK}{start.isoformat()}..{end.isoformat()}"
    return f"dashboard={from_dashboard};{variant}" if from_dashboard is not None else variant


def backfilled(state: Mapping[str, Any], project_id: int) -> Mapping[str, Any]:
    """`id|variant` of the windows loaded so far."""
    done: Mapping[str, Any] = state.get("projects", {}).get(str(project_id), {}).get("backfilled", {})
    return done


class Backfill:
    """The plan of a backfill: each insight asked for, over each window not loaded yet."""

    def __init__(self, session: Session, personal_api_key: str, state: Mapping[str, Any]) -> None:
        if not isinstance(session.settings, BackfillSettings):
            raise TypeError("a backfill needs BackfillSettings")
        self.session = session
        self.settings: BackfillSettings = session.settings
        self._key = personal_api_key
        self._state = state
        self.done = False

    def continue_in(self, state: Mapping[str, Any]) -> None:
        self._state = state

    async def events(self) -> AsyncIterator[Event]:
        settings = self.settings
        report = self.session.report
        windows = date_windows(settings.first_day, settings.last_day, settings.window)
        base = settings.retrieve_params()
        candidates: list[Candidate] = []
        planned: set[tuple[int, int, str]] = set()
        metas: dict[tuple[int, int], Mapping[str, Any]] = {}

        def plan(project_id: int, insight_id: int, dashboard: int | None, params: Mapping[str, str]) -> None:
            """The insight's windows not loaded yet, as `dashboard` shows them (None: as it is)."""
            done = backfilled(self._state, project_id)
            for start, end in windows:
                variant = window_variant(start, end, dashboard)
                if done.get(f"{insight_id}|{variant}") or (project_id, insight_id, variant) in planned:
                    continue
                planned.add((project_id, insight_id, variant))
                window = json.dumps({"date_from": start.isoformat(), "date_to": end.isoformat()})
                query = {**params, "filters_override": window}
                candidates.append(
                    Candidate(
                        True,
                        _EPOCH,
                        project_id,
                        insight_id,
                        variant,
                        tuple(sorted(query.items())),
                        unlisted_refresh(settings),
                    )
                )

        async with self.session.client(self._key) as client:
            for project_id in settings.projects:
                listed: set[int] = set()
                for ref in settings.refs:
                    try:
                        # one cheap read resolves a short id and gives the definition the shapes need
                        meta = await client.get_insight(project_id, ref, refresh="force_cache", params=base)
                    except NotFoundError:
                        report.unfetched.append(
                            f"insight {ref} in project {project_id}: HTTP 404 not found; check the id or"
                            " short id"
                        )
                        continue
                    insight_id = int(meta["id"])
                    if insight_id not in listed:
                        listed.add(insight_id)
                        report.insights_listed += 1
                        yield ListedPage(project_id, [meta], utcnow())
                    metas.setdefault((project_id, insight_id), meta)
                    plan(project_id, insight_id, settings.from_dashboard, base)
                for dashboard in settings.dashboard_ids:
                    try:
                        items = await self._insights_on(client, project_id, dashboard)
                    except AuthenticationError:
                        raise
                    except RateLimitExceededError as exc:
                        report.stopped_early = report.stopped_early or str(exc)
                        break
                    except PostHogInsightsError as exc:
                        report.unfetched.append(f"dashboard {dashboard} in project {project_id}: {exc}")
                        continue
                    if not items:
                        narrowed = " with these kinds and tags" if settings.kinds or settings.tags else ""
                        report.unfetched.append(
                            f"dashboard {dashboard} in project {project_id}: no insight on it{narrowed};"
                            " check the dashboard id (the number in its URL) and --kind/--tag"
                        )
                        continue
                    fresh = [item for item in items if int(item["id"]) not in listed]
                    listed.update(int(item["id"]) for item in fresh)
                    report.insights_listed += len(fresh)
                    if fresh:
                        yield ListedPage(project_id, fresh, utcnow())
                    shown = {"from_dashboard": str(dashboard)}
                    for item in items:
                        metas.setdefault((project_id, int(item["id"])), item)
                        plan(project_id, int(item["id"]), dashboard, shown)
                if report.stopped_early:
                    break
        self.done = True
        yield Plan(candidates, metas)

    async def _insights_on(
        self, client: PostHogClient, project_id: int, dashboard: int
    ) -> list[Mapping[str, Any]]:
        """Every insight on the dashboard (kinds and tags narrowing them), by PostHog's own list filters:
        one read per kind, as the list filters one kind at a time; without `refresh`, so it never computes.
        The results the items carry are dropped: each window gets its own."""
        settings = self.settings
        narrowed = parse_filter(settings.kinds, settings.tags, None, [dashboard], None)
        found: dict[int, Mapping[str, Any]] = {}
        for params in narrowed.list_params():
            pages = client.list_insights(project_id, params=params, page_size=settings.page_size)
            async with contextlib.aclosing(pages):
                async for page in pages:
                    for item in page:
                        found.setdefault(int(item["id"]), {k: v for k, v in item.items() if k != "result"})
        return [found[key] for key in sorted(found)]
