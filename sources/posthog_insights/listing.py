"""The listing: every project's insights, with the cached result each one carries, and the plan of what
must still be retrieved.

The list is read without `basic` and without `refresh` (so it never computes), ordered explicitly: it
carries every insight's cached result, so most outcomes cost no request of their own. Each item is
planned as it comes (planner.py): answered by the list, or a candidate for a retrieve. Once every
project is listed, the candidates go out as one `Plan`, deferred ones first, then the oldest results.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from posthog_insights.client import LIST_PREFETCH_PAGES, PostHogClient
from posthog_insights.collection import JobPages, TrackedJob, started_job
from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.cost import estimate_cost
from posthog_insights.errors import AuthenticationError, PostHogInsightsError, RateLimitExceededError
from posthog_insights.events import Event, ListedPage, Paused, Plan, Vanished
from posthog_insights.ledger import failed_recently, known_insight_ids
from posthog_insights.outcomes import outcome_of, utcnow
from posthog_insights.planner import Candidate, candidate, retrieve_refresh
from posthog_insights.rows import Outcome
from posthog_insights.session import Session

log = logging.getLogger("posthog_insights")

# What a candidate's definition is kept for until its retrieve: the `insights` row and the shape of its
# result (shapes read `query` and `filters`); the cached result and the rest of the payload are not kept.
_META_FIELDS = ("id", "short_id", "name", "query", "filters", "last_modified_at")


def unlisted_refresh(settings: PostHogInsightsSettings) -> str:
    """The `refresh` for a view whose cache state the list does not show (a dashboard's, a backfill
    window's). `async_except_on_cache_miss` asks for `blocking` there: it computes a miss in this run and
    returns a fresh result as it is, the cheapest way to keep the mode's promise unseen."""
    mode = settings.refresh
    return "blocking" if mode == "async_except_on_cache_miss" else mode


@dataclass
class _ProjectListing:
    """Where one project's listing stands: what it has listed, what it knew before, whether it is whole."""

    known: set[int]
    deferred: set[int]
    listed: set[int] = field(default_factory=set)
    complete: bool = True
    error: PostHogInsightsError | None = None  # why its listing stopped, when it failed


class Listing:
    """Lists every project of the settings; `events()` yields ListedPage and Vanished events, then a Plan.

    The listing can stop between two pages, when the run has recorded enough data for one load package
    (`Session.run_is_full`): it yields `Paused`, and a later `events()` (the session's next run) goes on
    from the next page, with the pages already fetched ahead.
    """

    def __init__(self, session: Session, personal_api_key: str, state: Mapping[str, Any]) -> None:
        self.session = session
        self.settings = session.settings
        self._key = personal_api_key
        self._state = state  # read only: written by the table side (ledger.py)
        self._candidates: list[Candidate] = []
        self._metas: dict[tuple[int, int], Mapping[str, Any]] = {}
        # the cursor: which project, which filter set, which offset; pages fetched ahead and not read
        self._project = 0
        self._params = 0
        self._offset = 0
        self._kept: dict[int, tuple[Any, int]] = {}
        self._projects: dict[int, _ProjectListing] = {}
        # the list path of the async modes: pages read with this `refresh` start the jobs, `jobs` collects
        self._list_refresh = self.settings.list_job_refresh
        self.jobs = JobPages(session) if self._list_refresh is not None else None
        self.done = False

    def continue_in(self, state: Mapping[str, Any]) -> None:
        """Go on in the next run of the session, whose dlt state is `state`."""
        self._state = state

    async def events(self) -> AsyncIterator[Event]:
        settings = self.settings
        report = self.session.report
        if report.plan is None:
            known = {p: len(known_insight_ids(self._state, p)) for p in settings.projects}
            filter_sets = len(settings.insight_filter.list_params())
            report.plan = estimate_cost(settings, known, filter_sets).describe()
            log.info("plan: %s", report.plan)
        async with self.session.client(self._key) as client:
            while self._project < len(settings.projects):
                project_id = settings.projects[self._project]
                async for event in self._project_events(client, project_id):
                    yield event
                    if isinstance(event, Paused):
                        return
                if self.session.report.stopped_early:
                    break
                self._project += 1
                self._params = self._offset = 0
                self._kept.clear()
            self._raise_if_nothing_listed()
            if self.jobs is not None:  # every page listed: what their jobs came to
                async for event in self._collect(client, None):
                    yield event
                    if isinstance(event, Paused):
                        return
        self.done = True
        yield Plan(sorted(self._candidates), self._metas)

    def _raise_if_nothing_listed(self) -> None:
        """A run that could list no project at all (PostHog unreachable, every project refused) fails,
        so that a scheduler marks it failed: it has nothing to load and nothing to lose."""
        listings = list(self._projects.values())
        errors = [p.error for p in listings if p.error is not None]
        if errors and len(errors) == len(self.settings.projects) and not any(p.listed for p in listings):
            raise errors[0]

    async def _project_events(self, client: PostHogClient, project_id: int) -> AsyncIterator[Event]:
        settings = self.settings
        report = self.session.report
        listing = self._projects.get(project_id)
        if listing is None:
            entry = self._state.get("projects", {}).get(str(project_id), {})
            listing = self._projects[project_id] = _ProjectListing(
                known=known_insight_ids(self._state, project_id),
                deferred={int(i) for i in entry.get("deferred", [])},
            )
        param_sets = settings.insight_filter.list_params()
        try:
            while self._params < len(param_sets):
                params = param_sets[self._params]
                pages = client.list_insights(
                    project_id,
                    params=params,
                    page_size=settings.page_size,
                    refresh=self._list_refresh,
                    offset=self._offset,
                    kept=self._kept,
                    # a page read with `refresh` starts jobs: read only when the cap has room for them
                    prefetch=0 if self._list_refresh else LIST_PREFETCH_PAGES,
                )
                paused = False
                async with contextlib.aclosing(pages):
                    async for page in pages:
                        offset, self._offset = self._offset, self._offset + settings.page_size
                        now = utcnow()
                        at = [
                            ((self._params, offset + index), item)
                            for index, item in enumerate(page)
                            if int(item["id"]) not in listing.listed
                        ]
                        fresh = [item for _, item in at]
                        listing.listed.update(int(item["id"]) for item in fresh)
                        report.insights_listed += len(fresh)
                        started: list[TrackedJob] = []
                        answered = [
                            self._plan(project_id, item, now, listing.deferred, started, listed_at)
                            for listed_at, item in at
                        ]
                        if self.jobs is not None:
                            self.jobs.add(project_id, params, offset, started)
                        yield ListedPage(project_id, fresh, now, [a for a in answered if a is not None])
                        if self.session.run_is_full():
                            paused = True
                            break
                        if self.jobs is not None:
                            async for event in self._collect(client, settings.page_size):
                                yield event
                                paused = isinstance(event, Paused)
                            if paused or self.session.report.stopped_early:
                                break
                if paused:  # the pages fetched ahead are kept: the next run reads them first
                    yield Paused()
                    return
                self._params += 1
                self._offset = 0
                self._kept.clear()
        except RateLimitExceededError as exc:
            report.stopped_early = str(exc)
            listing.complete = False
        except AuthenticationError:
            raise  # a rejected key fails every project alike: stop the run
        except PostHogInsightsError as exc:
            report.unfetched.append(f"project {project_id}: {exc}")
            listing.complete = False
            listing.error = exc
        log.info("project %s: listed %d insights", project_id, len(listing.listed))
        if (
            listing.complete
            and settings.insight_filter.is_complete_listing
            and settings.from_dashboard is None
        ):
            vanished = sorted(listing.known - listing.listed)
            if vanished:
                yield Vanished(project_id, vanished)

    async def _collect(self, client: PostHogClient, room_for: int | None) -> AsyncIterator[Event]:
        """The list path's collection (until `room_for` more jobs fit, or to the end), ending with
        `Paused` where the run has data enough for one load package."""
        assert self.jobs is not None
        async with contextlib.aclosing(self.jobs.collect(client, room_for)) as rounds:
            async for event in rounds:
                yield event
                if self.session.run_is_full() and self.jobs.pages:
                    yield Paused()
                    return

    def _plan(
        self,
        project_id: int,
        item: Mapping[str, Any],
        now: datetime,
        deferred: set[int],
        started: list[TrackedJob],
        listed_at: tuple[int, int],
    ) -> tuple[Outcome, bool] | None:
        """Plan one listed insight; the outcome the list answered for it, and whether it is final. On
        the list path, a job the page started for it goes to `started` instead of a retrieve."""
        settings = self.settings
        insight_id = int(item["id"])
        dashboard_view = settings.from_dashboard is not None
        refresh = (
            unlisted_refresh(settings) if dashboard_view else retrieve_refresh(item, settings.refresh, now)
        )
        backing_off = refresh is not None and failed_recently(
            self._state, project_id, insight_id, settings.variant, item, now, settings.retry_errors_after_s
        )
        if backing_off:
            refresh = None
            self.session.report.retry_later += 1
        target = candidate(
            project_id,
            item,
            refresh or settings.refresh,
            deferred=insight_id in deferred,
            variant=settings.variant,
            params=settings.retrieve_params(),
            listed_at=listed_at,
        )
        job = started_job(item) if refresh is not None and self._list_refresh is not None else None
        meta = {k: item[k] for k in _META_FIELDS if k in item}
        if job is not None:
            started.append(TrackedJob(target, job, meta))
        elif refresh is not None:  # (on the list path: the page started no job for it)
            self._candidates.append(target)
            self._metas[(project_id, insight_id)] = meta
        if dashboard_view:
            return None  # the list shows the plain result, not the dashboard's
        if refresh is None and not backing_off:
            return outcome_of(settings, target, item, "list"), True
        if item.get("result") is not None:
            # a stale result is still a real snapshot of the past: keep it; the refresh's outcome (or,
            # backing off, the last error) stays the insight's latest
            return outcome_of(settings, target, item, "list"), False
        return None
