"""What a run will spend, said before it starts, so that a user sizing a schedule can see it.

Before the first request only the last run's record is at hand: how many insights each project had.
Which of them are stale shows only in the list, so the figures are upper bounds, per way of refreshing:

- every run reads the list once: ceil(insights / page_size) pages per project (and filter set);
- `force_cache` spends nothing more;
- the async modes through the list (collection.py) read a page again, or poll its one job, until its jobs
  end: about twice per page when jobs finish within seconds, once more every few seconds while they run;
- `blocking` through the list (list_calculation.py) reads a window per `max_list_calculations` stale
  insights, plus at most one more per page for its remainder;
- by retrieves, a retrieve per stale or missing insight (per insight under the force modes); an async
  retrieve's job is then polled until it ends, at least once.

The least time is what PostHog's windows (`rate_limit`) allow that many requests, however fast the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.pacer import Windows
from posthog_insights.planner import FORCE_MODES

_JOB_MODES = frozenset({"async", "lazy_async", "force_async"})


@dataclass(frozen=True)
class CostEstimate:
    """The most a run will spend (None where the last run left no record to count from)."""

    insights: int | None
    pages: int | None
    requests: int | None
    how: str
    polls: bool  # async jobs by retrieves: each polled at least once more, not counted in `requests`
    least_s: float | None

    def describe(self) -> str:
        if self.insights is None or self.pages is None:
            return f"first run: the list's pages, then {self.how}; the summary shows what it spent"
        text = f"{self.insights:,} insights known from the last run: {self.pages:,} list pages"
        text += f", then {self.how}"
        if self.requests is not None:
            text += f"; at most {self.requests:,} requests" + (" and their polls" if self.polls else "")
        if self.least_s:
            text += f", which PostHog's rate limit spreads over at least {_duration(self.least_s)}"
        return text


def estimate_cost(
    settings: PostHogInsightsSettings, known: Mapping[int, int], filter_sets: int = 1
) -> CostEstimate:
    """The run's cost from `known` (insights per project, as the last run left them)."""
    mode = settings.refresh
    if settings.list_job_refresh is not None:
        how = "about a read more of each page to collect its jobs"
    elif mode == "force_cache":
        how = "nothing more (force_cache)"
    elif settings.list_calculations > 1:
        how = f"a list read per {settings.list_calculations} stale insights"
    elif mode in FORCE_MODES:
        how = "a retrieve per insight"
    else:
        how = "a retrieve per stale or missing insight"
    polls = settings.list_job_refresh is None and mode in (*_JOB_MODES, "async_except_on_cache_miss")
    if polls:
        how += " and a poll or more per job"
    if not known or not any(known.values()):
        return CostEstimate(None, None, None, how, polls, None)
    insights = sum(known.values())
    pages = filter_sets * sum(max(1, math.ceil(n / settings.page_size)) for n in known.values())
    if mode == "force_cache":
        more = 0
    elif settings.list_job_refresh is not None:
        more = 2 * pages  # collection: about twice per page while jobs finish within seconds
    elif settings.list_calculations > 1:
        more = math.ceil(insights / settings.list_calculations) + pages
    else:
        more = insights
    requests = pages + more
    if settings.max_requests is not None:
        requests = min(requests, int(settings.max_requests))
    return CostEstimate(insights, pages, requests, how, polls, least_time_s(requests, settings.rate_windows))


def least_time_s(requests: int, windows: Windows | None) -> float:
    """How long sliding windows of (limit, seconds) hold back `requests` sent as fast as they allow."""
    if not windows or requests <= 0:
        return 0.0
    return max(((requests - 1) // limit) * seconds for limit, seconds in windows)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
