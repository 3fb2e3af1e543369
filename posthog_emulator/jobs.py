"""Async calculations as PostHog's query status tracks them (`posthog/clickhouse/client/execute_async.py`).

A job's id is the insight's cache key (the query runner passes `query_id or cache_key`, and the
insights endpoints pass no query id), so one calculation per cache key runs at a time and every
item of a list page gets its own pollable id. A status lives 20 minutes after it was last stored
(when enqueued, and again when it finished); after that a poll answers 404. Finishing a job (writing
the cache) is the store's business: this module keeps the registry and PostHog's status dict.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from posthog_emulator.models import STATUS_TTL_S, Insight, Job, Variant
from posthog_emulator.timeutil import iso

CacheKey = tuple[int, int, str]
# cancel_query's answers.
CANCELLED = "Cancelled query on clickhouse"
ALREADY_COMPLETE = "Query already complete"


class Jobs:
    """The live query statuses, by id and by cache key."""

    def __init__(self) -> None:
        self._by_id: dict[str, Job] = {}
        self._by_key: dict[CacheKey, str] = {}
        #: (start, ready_at) of every job started, for introspection (how many ran at once)
        self.spans: list[tuple[float, float]] = []

    def start(
        self, insight: Insight, variant: Variant, key: CacheKey, job_id: str, now: float, delay_s: float
    ) -> Job:
        """A new running job, or the one already running for this cache key."""
        existing = self._by_id.get(job_id)
        if existing is not None and existing.state == "running" and existing.cache_key == key:
            return existing  # PostHog uses the cache key as query id to avoid duplicate calculations
        job = Job(
            id=job_id,
            project_id=insight.project_id,
            insight_id=insight.id,
            cache_key=key,
            variant=variant,
            task_id=str(uuid.UUID(int=random.Random(f"{job_id}:{now}").getrandbits(128), version=4)),
            start=now,
            ready_at=now + delay_s,
            expires_at=now + STATUS_TTL_S,
        )
        self._by_id[job_id] = job
        self._by_key[key] = job_id
        self.spans.append((job.start, job.ready_at))
        return job

    def get(self, job_id: str, now: float) -> Job | None:
        """The job, unless its status has expired (an expired one is forgotten)."""
        job = self._by_id.get(job_id)
        if job is not None and now >= job.expires_at:
            self.forget(job)
            return None
        return job

    def for_key(self, key: CacheKey, now: float) -> Job | None:
        job_id = self._by_key.get(key)
        return self.get(job_id, now) if job_id is not None else None

    def forget(self, job: Job) -> None:
        if self._by_id.get(job.id) is job:
            del self._by_id[job.id]
        if self._by_key.get(job.cache_key) == job.id:
            del self._by_key[job.cache_key]

    def running(self, project_id: int, now: float) -> list[str]:
        return sorted(
            job.id
            for job in self._by_id.values()
            if job.project_id == project_id and job.state == "running" and now < job.ready_at
        )


def finished(job: Job, *, error: str | None, results: dict[str, Any] | None) -> None:
    """Record a job's end at its ready time; the status is stored again, so it lives 20 more minutes."""
    job.end = job.ready_at
    job.expires_at = job.ready_at + STATUS_TTL_S
    if error is not None:
        job.state, job.error_message = "error", error
    else:
        job.state, job.results = "complete", results


def status(job: Job, now: float, *, show_progress: bool) -> dict[str, Any]:
    """PostHog's QueryStatus of a job (`query_progress` only on request, while it runs)."""
    progress = None
    if show_progress and job.state == "running":
        span = max(job.ready_at - job.start, 1e-6)
        done = min(1.0, max(0.0, (now - job.start) / span))
        progress = {
            "bytes_read": int(done * 5_000_000),
            "rows_read": int(done * 100_000),
            "estimated_rows_total": 100_000,
            "time_elapsed": round(done * span, 3),
            "active_cpu_time": int(done * span * 1_000_000),
        }
    return {
        "id": job.id,
        "team_id": job.project_id,
        "insight_id": job.insight_id,
        "dashboard_id": job.variant.dashboard_id,
        "complete": job.state != "running",
        "error": job.state == "error",
        "error_message": job.error_message,
        "results": job.results,
        "start_time": iso(job.start),
        "pickup_time": iso(job.start),
        "end_time": iso(job.end),
        "expiration_time": iso(job.expires_at),
        "query_async": True,
        "query_progress": progress,
        "task_id": job.task_id,
        "labels": None,
    }
