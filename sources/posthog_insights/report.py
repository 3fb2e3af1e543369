"""What a run did, for the summary and the exit code.

Collected while the source runs and read by the CLI after the load; it never holds the API key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunReport:
    insights_listed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    skipped_unchanged: int = 0
    retrieves_planned: int = 0
    deferred: int = 0
    deleted_flagged: int = 0
    retry_later: int = 0  # failed recently with an unchanged definition: retried after the back-off
    plan: str | None = None  # what the run expected to spend, said before its first request (cost.py)
    jobs_started: int = 0  # async calculations this run started on PostHog
    computing_reads: int = 0  # list reads that computed stale insights (blocking through the list)
    unfetched: list[str] = field(default_factory=list)  # one line each: what could not be fetched and why
    stopped_early: str | None = None  # why the run stopped before finishing (loaded what it had)
    requests: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every insight got a recorded outcome (ok, cache_miss, pending or error)."""
        return not self.unfetched and self.stopped_early is None
