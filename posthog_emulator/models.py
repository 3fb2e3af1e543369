"""The emulator's records: insights, dashboards, cache entries, async jobs, cache variants, projects.

Plain dataclasses with no behaviour beyond what derives from their own fields, so the store, the
seeder, the list logic and the serializers can share them without importing each other.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from posthog_emulator import synth

REFRESH_MODES: tuple[str, ...] = (
    "force_cache",
    "blocking",
    "async",
    "async_except_on_cache_miss",
    "lazy_async",
    "force_blocking",
    "force_async",
)
CACHE_STATES: tuple[str, ...] = ("fresh", "stale", "very_stale", "missing")
CONCURRENCY_ERROR = "concurrency_limit_exceeded"
# QueryStatusManager.STATUS_TTL_SECONDS
STATUS_TTL_S = 20 * 60.0
SHORT_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# The user the API key belongs to (the `user` list filter, my_last_viewed, the activity log).
KEY_USER_ID = 1


def str_to_bool(value: object) -> bool:
    """PostHog's `str_to_bool`."""
    return str(value).strip().lower() in ("y", "yes", "t", "true", "on", "1")


# The modes the insights endpoints' parser accepts: `async_except_on_cache_miss` is in the documented
# enum but not in this list (only the query API takes it), so there it falls through to force_cache.
INSIGHT_REFRESH_MODES: tuple[str, ...] = tuple(m for m in REFRESH_MODES if m != "async_except_on_cache_miss")


def parse_refresh(value: str | None) -> str:
    """docs/posthog-api.md: missing/false/0/unknown (async_except_on_cache_miss included) ->
    force_cache; true/1/yes/empty -> force_blocking."""
    if value is None:
        return "force_cache"
    if value in INSIGHT_REFRESH_MODES:
        return value
    if value.strip().lower() in ("", "true", "1", "yes"):
        return "force_blocking"
    return "force_cache"


@dataclass(eq=False)
class Insight:
    """One saved insight's metadata (times are epoch seconds)."""

    id: int
    short_id: str
    project_id: int
    name: str | None
    derived_name: str | None
    description: str | None
    query: dict[str, Any] | None
    filters: dict[str, Any]
    saved: bool
    favorited: bool
    tags: list[str]
    dashboards: list[int]
    order: int | None
    created_at: float
    created_by: int
    last_modified_at: float
    last_modified_by: int
    updated_at: float
    deleted: bool = False
    last_viewed_at: float | None = None
    fails: str | None = None
    fails_validation: bool = False
    version: int = 0
    # dashboard id -> the id of this insight's tile on it: every tile ever made, soft-deleted ones too
    # (PostHog undeletes the same tile when the insight goes back on a dashboard); the live tiles are
    # those on `dashboards`.
    tiles: dict[int, int] = field(default_factory=dict)
    sharing: dict[str, Any] | None = None
    seeded: bool = False
    kind: str = "TRENDS"
    shape: synth.Shape = field(default_factory=lambda: synth.Shape("TRENDS", "line", ("$pageview",)))
    _derived_query: dict[str, Any] | None = None

    def refresh_definition(self) -> None:
        """Recompute what depends on query/filters (after creation or a change)."""
        self.kind = synth.insight_kind(self.query, self.filters)
        self.shape = synth.shape_of(self.query, self.filters)
        self._derived_query = None if self.query else synth.query_from_filters(self.filters)

    @property
    def live_tiles(self) -> list[tuple[int, int]]:
        """(tile id, dashboard id) of the tiles PostHog shows: not soft-deleted, on a live dashboard."""
        return [(self.tiles[dashboard_id], dashboard_id) for dashboard_id in self.dashboards]

    @property
    def variant(self) -> str:
        """The seed's variant name: the result shape's variant, or "breakdown" for a broken-down
        trends line, funnel steps or (unsampled) retention."""
        if self.shape.breakdown and self.shape.variant in ("line", "steps", "cohorts"):
            return "breakdown"
        return self.shape.variant

    @property
    def effective_query(self) -> dict[str, Any] | None:
        """The stored query, or for a legacy insight the query PostHog derives from its filters."""
        return self.query if self.query else self._derived_query


@dataclass(eq=False)
class CacheEntry:
    """A cached calculation of one insight variant (None: the interval has no staleness threshold)."""

    last_refresh: float
    cache_target_age: float | None
    next_allowed: float
    generation: int
    window: synth.Window


@dataclass(frozen=True)
class Variant:
    """Which cache of an insight a request reads: plain, or with dashboard / override filters."""

    key: str = ""
    dashboard_id: int | None = None
    filters: dict[str, Any] | None = None


BASE = Variant()


@dataclass(eq=False)
class Read:
    """One insight's answer on a retrieve or a list page.

    `fields` are the result fields once known; None while a synchronous calculation is due, which
    the server runs in one of the organisation's slots before the store completes (or refuses) it.
    """

    insight: Insight
    variant: Variant
    client_query_id: str | None
    fields: dict[str, Any] | None = None
    computed: bool = False

    @property
    def pending(self) -> bool:
        return self.fields is None


@dataclass(eq=False)
class Job:
    """A background calculation, as PostHog's query status tracks it."""

    id: str
    project_id: int
    insight_id: int
    cache_key: tuple[int, int, str]
    variant: Variant
    task_id: str
    start: float
    ready_at: float
    state: str = "running"  # running | complete | error
    end: float | None = None
    # PostHog keeps a status 20 minutes after it was last stored (enqueued, then finished).
    expires_at: float = 0.0
    error_message: str | None = None
    results: dict[str, Any] | None = None


@dataclass(eq=False)
class Dashboard:
    """One dashboard's metadata (times are epoch seconds). Its tiles live on the insights (`tiles`,
    `dashboards`); soft-deleting it soft-deletes them, and `hidden` remembers whose, for a restore."""

    id: int
    project_id: int
    name: str | None
    description: str
    pinned: bool
    created_at: float
    created_by: int
    filters: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    creation_mode: str = "default"
    deleted: bool = False
    last_accessed_at: float | None = None
    hidden: list[int] = field(default_factory=list)


# Dashboard.RestrictionLevel / PrivilegeLevel: everyone in the project can edit; this user can edit.
EVERYONE_CAN_EDIT = 21
CAN_EDIT = 37
CREATION_MODES: tuple[str, ...] = ("default", "template", "duplicate", "unlisted")


@dataclass(eq=False)
class Project:
    id: int
    insights: dict[int, Insight] = field(default_factory=dict)
    by_short_id: dict[str, int] = field(default_factory=dict)
    dashboards: dict[int, Dashboard] = field(default_factory=dict)
    activity: list[dict[str, Any]] | None = None  # materialised on first use
    pending_activity: list[dict[str, Any]] = field(default_factory=list)

    def add(self, insight: Insight) -> None:
        self.insights[insight.id] = insight
        self.by_short_id[insight.short_id] = insight.id


class Ids:
    """Allocates insight, dashboard and tile ids (global, like database primary keys) and unique short
    ids."""

    def __init__(self) -> None:
        self.next_insight = 1
        self.next_dashboard = 1
        self.next_tile = 1
        self._short_ids: set[str] = set()

    def insight(self) -> int:
        value = self.next_insight
        self.next_insight += 1
        return value

    def dashboard(self) -> int:
        value = self.next_dashboard
        self.next_dashboard += 1
        return value

    def tile(self) -> int:
        value = self.next_tile
        self.next_tile += 1
        return value

    def place(self, insight: Insight) -> None:
        """A tile for each dashboard the insight is on that has none yet (an existing one is reused)."""
        for dashboard_id in insight.dashboards:
            if dashboard_id not in insight.tiles:
                insight.tiles[dashboard_id] = self.tile()

    def short_id(self, rng: random.Random) -> str:
        while True:
            candidate = "".join(rng.choice(SHORT_ID_ALPHABET) for _ in range(8))
            # PostHog resolves all-digit lookups as primary keys first: keep short ids non-numeric.
            if candidate not in self._short_ids and not candidate.isdigit():
                self._short_ids.add(candidate)
                return candidate
