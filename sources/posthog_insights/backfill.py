"""Backfills: the same insight recomputed over past date windows, each window kept as its own snapshot.

A backfill is another plan for the same retrieval: each window is a retrieve with `filters_override=
{"date_from", "date_to"}` (PostHog applies it like a dashboard's date filter), recorded under the variant
`window=<from>..<to>` so it never overwrites the plain result nor another window. Windows already loaded
are remembered in the source's dlt state (ledger.py), so an interrupted backfill resumes where it stopped,
spending the same request budget and pacer as a run.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any

from posthog_insights.config import BackfillSettings
from posthog_insights.errors import NotFoundError
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
        windows = date_windows(settings.first_day, settings.last_day, settings.window)
        base = settings.retrieve_params()
        candidates: list[Candidate] = []
        metas: dict[tuple[int, int], Mapping[str, Any]] = {}
        async with self.session.client(self._key) as client:
            for project_id in settings.projects:
                done = backfilled(self._state, project_id)
                for ref in settings.refs:
                    try:
                        # one cheap read resolves a short id and gives the definition the shapes need
                        meta = await client.get_insight(project_id, ref, refresh="force_cache", params=base)
                    except NotFoundError:
                        self.session.report.unfetched.append(
                            f"insight {ref} in project {project_id}: HTTP 404 not found; check the id or"
                            " short id"
                        )
                        continue
                    insight_id = int(meta["id"])
                    self.session.report.insights_listed += 1
                    yield ListedPage(project_id, [meta], utcnow())
                    metas[(project_id, insight_id)] = meta
                    for start, end in windows:
                        variant = window_variant(start, end, settings.from_dashboard)
                        if done.get(f"{insight_id}|{variant}"):
                            continue
                        window = json.dumps({"date_from": start.isoformat(), "date_to": end.isoformat()})
                        params = {**base, "filters_override": window}
                        candidates.append(
                            Candidate(
                                True,
                                _EPOCH,
                                project_id,
                                insight_id,
                                variant,
                                tuple(sorted(params.items())),
                                unlisted_refresh(settings),
                            )
                        )
        self.done = True
        yield Plan(candidates, metas)
