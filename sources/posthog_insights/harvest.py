"""One run against PostHog: list, plan, retrieve, poll; outcomes streamed out as Arrow batches.

Phase 1 lists every project (the list carries each insight's cached result, so most outcomes cost no
extra request). Phase 2 spends the request budget on the planner's candidates, oldest result first, on a
bounded pool of asyncio workers; the pacer bounds what is in flight, a small queue bounds what is held, so
memory stays flat however large the project is. The results the listing answered are recorded while the
rate windows hold the retrieves back (a bounded backlog), and when nothing is in flight for a while the run
says so (`Idle`), so that checkpoints.py can load what it has meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import islice
from typing import Any, TypeVar

from posthog_insights import settings
from posthog_insights.activity import TABLE_ACTIVITY, activity_tables
from posthog_insights.calculations import CalculationSlots, OrganisationBusy, refused
from posthog_insights.client import PostHogClient, RequestStats, job_response
from posthog_insights.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PostHogInsightsError,
    QueryError,
    RateLimitExceededError,
)
from posthog_insights.options import RunOptions
from posthog_insights.pacer import Pacer
from posthog_insights.planner import (
    SYNCHRONOUS_MODES,
    Candidate,
    candidate,
    parse_time,
    retrieve_refresh,
    spend_budget,
)
from posthog_insights.recorder import Batch, Recorder, project_state
from posthog_insights.records import Outcome
from posthog_insights.report import RunReport

log = logging.getLogger("posthog_insights")

LookupInsights = Callable[[int, list[int]], Iterable[Mapping[str, Any]]]
_QUEUE_SIZE = 64
_MAX_WORKERS = 256
_POLL_FIRST_S = 0.2
_POLL_MAX_S = 5.0
# Modes a retrieve sends that start a background job (async_except_on_cache_miss is never sent: the
# planner turns it into `async` or `blocking` per insight).
_JOB_MODES = frozenset({"async", "lazy_async", "force_async"})
# How long the retrieve phase waits for an outcome before it asks the pacer whether the run is idle.
_IDLE_CHECK_S = 0.1
# Results the listing answered are recorded (JSON dump, digest, tidy rows: ~0.3 ms each) while the rate
# window holds the retrieves back, or after them, rather than before the first retrieve goes out; up to this
# many bytes of list pages are held for it.
_BACKLOG_BYTES = 16 * 1024 * 1024
_BACKLOG_CHUNK = 16  # recorded between two looks at the retrieves' outcomes


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# What a candidate's metadata is read for until its retrieve: the `insights` row (records.insight_row)
# and the shape of its result (shapes read `query` and `filters`).
_META_FIELDS = (
    "id", "short_id", "name", "derived_name", "description", "query", "filters", "tags", "dashboards",
    "dashboard_tiles", "saved", "favorited", "created_at", "last_modified_at", "deleted",
)  # fmt: skip


def _without_result(item: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata kept for a candidate until its retrieve: only the fields read later, users as their email.

    Held for every candidate at once (they are retrieved oldest first), so every KB here is a KB per
    insight of the project; the cached result and the rest of the payload are not kept.
    """
    meta = {k: item[k] for k in _META_FIELDS if k in item}
    for user in ("created_by", "last_modified_by"):
        value = item.get(user)
        meta[user] = {"email": value.get("email")} if isinstance(value, Mapping) else value
    return meta


class _Progress:
    """Logs retrieve progress every few seconds, so a long run is visibly alive."""

    def __init__(self, total: int, every_s: float = 5.0) -> None:
        self.total = total
        self.every_s = every_s
        self.started = time.monotonic()
        self.last = self.started

    def tick(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s or done == self.total:
            self.last = now
            rate = done / max(now - self.started, 1e-9)
            log.info("retrieved %d/%d insights (%.1f/s)", done, self.total, rate)


@dataclass(frozen=True)
class Idle:
    """Between two batches: nothing is in flight and the pacer holds the next request `seconds` more.

    The recorder's buffers were just emptied, so the dlt state says exactly what has been emitted: a
    checkpoint here loads a consistent package in time the run would have spent waiting anyway.
    """

    seconds: float


class _OutOfBudget(Exception):
    """The request budget ran out while a calculation waited for a slot: defer it to the next run."""


@dataclass(frozen=True)
class _Job:
    query_id: str
    previous_refresh: datetime | None


class Harvest:
    """Drives one run; `batches()` yields lists of (table name, Arrow table)."""

    def __init__(
        self,
        options: RunOptions,
        personal_api_key: str,
        state: MutableMapping[str, Any],
        report: RunReport,
        lookup_insights: LookupInsights | None = None,
        include_activity: bool = False,
    ) -> None:
        self.options = options
        self.include_activity = include_activity
        #: How many calculations the run asks for at once; adapts to what the organisation has free.
        self.slots = CalculationSlots(options.concurrency, deadline_s=options.poll_deadline_s)
        self._key = personal_api_key
        self._state = state
        self.report = report
        self._lookup = lookup_insights
        self._recorder = Recorder(state, report)
        self._stop: str | None = None
        self.stats = RequestStats()
        #: When set, the retrieve phase yields `Idle` whenever nothing is in flight and the pacer holds the
        #: next request at least this long (checkpoints.py loads what the run has so far meanwhile).
        self.idle_checkpoint_s: float | None = None
        self._pacer: Pacer | None = None
        # listed results not recorded yet: (project, insight) -> (outcome, item, final, page bytes held)
        self._backlog: dict[tuple[int, int], tuple[Outcome, Mapping[str, Any], bool, float]] = {}
        self._backlog_bytes = 0.0
        # only a run whose retrieves the rate windows hold back has time to record them in
        self._paced_retrieves = bool(options.rate_limits) and (
            options.refresh != "force_cache" or options.from_dashboard is not None
        )

    def use_state(self, state: MutableMapping[str, Any]) -> None:
        """Carry on in `state`: dlt hands each load package of a checkpointed run its own state dict."""
        self._recorder.use_state(state)
        self._state = state

    # -- outcome helpers ---------------------------------------------------------------------------
    def _outcome(
        self,
        target: Candidate,
        status: str,
        via: str,
        response: Mapping[str, Any] | None = None,
        error: str | None = None,
        query_id: str | None = None,
    ) -> Outcome:
        return Outcome(
            project_id=target.project_id,
            insight_id=target.insight_id,
            status=status,
            seen_at=utcnow(),
            refresh_mode=self.options.refresh,
            fetched_via=via,
            response=response,
            error_message=error,
            query_id=query_id,
            variant=target.variant,
            from_dashboard=self.options.from_dashboard,
        )

    def _from_payload(self, target: Candidate, payload: Mapping[str, Any], via: str) -> Outcome:
        """The outcome a payload shows by itself: a result, a calculation error, or a cache miss."""
        query_status = payload.get("query_status")
        if payload.get("result") is not None:
            return self._outcome(target, settings.STATUS_OK, via, payload)
        if isinstance(query_status, Mapping) and query_status.get("error"):
            message = str(query_status.get("error_message") or "calculation failed")
            return self._outcome(target, settings.STATUS_ERROR, via, payload, message)
        return self._outcome(target, settings.STATUS_CACHE_MISS, via, payload)

    # -- the run -----------------------------------------------------------------------------------
    async def batches(self) -> AsyncIterator[Batch | Idle]:
        opts = self.options
        pacer = self._pacer = Pacer(opts.rate_limits, opts.concurrency)
        client = PostHogClient(
            opts.host,
            self._key,
            pacer=pacer,
            timeout_s=opts.timeout_s,
            max_retries=opts.max_retries,
            max_wait_s=opts.max_wait_s,
            backoff_s=opts.retry_backoff_s,
            stats=self.stats,
        )
        async with client:
            candidates: list[Candidate] = []
            metas: dict[tuple[int, int], dict[str, Any]] = {}
            async for batch in self._plan(client, candidates, metas):
                yield batch
            if not self._stop:
                async for item in self._retrieve_all(client, candidates, metas):
                    yield item
            else:
                self._defer(candidates)
            if self.include_activity and not self._stop:
                async for activity in activity_tables(client, opts.project_ids, self._state, self.report):
                    yield [(TABLE_ACTIVITY, activity)]
        self._record_backlog()  # what is left: a run without retrieves, or one cut short
        self.report.requests = {
            **self.stats.as_dict(),
            "paced_wait_s": round(pacer.waited_s, 3),
            "refused_calculations": self.slots.refusals,
            "lowest_calculation_limit": self.slots.lowest_limit,
        }
        self.report.stopped_early = self._stop
        final = self._recorder.take(last=True)
        if final:
            yield final

    async def _plan(
        self,
        client: PostHogClient,
        candidates: list[Candidate],
        metas: dict[tuple[int, int], dict[str, Any]],
    ) -> AsyncIterator[Batch]:
        """Phase 1: list every project; what the list answers is recorded, the rest become candidates."""
        for project_id in self.options.project_ids:
            async for batch in self._list_project(client, project_id, candidates, metas):
                yield batch
            if self._stop:
                return

    async def _list_project(
        self,
        client: PostHogClient,
        project_id: int,
        candidates: list[Candidate],
        metas: dict[tuple[int, int], dict[str, Any]],
    ) -> AsyncIterator[Batch]:
        opts = self.options
        previously_deferred = {int(i) for i in project_state(self._state, project_id)["deferred"]}
        listed: set[int] = set()
        candidates_before = len(candidates)
        complete = True
        force = opts.from_dashboard is not None
        try:
            for params in opts.insight_filter.list_params():
                async for page in client.list_insights(project_id, params=params, page_size=opts.page_size):
                    now = utcnow()
                    item_bytes = page.nbytes / max(len(page), 1)
                    for item in page:
                        insight_id = int(item["id"])
                        if insight_id in listed:
                            continue
                        listed.add(insight_id)
                        self.report.insights_listed += 1
                        refresh = self._refresh_for(item, now)
                        retrieve = refresh is not None
                        backing_off = retrieve and self._recorder.failed_recently(
                            project_id, insight_id, opts.variant, item, now, opts.retry_errors_after_s
                        )
                        if backing_off:
                            retrieve = False
                            self.report.retry_later += 1
                        # held until the run's end, so a 404 on its retrieve can still flag it deleted
                        self._recorder.insight(project_id, item, now, hold=retrieve)
                        target = candidate(
                            project_id,
                            item,
                            refresh or opts.refresh,
                            deferred=insight_id in previously_deferred,
                            variant=opts.variant,
                            params=opts.retrieve_params(),
                        )
                        listed_outcome = self._from_payload(target, item, "list")
                        if retrieve:
                            candidates.append(target)
                            metas[(project_id, insight_id)] = _without_result(item)
                        if not (retrieve or backing_off):
                            self._record_listed(listed_outcome, item, True, item_bytes)
                        elif item.get("result") is not None and not force:
                            # a stale result is still a real snapshot of the past: keep it; the refresh's
                            # outcome (or, backing off, the last error) stays the insight's latest
                            self._record_listed(listed_outcome, item, False, item_bytes)
                    if self._recorder.should_flush():
                        yield self._recorder.take()
        except RateLimitExceededError as exc:
            self._stop = str(exc)
            complete = False
        except AuthenticationError:
            raise  # a rejected key fails every project alike: stop the run (earlier packages stay loaded)
        except PostHogInsightsError as exc:
            self.report.unfetched.append(f"project {project_id}: {exc}")
            complete = False
        log.info(
            "project %s: listed %d insights, %d need a retrieve",
            project_id,
            len(listed),
            len(candidates) - candidates_before,
        )
        if complete and opts.insight_filter.is_complete_listing and not force:
            vanished = sorted(self._recorder.known_insight_ids(project_id) - listed)
            if vanished:
                previous = list(self._lookup(project_id, vanished)) if self._lookup else []
                found = {int(r["id"]) for r in previous}
                previous += [{"id": i} for i in vanished if i not in found]
                self._recorder.deleted_rows(project_id, previous, utcnow())

    def _refresh_for(self, item: Mapping[str, Any], now: datetime) -> str | None:
        """The `refresh` a listed insight is retrieved with, or None when the list answered it.

        A dashboard's view is always retrieved: the list does not apply dashboard filters.
        """
        if self.options.from_dashboard is None:
            return retrieve_refresh(item, self.options.refresh, now)
        return self.unlisted_refresh()

    def unlisted_refresh(self) -> str:
        """The `refresh` for a view whose cache state the list does not show (a dashboard's, a backfill
        window's). `async_except_on_cache_miss` asks for `blocking` there: it computes a miss in this run
        and returns a fresh result as it is, the cheapest way to keep the mode's promise unseen."""
        mode = self.options.refresh
        return "blocking" if mode == "async_except_on_cache_miss" else mode

    def _after_outcome(self, outcome: Outcome) -> None:
        """Hook for subclasses that track progress per outcome (backfills)."""

    def _defer(self, pending: Iterable[Candidate]) -> None:
        by_project: dict[int, list[int]] = {pid: [] for pid in self.options.project_ids}
        for cand in pending:
            by_project.setdefault(cand.project_id, []).append(cand.insight_id)
        for project_id, ids in by_project.items():
            project_state(self._state, project_id)["deferred"] = ids
        self.report.deferred = sum(len(ids) for ids in by_project.values())

    async def _retrieve_all(
        self,
        client: PostHogClient,
        candidates: list[Candidate],
        metas: dict[tuple[int, int], dict[str, Any]],
    ) -> AsyncIterator[Batch | Idle]:
        budget = None
        if self.options.max_requests is not None:
            budget = self.options.max_requests - self.stats.count()
        now_batch, later = spend_budget(candidates, budget)
        self.report.retrieves_planned = len(now_batch)
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize=_QUEUE_SIZE)
        not_done: list[Candidate] = list(later)
        pending = iter(now_batch)

        async def worker() -> None:
            for cand in pending:  # shared: each candidate is taken by exactly one worker
                await self._fetch(client, cand, metas[(cand.project_id, cand.insight_id)], queue)

        # A bounded pool of workers, not one task per insight: a task and its frame cost a few KB, which
        # made memory grow with the project. The pacer bounds requests in flight; the pool only needs to
        # be large enough to keep that many async jobs polling at once.
        tasks = [asyncio.create_task(worker()) for _ in range(min(len(now_batch), _MAX_WORKERS))]
        finished = 0
        progress = _Progress(len(now_batch))
        getter: asyncio.Task[tuple[str, Any]] | None = None
        try:
            while finished < len(now_batch):
                if getter is None:
                    getter = asyncio.ensure_future(queue.get())
                if self._backlog and not getter.done() and self._held_back():
                    self._record_backlog(_BACKLOG_CHUNK)
                    await asyncio.sleep(0)  # responses that came meanwhile are read before the next chunk
                    if self._recorder.should_flush():
                        yield self._recorder.take()
                    continue
                if self.idle_checkpoint_s is not None:
                    done, _ = await asyncio.wait({getter}, timeout=_IDLE_CHECK_S)
                    if not done:
                        idle = self._idle_for()
                        if idle is not None:
                            self._record_backlog()  # the window closed during the wait: all of it now
                            batch = self._recorder.take()
                            if batch:
                                yield batch
                            yield idle
                        continue
                kind, payload = await getter
                getter = None
                if kind == "done":
                    finished += 1
                    progress.tick(finished)
                elif kind == "outcome":
                    outcome, meta = payload
                    self._record_backlog_of(outcome.project_id, outcome.insight_id)  # the stale one first
                    self._recorder.outcome(outcome, meta)
                    self._after_outcome(outcome)
                elif kind == "deleted":
                    project_id, meta = payload
                    self._record_backlog_of(project_id, int(meta["id"]))
                    self._recorder.insight(project_id, meta, utcnow(), deleted=True)
                elif kind == "unfetched":
                    cand, line = payload
                    not_done.append(cand)
                    self.report.unfetched.append(line)
                elif kind == "skipped":
                    not_done.append(payload)
                if self._recorder.should_flush():
                    yield self._recorder.take()
        finally:
            running: list[asyncio.Task[Any]] = [*tasks, *([getter] if getter is not None else [])]
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        self._defer(not_done)

    # -- listed results recorded while retrieves are in flight ------------------------------------
    def _record_listed(self, outcome: Outcome, item: Mapping[str, Any], final: bool, nbytes: float) -> None:
        """Record a result the listing answered, or keep it for `_record_backlog` while there is room."""
        if not self._paced_retrieves or self._backlog_bytes + nbytes > _BACKLOG_BYTES:
            self._recorder.outcome(outcome, item, final=final)
            return
        self._backlog[(outcome.project_id, outcome.insight_id)] = (outcome, item, final, nbytes)
        self._backlog_bytes += nbytes

    def _held_back(self) -> bool:
        """The loop is free for the backlog: no response is due and the rate window (or a 429's pause)
        holds the next request back. Recording at any other time would only delay requests."""
        return self._pacer is not None and self._pacer.quiet_for() > 0

    def _record_backlog_of(self, project_id: int, insight_id: int) -> None:
        entry = self._backlog.pop((project_id, insight_id), None)
        if entry is not None:
            outcome, item, final, nbytes = entry
            self._recorder.outcome(outcome, item, final=final)
            self._backlog_bytes -= nbytes

    def _record_backlog(self, limit: int | None = None) -> None:
        """Record up to `limit` kept results (all of them by default), oldest first."""
        for key in list(islice(self._backlog, limit)):
            self._record_backlog_of(*key)

    def _idle_for(self) -> Idle | None:
        """An `Idle` when no request is in flight and none can go for `idle_checkpoint_s` or longer."""
        if self._pacer is None or self.idle_checkpoint_s is None:
            return None
        quiet = self._pacer.quiet_for()
        return Idle(quiet) if quiet >= self.idle_checkpoint_s else None

    async def _fetch(
        self,
        client: PostHogClient,
        cand: Candidate,
        meta: dict[str, Any],
        queue: asyncio.Queue[tuple[str, Any]],
    ) -> None:
        pid, iid = cand.project_id, cand.insight_id
        try:
            if self._stop:
                await queue.put(("skipped", cand))
                return
            try:
                response = await self._retrieve(client, cand)
            except NotFoundError:
                await queue.put(("deleted", (pid, meta)))
                return
            except QueryError as exc:
                await queue.put(
                    (
                        "outcome",
                        (self._outcome(cand, settings.STATUS_ERROR, "retrieve", None, str(exc)), meta),
                    )
                )
                return
            job = self._pollable_job(cand, response)
            finished = self._finished_job(cand, response) if job is None else None
            if finished is not None:
                # The job this retrieve started (or found) had already completed: its results are the
                # new snapshot, whatever stale result the retrieve itself carries.
                if response.get("result") is not None:
                    await queue.put(("outcome", (self._from_payload(cand, response, "retrieve"), meta)))
                await queue.put(("outcome", (self._from_payload(cand, finished, "poll"), meta)))
                return
            if job is None:
                if response.get("result") is None and cand.refresh == "force_async":
                    note = "force_async started a job without a pollable id; the next run reads it from cache"
                    outcome = self._outcome(cand, settings.STATUS_PENDING, "retrieve", response, note)
                else:
                    outcome = self._from_payload(cand, response, "retrieve")
                await queue.put(("outcome", (outcome, meta)))
                return
            if response.get("result") is not None:
                await queue.put(("outcome", (self._from_payload(cand, response, "retrieve"), meta)))
            outcome = await self._poll(client, cand, job)
            await queue.put(("outcome", (outcome, meta)))
        except _OutOfBudget:
            await queue.put(("skipped", cand))
        except RateLimitExceededError as exc:
            self._stop = self._stop or str(exc)
            await queue.put(("skipped", cand))
        except PostHogInsightsError as exc:
            await queue.put(("unfetched", (cand, f"insight {iid} in project {pid}: {exc}")))
        finally:
            await queue.put(("done", None))

    async def _retrieve(self, client: PostHogClient, cand: Candidate) -> dict[str, Any]:
        """One retrieve under the candidate's `refresh`. A calculation PostHog refused for lack of a free
        slot is asked for again when one is likely free (CalculationSlots), while the request budget lasts
        and until the organisation has refused everything for `poll_deadline_s`: a refusal is "later",
        never the insight's error."""
        params = dict(cand.params)
        pid, iid = cand.project_id, cand.insight_id
        if cand.refresh not in SYNCHRONOUS_MODES:
            return await client.get_insight(pid, iid, refresh=cand.refresh, params=params)
        while True:
            try:
                async with self.slots.calculation() as slot:
                    response = await client.get_insight(pid, iid, refresh=cand.refresh, params=params)
                    if not refused(response):
                        return response
                    slot.refused()
            except OrganisationBusy:
                raise PostHogInsightsError(
                    f"PostHog refused every calculation for {self.slots.deadline_s:g} s"
                    " (concurrency_limit_exceeded: the organisation's calculation slots were taken);"
                    " the next run retries it first"
                ) from None
            budget = self.options.max_requests
            if self._stop or (budget is not None and self.stats.count() >= budget):
                raise _OutOfBudget

    def _pollable_job(self, cand: Candidate, response: Mapping[str, Any]) -> _Job | None:
        status = response.get("query_status")
        if cand.refresh not in _JOB_MODES or not isinstance(status, Mapping):
            return None
        if status.get("complete") or status.get("error") or not status.get("id"):
            return None
        return _Job(str(status["id"]), parse_time(response.get("last_refresh")))

    def _finished_job(self, cand: Candidate, response: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The results of an async job the response reports as complete already (fast queries), else None."""
        status = response.get("query_status")
        if cand.refresh not in _JOB_MODES or not isinstance(status, Mapping):
            return None
        if not status.get("complete") or status.get("error"):
            return None
        results = job_response(status)
        return results if results is not None and results.get("result") is not None else None

    async def _poll(self, client: PostHogClient, cand: Candidate, job: _Job) -> Outcome:
        """Poll the query-status endpoint until the job completes or the deadline passes.

        A key without the `query:read` scope gets 403 there; then the insight is re-read in force_cache
        mode until a newer result lands in the cache.
        """
        pid, iid = cand.project_id, cand.insight_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.poll_deadline_s
        delay = _POLL_FIRST_S
        use_status_endpoint = True
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._stop:
                await client.cancel_query(pid, job.query_id)
                note = f"job {job.query_id} still running after {self.options.poll_deadline_s:g}s; cancelled"
                return self._outcome(cand, settings.STATUS_PENDING, "poll", None, note, job.query_id)
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, _POLL_MAX_S)
            if use_status_endpoint:
                try:
                    status = await client.query_status(pid, job.query_id)
                except (PermissionDeniedError, NotFoundError):
                    use_status_endpoint = False
                    continue
                if status.state == "complete" and status.response is not None:
                    return self._from_payload(cand, status.response, "poll")
                if status.state == "error":
                    message = status.error_message or "calculation failed"
                    return self._outcome(cand, settings.STATUS_ERROR, "poll", None, message, job.query_id)
            else:
                response = await client.get_insight(pid, iid, refresh="force_cache", params=dict(cand.params))
                refreshed = parse_time(response.get("last_refresh"))
                newer = refreshed is not None and (
                    job.previous_refresh is None or refreshed > job.previous_refresh
                )
                if response.get("result") is not None and newer:
                    return self._from_payload(cand, response, "retrieve")


T = TypeVar("T")


def iterate_sync(batches: AsyncIterator[T]) -> Iterator[T]:
    """Drive the async run from dlt's synchronous extract, on an event loop private to this run.

    httpx's AsyncClient and the pacer's primitives live in that loop only, so every run gets fresh ones.
    Between two batches the loop is paused while dlt writes the batch: that is also what bounds memory.
    """
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(batches))
            except StopAsyncIteration:
                return
    finally:
        loop.run_until_complete(batches.aclose())  # type: ignore[attr-defined]
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
