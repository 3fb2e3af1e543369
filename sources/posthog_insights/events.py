"""What the network side of a run hands to the table side: one type per kind of news.

The listing and the retrieval run on dlt's event loop; their events reach the table resources (dlt
transformers, in dlt's main thread) in the order each resource yields them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from posthog_insights.planner import Candidate
from posthog_insights.rows import Outcome


@dataclass(frozen=True)
class ListedPage:
    """One page of a project's listing. `answered` holds the outcomes the list gave by itself (cached
    results that need no refresh, or stale ones kept as history before their refresh)."""

    project_id: int
    items: Sequence[Mapping[str, Any]]
    seen_at: datetime
    answered: Sequence[tuple[Outcome, bool]] = ()  # (outcome, final)


@dataclass(frozen=True)
class Vanished:
    """Insights a complete listing of the project no longer shows: PostHog deleted them."""

    project_id: int
    insight_ids: Sequence[int]


@dataclass
class Plan:
    """What is left to retrieve, in the order to retrieve it, with what the shapes need of each insight.

    `metas` are the listed insights' definitions (a retrieve returns the whole insight again, but the
    outcome of a failed or refused retrieve still needs its kind)."""

    candidates: list[Candidate]
    metas: dict[tuple[int, int], Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Paused:
    """The listing stopped between two pages: the run has data enough for one load package, and the
    session's next run goes on listing."""


Found = tuple[Outcome, Mapping[str, Any], bool]  # (outcome, insight definition, final)


@dataclass(frozen=True)
class Retrieved:
    """Outcomes of retrieves and polls; a stale result's history comes before the refresh's outcome."""

    outcomes: Sequence[Found]


@dataclass(frozen=True)
class Deferred:
    """The insights this run leaves for the next, by project: retrieved first then."""

    by_project: Mapping[int, Sequence[int]]


Event = ListedPage | Vanished | Paused | Plan | Retrieved | Deferred
