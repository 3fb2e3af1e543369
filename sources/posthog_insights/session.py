"""What the bounded runs of one load share: the key's pacer, the calculation limit, the counts, and the
work a run left for the next.

A plain `pipeline.run(posthog_insights_source())` makes a session of its own and does everything in one
run. The loader (`posthog_insights_cli.loader`) keeps one session over several runs of the source, each a
load package of its own: a run ends where the rate windows would idle it anyway (`segment_idle_s`) or
after `segment_bytes` of data, and the next run of the same session goes on with what was left, without
listing again. The pacer carries the windows over, so the pace is the same as one long run's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from posthog_insights.calculations import CalculationSlots
from posthog_insights.client import PostHogClient
from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.events import Event, Plan
from posthog_insights.pacer import Pacer
from posthog_insights.report import RunReport
from posthog_insights.transport import RequestStats


class Planner(Protocol):
    """What plans a run: the listing, or a backfill's windows."""

    done: bool

    def continue_in(self, state: Mapping[str, Any]) -> None: ...

    def events(self) -> AsyncIterator[Event]: ...


@dataclass
class Session:
    settings: PostHogInsightsSettings
    #: End a run when no request is in flight and the pacer holds the next one this long (None: never).
    segment_idle_s: float | None = None
    #: End a run after this many bytes of Arrow data, once the listing is done (None: never).
    segment_bytes: int | None = None
    #: Log a warning when the load ends without every insight's outcome (the CLI reports that itself).
    warn_if_incomplete: bool = True
    report: RunReport = field(default_factory=RunReport)
    stats: RequestStats = field(default_factory=RequestStats)
    pacer: Pacer = field(init=False)
    slots: CalculationSlots = field(init=False)
    #: The listing (or a backfill's plan), kept while it has more to list.
    listing: Planner | None = None
    #: What the last run left: retrieved by the next run of this session, which does not list again.
    pending: Plan | None = None
    #: The session's runs so far.
    runs: int = 0
    #: Bytes of data recorded in the current run (the table side adds, the network side reads).
    run_bytes: int = 0

    def __post_init__(self) -> None:
        settings = self.settings
        self.pacer = Pacer(settings.rate_windows, settings.concurrency)
        self.slots = CalculationSlots(settings.concurrency, deadline_s=settings.poll_deadline_s)

    def client(self, personal_api_key: str) -> PostHogClient:
        """A client on the session's pacer and counts (open it with `async with` in the running loop)."""
        s = self.settings
        return PostHogClient(
            s.origin,
            personal_api_key,
            pacer=self.pacer,
            timeout_s=s.timeout_s,
            max_retries=s.max_retries,
            max_wait_s=s.max_wait_s,
            backoff_s=s.retry_backoff_s,
            stats=self.stats,
        )

    @property
    def finished(self) -> bool:
        """Whether the last run left nothing for another."""
        listed = self.listing is None or self.listing.done
        return self.runs > 0 and listed and self.pending is None

    def start_run(self) -> bool:
        """Count a run in; True when it is the first, which lists (and reads the activity log)."""
        self.runs += 1
        self.run_bytes = 0
        return self.runs == 1

    def summary(self) -> RunReport:
        """The report, with what the session's requests came to."""
        self.report.requests = {
            **self.stats.as_dict(),
            "paced_wait_s": round(self.pacer.waited_s, 3),
            "refused_calculations": self.slots.refusals,
            "lowest_calculation_limit": self.slots.lowest_limit,
        }
        return self.report

    def budget_spent(self) -> bool:
        """Whether the run's requests have reached `max_requests`."""
        budget = self.settings.max_requests
        return budget is not None and self.stats.count() >= budget

    def run_is_full(self) -> bool:
        return self.segment_bytes is not None and self.run_bytes >= self.segment_bytes
