"""`blocking` through the list: stale insights computed a few at a time by list reads, not a retrieve each.

A list read with `refresh=blocking` computes its stale or missing items one after another inside the
request and serves its fresh items from the cache (docs/posthog-api.md "Listing"). A read of a window of
the listing (`offset`, `limit`) that holds k of the plan's candidates therefore costs one request where
retrieves cost k. What it gives up: its k calculations run one after another, and the request lasts as
long as all of them. So the reads are small: at most `max_list_calculations` candidates each (10 by
default, which keeps a read well inside the per-request timeout at a few seconds a calculation), over a
window no wider than a page, and the run's `concurrency` reads go at once, as retrieves would. A window
with one candidate is sent as a retrieve: the same one request, with a smaller answer.

An item the read shows with a result is its candidate's outcome (a result PostHog still finds fresh is
its answer, as a blocking retrieve's would be); a calculation error with its message is recorded as it
is. An item the read does not show, shows without a result, or shows refused for want of a calculation
slot is retrieved on its own, which waits for a slot as every blocking retrieve does.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from posthog_insights.calculations import CalculationSlots, refused
from posthog_insights.client import PostHogClient
from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.events import Found
from posthog_insights.outcomes import outcome_of
from posthog_insights.planner import Candidate


@dataclass(frozen=True)
class ListRead:
    """One list read that computes its `members` (candidates of one project and filter set, by offset)."""

    members: tuple[Candidate, ...]

    @property
    def first(self) -> Candidate:
        """The member that decides the read's place in the plan's order (deferred first, oldest first)."""
        return min(self.members)

    @property
    def offset(self) -> int:
        return _listed_at(self.members[0])[1]

    @property
    def limit(self) -> int:
        return _listed_at(self.members[-1])[1] - self.offset + 1


Unit = Candidate | ListRead


def first_of(unit: Unit) -> Candidate:
    return unit.first if isinstance(unit, ListRead) else unit


def members_of(units: Iterable[Unit]) -> list[Candidate]:
    return [c for unit in units for c in (unit.members if isinstance(unit, ListRead) else (unit,))]


def _listed_at(cand: Candidate) -> tuple[int, int]:
    assert cand.listed_at is not None
    return cand.listed_at


def group_list_reads(candidates: Iterable[Candidate], most: int, span: int) -> list[Unit]:
    """The plan's candidates as units of work: list reads of up to `most` blocking candidates within
    `span` consecutive positions of the listing, and single candidates for the rest."""
    units: list[Unit] = []
    groups: dict[tuple[int, int], list[Candidate]] = defaultdict(list)
    for cand in candidates:
        if most > 1 and cand.refresh == "blocking" and cand.listed_at is not None and cand.job is None:
            groups[(cand.project_id, cand.listed_at[0])].append(cand)
        else:
            units.append(cand)
    for group in groups.values():
        group.sort(key=lambda c: _listed_at(c)[1])
        window: list[Candidate] = []
        for cand in group:
            if window and (len(window) >= most or _listed_at(cand)[1] - _listed_at(window[0])[1] >= span):
                units.append(_unit(window))
                window = []
            window.append(cand)
        if window:
            units.append(_unit(window))
    return units


def _unit(window: list[Candidate]) -> Unit:
    return ListRead(tuple(window)) if len(window) > 1 else window[0]


async def compute_by_list(
    client: PostHogClient,
    slots: CalculationSlots,
    settings: PostHogInsightsSettings,
    read: ListRead,
    metas: Mapping[tuple[int, int], Mapping[str, Any]],
) -> tuple[list[Found], list[Candidate]]:
    """Send one read; the outcomes it shows, and the members to retrieve on their own."""
    head = read.members[0]
    params = settings.insight_filter.list_params()[_listed_at(head)[0]]
    async with slots.calculation() as slot:
        pages = client.list_insights(
            head.project_id,
            params=params,
            page_size=read.limit,
            offset=read.offset,
            refresh="blocking",
            prefetch=0,
        )
        async with contextlib.aclosing(pages):
            items: list[dict[str, Any]] = await anext(pages, [])
        shown = {int(item["id"]): item for item in items}
        refusals = sum(1 for c in read.members if refused(shown.get(c.insight_id)))
        if refusals:
            slot.refused(refusals)
    found: list[Found] = []
    again: list[Candidate] = []
    for cand in read.members:
        item = shown.get(cand.insight_id)
        status = item.get("query_status") if item is not None else None
        failed = isinstance(status, Mapping) and bool(status.get("error"))
        if item is None or refused(item) or (item.get("result") is None and not failed):
            again.append(cand)
            continue
        meta = metas.get((cand.project_id, cand.insight_id), {})
        found.append((outcome_of(settings, cand, item, "list"), meta, True))
    return found, again
