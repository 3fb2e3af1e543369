"""The list path of the async modes: calculations started by list pages, results collected by reading the
same pages again.

A page read with `refresh=async` (or `lazy_async`, `force_async`) starts a background job for each of its
stale or missing items, as a retrieve of each would (docs/posthog-api.md "Listing"). A later read of the
page without `refresh` shows each of them with its new result once the job has written it, with the
running job's status while it runs, and with neither once the job ended without a result. One read of a
page stands for up to a page of polls: a whole project's refresh costs about two reads per page, where
the per-insight path costs a retrieve and one or more polls per insight.

Each round looks at the pages whose jobs are due and takes, per page, the cheaper of the two ways: a page
with two or more jobs left is read again (one request for all of them); a page with one job left has
that job polled (also one request, with a smaller answer and, for a job that failed, its error message,
which a page does not show).

The jobs of ours in flight are capped (`max_jobs`): the listing reads its next page with `refresh` only
when a page's worth of new jobs fits under the cap, and collects first otherwise. A job still running at
`poll_deadline_s` is cancelled and its insight recorded `pending`; one left when the request budget or
the rate limit ends the run is recorded `pending` and left running, so that the next run reads its
result from the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from posthog_insights import tables
from posthog_insights.client import PostHogClient
from posthog_insights.errors import (
    NotFoundError,
    PermissionDeniedError,
    PostHogInsightsError,
    RateLimitExceededError,
)
from posthog_insights.events import Event, Found, Retrieved
from posthog_insights.outcomes import outcome_of
from posthog_insights.planner import Candidate, Job, parse_time
from posthog_insights.session import Session

# A page's first look comes this long after its jobs started, until the run has seen how long they take.
_FIRST_LOOK_S: Final = 1.0
_LOOK_MIN_S: Final = 0.2
_LOOK_MAX_S: Final = 5.0


@dataclass
class TrackedJob:
    """A job a list page started for one insight, with what its outcome needs."""

    cand: Candidate
    job: Job
    meta: Mapping[str, Any]


@dataclass
class _PageJobs:
    """The jobs one list page started, looked at together."""

    project_id: int
    params: Mapping[str, str]
    offset: int
    jobs: dict[int, TrackedJob]
    due: float
    delay: float = _LOOK_MIN_S
    looked: bool = False


def started_job(item: Mapping[str, Any]) -> Job | None:
    """The job a read with `refresh` shows running for an item, or None.

    A result is the job's when it is newer than the job's start (`start_time`, on PostHog's clock, less
    a second), not merely newer than the result the read showed: under `force_async` the read shows no
    result, and the old one is still in the cache.
    """
    job_id = running_job_id(item)
    if job_id is None:
        return None
    status = item["query_status"]
    start = parse_time(status.get("start_time"))
    before = start - timedelta(seconds=1) if start is not None else parse_time(item.get("last_refresh"))
    return Job(job_id, before, time.monotonic())


def running_job_id(item: Mapping[str, Any]) -> str | None:
    """The id of the running job a read shows for an item (PostHog attaches it while the job runs)."""
    status = item.get("query_status")
    if not isinstance(status, Mapping) or status.get("complete") or status.get("error"):
        return None
    job_id = status.get("id")
    return str(job_id) if job_id else None


def has_new_result(item: Mapping[str, Any], job: Job) -> bool:
    refreshed = parse_time(item.get("last_refresh"))
    return (
        item.get("result") is not None
        and refreshed is not None
        and (job.previous_refresh is None or refreshed > job.previous_refresh)
    )


@dataclass
class JobPages:
    """Every job the listing's pages started and not yet collected, by page."""

    session: Session
    pages: list[_PageJobs] = field(default_factory=list)
    #: how long a page's jobs are given before its first look; learned from the looks
    estimate_s: float = _FIRST_LOOK_S
    started: int = 0
    stopped: str | None = None

    @property
    def running(self) -> int:
        return sum(len(page.jobs) for page in self.pages)

    def add(self, project_id: int, params: Mapping[str, str], offset: int, jobs: list[TrackedJob]) -> None:
        if jobs:
            self.started += len(jobs)
            self.session.report.jobs_started += len(jobs)
            due = min(t.job.started for t in jobs) + self.estimate_s
            by_id = {t.cand.insight_id: t for t in jobs}
            self.pages.append(_PageJobs(project_id, dict(params), offset, by_id, due))

    def has_room_for(self, jobs: int) -> bool:
        """Whether `jobs` more fit under the cap (always, when none of ours runs: the run must go on)."""
        running = self.running
        return running == 0 or running + jobs <= self.session.settings.max_jobs

    async def collect(
        self, client: PostHogClient, room_for: int | None = None
    ) -> AsyncGenerator[Event, None]:
        """Rounds over the due pages until every job has ended (`room_for` None) or `room_for` more jobs
        fit under the cap; each round's outcomes as one `Retrieved`."""
        while self.pages and (room_for is None or not self.has_room_for(room_for)):
            if self.stopped is not None:
                yield Retrieved(self._leave_all(self.stopped))
                return
            now = time.monotonic()
            due = [page for page in self.pages if page.due <= now]
            if not due:
                await asyncio.sleep(min(page.due for page in self.pages) - now)
                continue
            found: list[Found] = []
            for page in due:
                if self.stopped is not None:
                    break
                found.extend(await self._look(client, page))
            self.pages = [page for page in self.pages if page.jobs]
            if found:
                yield Retrieved(found)

    # -- one look at one page --------------------------------------------------------------------------

    async def _look(self, client: PostHogClient, page: _PageJobs) -> list[Found]:
        found: list[Found] = []
        settings = self.session.settings
        for iid, tracked in list(page.jobs.items()):
            if time.monotonic() >= tracked.job.started + settings.poll_deadline_s:
                del page.jobs[iid]
                await client.cancel_query(page.project_id, tracked.job.query_id)
                note = (
                    f"job {tracked.job.query_id} still running after {settings.poll_deadline_s:g}s; cancelled"
                )
                found.append(self._pending(tracked, note))
        if not page.jobs:
            return found
        try:
            if self.session.budget_spent():
                raise _Stop("request budget spent before its result was collected")
            if len(page.jobs) >= 2:
                found.extend(await self._read_page(client, page))
            else:
                (tracked,) = page.jobs.values()
                outcome = await self._poll(client, tracked)
                if outcome is not None:
                    del page.jobs[tracked.cand.insight_id]
                    found.append(outcome)
        except _Stop as stop:
            self.stopped = str(stop)
        except RateLimitExceededError as exc:
            self.session.report.stopped_early = self.session.report.stopped_early or str(exc)
            self.stopped = f"the rate limit stopped the run before its result was collected ({exc})"
        self._learn(page)
        return found

    async def _read_page(self, client: PostHogClient, page: _PageJobs) -> list[Found]:
        """Read the page again (no `refresh`: it never computes) and take what it shows of each job."""
        pages = client.list_insights(
            page.project_id,
            params=page.params,
            page_size=self.session.settings.page_size,
            offset=page.offset,
            prefetch=0,
        )
        async with contextlib.aclosing(pages):
            items: list[dict[str, Any]] = await anext(pages, [])
        found: list[Found] = []
        shown = {int(item["id"]): item for item in items if int(item["id"]) in page.jobs}
        for iid, tracked in list(page.jobs.items()):
            item = shown.get(iid)
            if item is not None and has_new_result(item, tracked.job):
                found.append((outcome_of(self.session.settings, tracked.cand, item, "list"), item, True))
            elif item is not None and running_job_id(item) is not None:
                continue  # still running
            else:
                # ended without a new result (failed, or expired), or moved off this page: its own poll says
                outcome = await self._poll(client, tracked)
                if outcome is None:
                    continue
                found.append(outcome)
            del page.jobs[iid]
        return found

    async def _poll(self, client: PostHogClient, tracked: TrackedJob) -> Found | None:
        """One poll of one job: its outcome, or None while it runs. Without the `query:read` scope (403),
        or once the status is gone (404), a `force_cache` read of the insight answers instead."""
        settings = self.session.settings
        cand, job = tracked.cand, tracked.job
        try:
            status = await client.query_status(cand.project_id, job.query_id)
        except (PermissionDeniedError, NotFoundError) as exc:
            response = await client.get_insight(
                cand.project_id, cand.insight_id, refresh="force_cache", params=dict(cand.params)
            )
            if has_new_result(response, job):
                return outcome_of(settings, cand, response, "retrieve"), tracked.meta, True
            if running_job_id(response) is not None or isinstance(exc, PermissionDeniedError):
                return None
            note = f"job {job.query_id} ended without a result"
            return self._outcome(tracked, tables.STATUS_ERROR, note)
        except PostHogInsightsError as exc:
            self.session.report.unfetched.append(
                f"insight {cand.insight_id} in project {cand.project_id}: {exc}"
            )
            return self._pending(tracked, f"its job could not be polled: {exc}")
        if status.state == "complete" and status.response is not None:
            return outcome_of(settings, cand, status.response, "poll"), tracked.meta, True
        if status.state == "error":
            return self._outcome(tracked, tables.STATUS_ERROR, status.error_message or "calculation failed")
        return None

    def _learn(self, page: _PageJobs) -> None:
        """Schedule the page's next look; the first look of each page teaches how long jobs take."""
        now = time.monotonic()
        if not page.looked:
            page.looked = True
            if page.jobs:  # too early: give later pages longer
                self.estimate_s = min(self.estimate_s * 1.5, _LOOK_MAX_S * 4)
            else:  # all done by then: perhaps earlier would have done
                self.estimate_s = max(self.estimate_s * 0.9, _LOOK_MIN_S)
        page.due = now + page.delay
        page.delay = min(page.delay * 1.5, _LOOK_MAX_S)

    # -- outcomes ----------------------------------------------------------------------------------------

    def _outcome(self, tracked: TrackedJob, status: str, note: str) -> Found:
        outcome = outcome_of(
            self.session.settings,
            tracked.cand,
            None,
            "poll",
            status=status,
            error=note,
            query_id=tracked.job.query_id,
        )
        return outcome, tracked.meta, True

    def _pending(self, tracked: TrackedJob, note: str) -> Found:
        return self._outcome(tracked, tables.STATUS_PENDING, note)

    def _leave_all(self, why: str) -> list[Found]:
        """Every job left, recorded pending and left running: its result lands in the cache, where the
        next run's listing finds it."""
        note = f"{why}; the job runs on and the next run reads its result from the cache"
        found = [self._pending(t, note) for page in self.pages for t in page.jobs.values()]
        self.pages = []
        return found


class _Stop(Exception):
    """The run can spend no more requests on collecting."""
