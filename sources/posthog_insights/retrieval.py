"""The retrieval: what the listing could not answer, retrieved under the plan's `refresh`, async jobs
polled to their end, and the outcomes handed to the table side.

A bounded pool of workers spends the request budget on the plan's candidates in order; the pacer bounds
what is in flight, a small queue what is held, so memory stays flat however large the project is. A
calculation PostHog refuses for want of a free slot is asked for again (calculations.py), never recorded
as the insight's error. With a `segment_idle_s`, the run ends when the rate windows would hold it back
anyway (nothing in flight, the next request that far off), and what is left goes to the session's next
run: candidates not started, and jobs already running, which that run polls on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from posthog_insights import tables
from posthog_insights.calculations import OrganisationBusy, refused
from posthog_insights.client import PostHogClient, job_response
from posthog_insights.collection import has_new_result, running_job_id
from posthog_insights.errors import (
    NotFoundError,
    PermissionDeniedError,
    PostHogInsightsError,
    QueryError,
    RateLimitExceededError,
)
from posthog_insights.events import Deferred, Event, Found, ListedPage, Paused, Plan, Retrieved
from posthog_insights.list_calculation import (
    ListRead,
    Unit,
    compute_by_list,
    first_of,
    group_list_reads,
    members_of,
)
from posthog_insights.outcomes import outcome_of
from posthog_insights.planner import SYNCHRONOUS_MODES, Candidate, Job, parse_time, spend_budget
from posthog_insights.rows import Outcome
from posthog_insights.session import Session

log = logging.getLogger("posthog_insights")

_QUEUE_SIZE: Final = 64
_MAX_WORKERS: Final = 256
_POLL_FIRST_S: Final = 0.2
_POLL_MAX_S: Final = 5.0
# How long the dispatcher waits for an outcome before it looks whether the run should end here.
_SEGMENT_CHECK_S: Final = 0.1
_BATCH: Final = 32  # outcomes per event handed to the table side
# Modes a retrieve sends that start a background job (async_except_on_cache_miss is never sent: the
# planner turns it into `async` or `blocking` per insight).
_JOB_MODES: Final = frozenset({"async", "lazy_async", "force_async"})


class _OutOfBudget(Exception):
    """The request budget ran out while a calculation waited for a slot: defer it to the next run."""


class _Progress:
    """Logs retrieve progress every few seconds, so a long run is visibly alive."""

    def __init__(self, total: int, every_s: float = 5.0) -> None:
        self.total = total
        self.every_s = every_s
        self.started = self.last = time.monotonic()

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s or done == self.total:
            self.last = now
            log.info(
                "retrieved %d/%d insights (%.1f/s)", done, self.total, done / max(now - self.started, 1e-9)
            )


class Retrieval:
    """`events(event)` for each event of the listing: what the list answered, then the plan's outcomes."""

    def __init__(self, session: Session, personal_api_key: str) -> None:
        self.session = session
        self.settings = session.settings
        self._key = personal_api_key
        self._stop: str | None = None
        self._draining = False  # the run's data is enough for one package: take no new candidate

    async def events(self, event: Event) -> AsyncIterator[Event]:
        if isinstance(event, ListedPage):
            if event.answered:
                yield Retrieved([(outcome, item, final) for (outcome, final), item in _pair(event)])
        elif isinstance(event, Plan):
            async for found in self._run(event):
                yield found
        elif isinstance(event, Retrieved):
            yield event  # collected by the listing's pages (collection.py)
        elif isinstance(event, Paused):
            yield event  # the run ends here: the table side hands on what it has

    async def _run(self, plan: Plan) -> AsyncIterator[Event]:
        session = self.session
        report = session.report
        budget = None
        if self.settings.max_requests is not None:
            budget = self.settings.max_requests - session.stats.count()
        units = group_list_reads(plan.candidates, self.settings.list_calculations, self.settings.page_size)
        now_units, later = spend_budget(units, budget, key=first_of)
        now_batch = members_of(now_units)
        if session.runs == 1:  # later runs of the session go on with the same plan
            report.retrieves_planned = len(now_batch)
            reads = sum(1 for unit in now_units if isinstance(unit, ListRead))
            log.info(
                "plan: %d insights to refresh by %d requests (%d of them list reads), %d deferred to the"
                " next run",
                len(now_batch),
                len(now_units),
                reads,
                len(members_of(later)),
            )
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        left: list[Candidate] = members_of(later)  # for the next run of the pipeline, first in line
        carried: list[Candidate] = []  # for the next run of this session
        pending: deque[Unit] = deque(now_units)
        working: dict[asyncio.Task[None], Unit] = {}  # what each worker is on, with its job once started
        progress = _Progress(len(now_batch))
        segment_over = False

        async with self.session.client(self._key) as client:

            async def worker() -> None:
                task: Any = asyncio.current_task()
                while pending and not self._draining:  # shared: each unit is taken by one worker
                    cand = pending.popleft()
                    working[task] = cand
                    if isinstance(cand, ListRead):

                        def handed_on(owed: tuple[Candidate, ...], task: Any = task) -> None:
                            working[task] = ListRead(owed)  # a run ending here carries only these

                        again = await self._compute(client, cand, plan.metas, queue, handed_on)
                        pending.extendleft(reversed(again))  # this worker goes on with them
                        del working[task]
                        for _ in range(len(cand.members) - len(again)):
                            await queue.put(("done", None))
                        continue

                    def job_started(job: Job, task: Any = task, cand: Candidate = cand) -> None:
                        working[task] = replace(cand, job=job)
                        report.jobs_started += 1

                    meta = plan.metas.get((cand.project_id, cand.insight_id), {})
                    await self._fetch(client, cand, meta, queue, job_started)
                    del working[task]
                    await queue.put(("done", None))

            # A bounded pool of workers, not one task per insight (a task and its frame cost a few KB): as
            # many as requests may be in flight, or, where jobs are polled, as many as may poll at once. A
            # worker takes a candidate only when it can go on with it: a run that ends early leaves the rest.
            polling = any(c.refresh in _JOB_MODES or c.job is not None for c in now_batch)
            size = _MAX_WORKERS if polling else self.settings.concurrency
            tasks = [asyncio.create_task(worker()) for _ in range(min(len(now_batch), size))]
            finished = 0
            batch: list[Found] = []
            # One get() kept across the waits: a get() cancelled by a timeout can lose the item it took.
            getter: asyncio.Future[tuple[str, Any]] | None = None
            try:
                while finished < len(now_batch):
                    getter = getter or asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getter}, timeout=_SEGMENT_CHECK_S)
                    if not done:
                        if batch:
                            yield Retrieved(batch)
                            batch = []
                        if not self._stop and self._segment_over():
                            segment_over = True
                            break
                        continue
                    kind, payload = getter.result()
                    getter = None
                    if kind == "done":
                        finished += 1
                        progress.tick(finished)
                    elif kind == "found":
                        batch.append(payload)
                    elif kind == "left":
                        left.append(payload)
                    if len(batch) >= _BATCH:
                        yield Retrieved(batch)
                        batch = []
                    if self.session.run_is_full() and not self._stop:
                        self._draining = True  # no new candidate; the run ends once nothing is in flight
                    if self._draining and self.session.pacer.in_flight == 0:
                        segment_over = True
                        break
            finally:
                running: list[asyncio.Future[Any]] = [*tasks, *([getter] if getter is not None else [])]
                for task in running:
                    task.cancel()
                await asyncio.gather(*running, return_exceptions=True)
        # what came in while the workers stopped, and what they were on: the next run goes on with it
        while not queue.empty():
            kind, payload = queue.get_nowait()
            if kind == "found":
                batch.append(payload)
            elif kind == "left":
                left.append(payload)
        if batch:
            yield Retrieved(batch)
        if segment_over:
            carried = members_of([*working.values(), *pending])
        session.pending = Plan(sorted(carried), plan.metas) if carried else None
        deferred: dict[int, list[int]] = {pid: [] for pid in self.settings.projects}
        for cand in (*carried, *left):
            if cand.variant == self.settings.variant:  # a backfill's windows resume from their own record
                deferred.setdefault(cand.project_id, []).append(cand.insight_id)
        report.deferred = len(left) + len(carried)
        if session.warn_if_incomplete and session.pending is None and not report.complete:
            reasons = [*([report.stopped_early] if report.stopped_early else []), *report.unfetched]
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            log.warning("the run could not fetch everything, the next run goes on: %s%s", reasons[0], more)
        yield Deferred(deferred)

    def _segment_over(self) -> bool:
        """The run ends here when the next request is held back long enough to load what it has, or it has
        recorded enough data for one package and nothing is in flight any more."""
        pacer = self.session.pacer
        if self._draining or self.session.run_is_full():
            self._draining = True
            return pacer.in_flight == 0
        idle_s = self.session.segment_idle_s
        return idle_s is not None and pacer.quiet_for() >= idle_s

    async def _compute(
        self,
        client: PostHogClient,
        read: ListRead,
        metas: Mapping[tuple[int, int], Mapping[str, Any]],
        queue: asyncio.Queue[tuple[str, Any]],
        handed_on: Callable[[tuple[Candidate, ...]], None],
    ) -> list[Candidate]:
        """One list read that computes a few candidates (list_calculation.py); the members it did not
        answer, to be retrieved on their own while the budget lasts. `handed_on` hears which members are
        still owed after each outcome is queued: a run that ends while the queue is full must not carry
        (and retrieve again) the members whose outcomes it already recorded."""
        members = list(read.members)
        try:
            if self._stop:
                raise _OutOfBudget
            self.session.report.computing_reads += 1
            found, again = await compute_by_list(client, self.session.slots, self.settings, read, metas)
        except (_OutOfBudget, OrganisationBusy):
            found, again = [], members
        except RateLimitExceededError as exc:
            self._stop = self._stop or str(exc)
            self.session.report.stopped_early = self.session.report.stopped_early or str(exc)
            found, again = [], members
        except PostHogInsightsError as exc:
            log.info("a list read computing %d insights failed (%s); retrieving each", len(members), exc)
            found, again = [], members
        owed = list(members)
        for outcome in found:
            await queue.put(("found", outcome))
            shown, _, final = outcome
            if final:
                key = (shown.project_id, shown.insight_id, shown.variant)
                owed = [c for c in owed if (c.project_id, c.insight_id, c.variant) != key]
                handed_on(tuple(owed))
        if again and (self._stop or self.session.budget_spent()):
            for cand in again:  # the next run retrieves them first
                await queue.put(("left", cand))
                await queue.put(("done", None))
            return []
        return again

    async def _fetch(
        self,
        client: PostHogClient,
        cand: Candidate,
        meta: Mapping[str, Any],
        queue: asyncio.Queue[tuple[str, Any]],
        job_started: Callable[[Job], None],
    ) -> None:
        """Retrieve (or poll) one candidate and queue what it came to; every outcome but CancelledError is
        handled here, so a worker goes on with the next candidate."""
        pid, iid = cand.project_id, cand.insight_id

        async def found(outcome: Outcome, final: bool = True) -> None:
            await queue.put(("found", (outcome, meta, final)))

        settings = self.settings
        try:
            if self._stop:
                await queue.put(("left", cand))
                return
            if cand.job is not None:
                await found(await self._poll(client, cand, cand.job))
                return
            try:
                response = await self._retrieve(client, cand)
            except NotFoundError:
                # deleted since it was listed: the next listing flags it
                log.info("insight %s in project %s is gone (404); the next run flags it deleted", iid, pid)
                return
            except QueryError as exc:
                await found(
                    outcome_of(settings, cand, None, "retrieve", status=tables.STATUS_ERROR, error=str(exc))
                )
                return
            job = _pollable_job(cand, response)
            finished = _finished_job(cand, response) if job is None else None
            if finished is not None:
                # The job this retrieve started (or found) had already completed: its results are the new
                # snapshot, whatever stale result the retrieve itself carries.
                if response.get("result") is not None:
                    await found(outcome_of(settings, cand, response, "retrieve"), final=False)
                await found(outcome_of(settings, cand, finished, "poll"))
                return
            if job is None:
                if response.get("result") is None and cand.refresh == "force_async":
                    note = "force_async started a job without a pollable id; the next run reads it from cache"
                    outcome = outcome_of(
                        settings, cand, response, "retrieve", status=tables.STATUS_PENDING, error=note
                    )
                else:
                    outcome = outcome_of(settings, cand, response, "retrieve")
                await found(outcome)
                return
            job_started(job)
            if response.get("result") is not None:
                await found(outcome_of(settings, cand, response, "retrieve"), final=False)
            await found(await self._poll(client, cand, job))
        except _OutOfBudget:
            await queue.put(("left", cand))
        except RateLimitExceededError as exc:
            self._stop = self._stop or str(exc)
            self.session.report.stopped_early = self.session.report.stopped_early or str(exc)
            await queue.put(("left", cand))
        except PostHogInsightsError as exc:
            self.session.report.unfetched.append(f"insight {iid} in project {pid}: {exc}")
            await queue.put(("left", cand))

    async def _retrieve(self, client: PostHogClient, cand: Candidate) -> dict[str, Any]:
        """One retrieve under the candidate's `refresh`. A calculation PostHog refused for lack of a free
        slot is asked for again when one is likely free (CalculationSlots), while the request budget lasts
        and until the organisation has refused everything for `poll_deadline_s`: a refusal is "later",
        never the insight's error."""
        params = dict(cand.params)
        pid, iid = cand.project_id, cand.insight_id
        if cand.refresh not in SYNCHRONOUS_MODES:
            return await client.get_insight(pid, iid, refresh=cand.refresh, params=params)
        slots = self.session.slots
        while True:
            try:
                async with slots.calculation() as slot:
                    response = await client.get_insight(pid, iid, refresh=cand.refresh, params=params)
                    if not refused(response):
                        return response
                    slot.refused()
            except OrganisationBusy:
                raise PostHogInsightsError(
                    f"PostHog refused every calculation for {slots.deadline_s:g} s"
                    " (concurrency_limit_exceeded: the organisation's calculation slots were taken);"
                    " the next run retries it first"
                ) from None
            if self._stop or self.session.budget_spent():
                raise _OutOfBudget

    async def _poll(self, client: PostHogClient, cand: Candidate, job: Job) -> Outcome:
        """Poll the query-status endpoint until the job completes or the deadline passes.

        A key without the `query:read` scope gets 403 there; then the insight is re-read in force_cache
        mode until a newer result lands in the cache.
        """
        settings = self.settings
        pid, iid = cand.project_id, cand.insight_id
        deadline = job.started + settings.poll_deadline_s
        delay = _POLL_FIRST_S
        use_status_endpoint = True
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stop:
                await client.cancel_query(pid, job.query_id)
                note = f"job {job.query_id} still running after {settings.poll_deadline_s:g}s; cancelled"
                return outcome_of(
                    settings,
                    cand,
                    None,
                    "poll",
                    status=tables.STATUS_PENDING,
                    error=note,
                    query_id=job.query_id,
                )
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, _POLL_MAX_S)
            if use_status_endpoint:
                try:
                    status = await client.query_status(pid, job.query_id)
                except (PermissionDeniedError, NotFoundError):
                    use_status_endpoint = False
                    continue
                if status.state == "complete" and status.response is not None:
                    return outcome_of(settings, cand, status.response, "poll")
                if status.state == "error":
                    message = status.error_message or "calculation failed"
                    return outcome_of(
                        settings,
                        cand,
                        None,
                        "poll",
                        status=tables.STATUS_ERROR,
                        error=message,
                        query_id=job.query_id,
                    )
            else:
                response = await client.get_insight(pid, iid, refresh="force_cache", params=dict(cand.params))
                if has_new_result(response, job):
                    return outcome_of(settings, cand, response, "retrieve")


def _pair(event: ListedPage) -> list[tuple[tuple[Outcome, bool], Mapping[str, Any]]]:
    by_id = {int(item["id"]): item for item in event.items}
    return [((outcome, final), by_id[outcome.insight_id]) for outcome, final in event.answered]


def _pollable_job(cand: Candidate, response: Mapping[str, Any]) -> Job | None:
    job_id = running_job_id(response) if cand.refresh in _JOB_MODES else None
    return Job(job_id, parse_time(response.get("last_refresh")), time.monotonic()) if job_id else None


def _finished_job(cand: Candidate, response: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The results of an async job the response reports as complete already (fast queries), else None."""
    status = response.get("query_status")
    if cand.refresh not in _JOB_MODES or not isinstance(status, Mapping):
        return None
    if not status.get("complete") or status.get("error"):
        return None
    results = job_response(status)
    return results if results is not None and results.get("result") is not None else None
