"""Backfills: the same insight recomputed over past date windows, each window kept as its own snapshot.

Each window is a retrieve with `filters_override={"date_from", "date_to"}` (PostHog applies it like a
dashboard's date filter), recorded under the variant `window=<from>..<to>` so it never overwrites the
plain result nor another window. Windows already loaded are remembered in the source's dlt state, so an
interrupted backfill resumes where it stopped, spending the same request budget and pacer as a run.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import AsyncIterator, Iterable, MutableMapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any

from posthog_insights import settings
from posthog_insights.client import PostHogClient
from posthog_insights.errors import ConfigError, NotFoundError
from posthog_insights.harvest import Harvest, LookupInsights, utcnow
from posthog_insights.options import RunOptions
from posthog_insights.planner import Candidate
from posthog_insights.recorder import Batch, project_state
from posthog_insights.records import Outcome
from posthog_insights.report import RunReport

WINDOW_SIZES = ("day", "week", "month")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_day(value: str, setting: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{setting}: {value!r} is not a date; use YYYY-MM-DD") from None


def date_windows(start: date, end: date, size: str) -> list[tuple[date, date]]:
    """Consecutive inclusive windows covering [start, end]: days, ISO weeks (Mon-Sun) or calendar months,
    the first and last clipped to the range."""
    if size not in WINDOW_SIZES:
        raise ConfigError(f"window: {size!r} is not one of {', '.join(WINDOW_SIZES)}")
    if end < start:
        raise ConfigError(f"to: {end} is before from: {start}")
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
    variant = f"window={start.isoformat()}..{end.isoformat()}"
    return f"dashboard={from_dashboard};{variant}" if from_dashboard is not None else variant


class BackfillHarvest(Harvest):
    """A run whose candidates are (insight, window) pairs instead of the listing's stale insights."""

    def __init__(
        self,
        options: RunOptions,
        personal_api_key: str,
        state: MutableMapping[str, Any],
        report: RunReport,
        insight_refs: Sequence[str],
        windows: Sequence[tuple[date, date]],
        lookup_insights: LookupInsights | None = None,
    ) -> None:
        super().__init__(options, personal_api_key, state, report, lookup_insights)
        self.insight_refs = list(insight_refs)
        self.windows = list(windows)

    def _done(self, project_id: int) -> MutableMapping[str, Any]:
        done: MutableMapping[str, Any] = project_state(self._state, project_id).setdefault("backfilled", {})
        return done

    async def _plan(
        self,
        client: PostHogClient,
        candidates: list[Candidate],
        metas: dict[tuple[int, int], dict[str, Any]],
    ) -> AsyncIterator[Batch]:
        base = self.options.retrieve_params()
        for project_id in self.options.project_ids:
            done = self._done(project_id)
            for ref in self.insight_refs:
                try:
                    # one cheap read resolves a short id and gives the definition the shapes need
                    meta = await client.get_insight(project_id, ref, refresh="force_cache", params=base)
                except NotFoundError:
                    self.report.unfetched.append(
                        f"insight {ref} in project {project_id}: HTTP 404 not found; check the id or short id"
                    )
                    continue
                insight_id = int(meta["id"])
                self.report.insights_listed += 1
                self._recorder.insight(project_id, meta, utcnow())
                metas[(project_id, insight_id)] = meta
                for start, end in self.windows:
                    variant = window_variant(start, end, self.options.from_dashboard)
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
                            self.unlisted_refresh(),
                        )
                    )
        if False:  # pragma: no cover - makes this an async generator like the method it overrides
            yield []

    def _after_outcome(self, outcome: Outcome) -> None:
        if outcome.status == settings.STATUS_OK:
            self._done(outcome.project_id)[f"{outcome.insight_id}|{outcome.variant}"] = True

    def _defer(self, pending: Iterable[Candidate]) -> None:
        """Nothing to carry over: the `backfilled` record is where the next backfill resumes."""
        self.report.deferred = sum(1 for _ in pending)
