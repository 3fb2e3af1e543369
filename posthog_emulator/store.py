"""The emulated PostHog state: projects, insights, result caches, async jobs, activity, views.

Everything a request can observe or change lives here, behind one re-entrant lock, so the server
thread and test threads (through the hooks at the bottom) always see a consistent state. The store
speaks Python, not HTTP: it returns the dicts PostHog would serialise and raises `ApiError` for
PostHog's error answers; `server.py` only moves them over the wire.

Cache model (docs/posthog-api.md "Retrieve and refresh", "Staleness"): each insight has one cache
entry per *variant* (the plain insight, or one `from_dashboard` / `filters_override` /
`variables_override` combination). An entry goes stale after its interval's threshold
(`staleness.py`), and "lazily stale" (old enough for `lazy_async` to start a job) after the longer
lazy threshold. Results are synthesised lazily from (seed, insight id, variant, window, generation)
and kept, serialised, in a bounded LRU, so start-up stays cheap at any size and each compute (a new
generation) changes the numbers.

Synchronous calculations happen in two steps, so that their wall time is spent outside the lock:
`begin_retrieve` / `begin_list` resolve each read and leave the ones that must calculate pending;
the server holds one of the organisation's slots (`calculations.py`) for each, then calls
`complete` (or `refuse`, when the limit said no). Failures are calculation errors: `fails` (a
message, see `set_fails`) makes a synchronous calculation answer PostHog's error result (200,
`query_status.error`, or a 500 without `client_query_id`) and an async job end in error;
`fails_validation` makes it a 400 `validation_error` (a HogQL error) before any slot is taken. A read
that does not calculate (force_cache, a fresh hit) never meets the failure.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import orjson

from posthog_emulator import activity, dashboards, errors, jobs, legacy, listing, serialize, staleness, synth
from posthog_emulator.calculations import Slots
from posthog_emulator.config import EmulatorConfig
from posthog_emulator.legacy import LegacyRead
from posthog_emulator.models import (
    BASE,
    CACHE_STATES,
    CONCURRENCY_ERROR,
    KEY_USER_ID,
    CacheEntry,
    Dashboard,
    Ids,
    Insight,
    Job,
    Project,
    Read,
    Variant,
    parse_refresh,
)
from posthog_emulator.seed import make_user, seed_project
from posthog_emulator.timeutil import Clock, iso, parse_date, utc_date

# Fields whose change moves last_modified_at (PostHog's MATERIAL_INSIGHT_FIELDS).
MATERIAL_FIELDS: frozenset[str] = frozenset({"name", "description", "filters", "query", "tags"})
# Query parameters of the list that do not filter or order.
_NON_FILTER_PARAMS = frozenset(
    {"limit", "offset", "basic", "refresh", "client_query_id", "personal_api_key", "format"}
)
UPDATABLE_FIELDS: tuple[str, ...] = (
    "name",
    "derived_name",
    "description",
    "query",
    "filters",
    "tags",
    "saved",
    "favorited",
    "dashboards",
    "deleted",
    "order",
)


class Store:
    """All emulated state, plus the test hooks (`insight`, `set_cache_state`, `advance_clock`, ...)."""

    def __init__(self, config: EmulatorConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self._lock = threading.RLock()
        self._projects: dict[int, Project] = {}
        self._forbidden = frozenset(config.forbidden_projects) - frozenset(config.projects)
        self._cache: dict[tuple[int, int, str], CacheEntry] = {}
        self._generations: dict[tuple[int, int, str], int] = {}
        self._jobs = jobs.Jobs()
        # The organisation's synchronous calculation slots (the server holds them, see calculations.py).
        self.slots = Slots(config.org_concurrency, config.background_calcs)
        self._legacy_cache: dict[tuple[int, str], CacheEntry] = {}
        self._viewed: dict[int, dict[int, float]] = {}
        self._lru: OrderedDict[tuple[Any, ...], tuple[synth.Computed, bytes]] = OrderedDict()
        self._lru_capacity = max(32, min(4096, 2_000_000 // max(config.points, 1)))
        self._list_requests = 0
        self._log_sequence = 0
        self._metadata_version = 0
        self._list_memo: dict[tuple[Any, ...], list[Insight]] = {}
        self._ids = Ids()
        self._users = [make_user(config.seed, index + 1) for index in range(config.users)]
        self._seed()

    # ----------------------------------------------------------------------------------------------
    # Seeding
    # ----------------------------------------------------------------------------------------------

    def _seed(self) -> None:
        now = self.clock()
        for project_id in self.config.projects:
            project, cached = seed_project(self.config, project_id, now, self._ids)
            self._projects[project_id] = project
            for insight, last_refresh in cached:
                self._put_entry(insight, BASE, last_refresh, generation=0)

    # ----------------------------------------------------------------------------------------------
    # Lookups
    # ----------------------------------------------------------------------------------------------

    def check_project(self, project_id: int) -> Project:
        """The project, or PostHog's 404 (unknown) / 403 (the key may not read it)."""
        project = self._projects.get(project_id)
        if project is not None:
            return project
        if project_id in self._forbidden:
            raise errors.permission_denied("You don't have access to the project.")
        raise errors.not_found("Project not found.")

    def _get(self, project: Project, ident: str | int, *, include_deleted: bool = False) -> Insight:
        """PostHog's lookup: an all-digit value is tried as the primary key first, then as short_id."""
        text = str(ident)
        insight: Insight | None = None
        if text.isdigit():
            insight = project.insights.get(int(text))
        if insight is None:
            insight_id = project.by_short_id.get(text)
            insight = project.insights.get(insight_id) if insight_id is not None else None
        if insight is None or (insight.deleted and not include_deleted):
            raise errors.not_found()
        return insight

    def user(self, user_id: int) -> dict[str, Any]:
        return self._users[(user_id - 1) % len(self._users)]

    # ----------------------------------------------------------------------------------------------
    # Cache and calculations
    # ----------------------------------------------------------------------------------------------

    def cache_key_string(self, insight: Insight, variant: Variant) -> str:
        material = f"{insight.project_id}:{insight.id}:{insight.version}:{variant.key}"
        return f"cache_{insight.project_id}_{hashlib.sha256(material.encode()).hexdigest()}"

    def _window(self, insight: Insight, variant: Variant, at: float) -> synth.Window:
        """The days a calculation at time `at` covers: the override's or dashboard's dates, else the
        query's date range, else the last `points` days."""
        today = utc_date(at)
        date_from: Any = None
        date_to: Any = None
        if variant.filters:
            date_from = variant.filters.get("date_from")
            date_to = variant.filters.get("date_to")
        if date_from is None and date_to is None:
            date_from, date_to = insight.shape.date_from, insight.shape.date_to
        try:
            end = parse_date(str(date_to), at).date() if date_to else today
            if date_from and str(date_from) != "all":
                start = parse_date(str(date_from), at).date()
            else:
                start = end - timedelta(days=self.config.points - 1)
        except ValueError as exc:
            raise errors.validation(f"Invalid date range: {exc}", "filters_override") from exc
        if start > end:
            raise errors.validation("date_from must be before date_to", "filters_override")
        start = max(start, end - timedelta(days=synth.MAX_WINDOW_DAYS - 1))
        return synth.Window(start, end)

    def _put_entry(self, insight: Insight, variant: Variant, at: float, *, generation: int) -> CacheEntry:
        entry = CacheEntry(
            last_refresh=at,
            cache_target_age=staleness.cache_target_age(insight.shape.interval, at),
            next_allowed=at + self.config.client_refresh_s,
            generation=generation,
            window=self._window(insight, variant, at),
        )
        self._cache[(insight.project_id, insight.id, variant.key)] = entry
        return entry

    def _compute_entry(self, insight: Insight, variant: Variant, at: float) -> CacheEntry:
        key = (insight.project_id, insight.id, variant.key)
        generation = self._generations.get(key, 0) + 1
        self._generations[key] = generation
        return self._put_entry(insight, variant, at, generation=generation)

    def _computed(
        self, insight: Insight, variant: Variant, entry: CacheEntry
    ) -> tuple[synth.Computed, bytes]:
        """The (memoised) synthetic result of a cache entry, with its JSON serialisation."""
        lru_key = (
            insight.project_id,
            insight.id,
            insight.version,
            variant.key,
            entry.generation,
            entry.window,
        )
        hit = self._lru.get(lru_key)
        if hit is not None:
            self._lru.move_to_end(lru_key)
            return hit
        rng = synth.rng_for(
            self.config.seed, insight.id, insight.version, variant.key, entry.window.key(), entry.generation
        )
        computed = synth.synthesize(insight.shape, entry.window, self.config.points, rng)
        value = (computed, orjson.dumps(computed.result))
        self._lru[lru_key] = value
        if len(self._lru) > self._lru_capacity:
            self._lru.popitem(last=False)
        return value

    def _cached_fields(
        self,
        insight: Insight,
        variant: Variant,
        entry: CacheEntry,
        *,
        is_cached: bool,
        status: dict[str, Any] | None,
    ) -> dict[str, Any]:
        computed, result_json = self._computed(insight, variant, entry)
        return {
            "result": orjson.Fragment(result_json),
            "hasMore": computed.has_more,
            "columns": computed.columns,
            "types": computed.types,
            "hogql": computed.hogql,
            "last_refresh": iso(entry.last_refresh),
            "cache_target_age": iso(entry.cache_target_age),
            "next_allowed_client_refresh": iso(entry.next_allowed),
            "is_cached": is_cached,
            "timezone": self.config.timezone,
            "query_status": status,
            "resolved_date_range": computed.resolved_date_range,
            "filters_hash": self.cache_key_string(insight, variant),
        }

    def _miss_fields(
        self, insight: Insight, variant: Variant, status: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "result": None,
            "hasMore": None,
            "columns": None,
            "types": None,
            "hogql": None,
            "last_refresh": None,
            "cache_target_age": None,
            "next_allowed_client_refresh": None,
            "is_cached": False,
            "timezone": None,
            "query_status": status,
            "resolved_date_range": None,
            "filters_hash": self.cache_key_string(insight, variant),
        }

    def _error_fields(
        self, insight: Insight, variant: Variant, client_query_id: str | None, message: str
    ) -> dict[str, Any]:
        """PostHog's answer when a calculation raises: 200, result null, query_status.error true,
        whose id is the request's client_query_id. `QueryStatus.id` is a required string, so without
        one the serializer itself fails: a 500 (the whole page, on a list)."""
        if client_query_id is None:
            raise errors.server_error()
        concurrency = message == CONCURRENCY_ERROR
        fields = self._miss_fields(insight, variant, None)
        fields |= {
            # ConcurrencyLimitExceeded answers last_refresh now; any other exception None.
            "last_refresh": iso(self.clock()) if concurrency else None,
            "timezone": self.config.timezone,
            "filters_hash": None,
            "query_status": {
                "id": client_query_id,
                "team_id": insight.project_id,
                "insight_id": insight.id,
                "dashboard_id": variant.dashboard_id,
                "complete": False,
                "error": True,
                "error_message": message,
                "results": None,
                "start_time": None,
                "end_time": None,
                "expiration_time": None,
                "pickup_time": None,
                "query_async": True,
                "query_progress": None,
                "task_id": None,
                "labels": None,
            },
        }
        return fields

    def _state(self, insight: Insight, variant: Variant, entry: CacheEntry | None, now: float) -> str:
        """fresh / stale / very_stale / missing, by PostHog's rules. The window's end is the query's
        as it resolves now (a relative range moves, a fixed one does not), as the query runner does."""
        if entry is None:
            return staleness.MISSING
        return staleness.state(
            now=now,
            last_refresh=entry.last_refresh,
            date_to=self._window(insight, variant, now).end_timestamp(),
            interval=insight.shape.interval,
            invalidation=self.config.stale_invalidation,
        )

    def _resolve(
        self, insight: Insight, variant: Variant, mode: str, client_query_id: str | None
    ) -> dict[str, Any] | None:
        """The result fields of one read under `mode`, or None when it must calculate synchronously
        (the caller then holds a slot and calls `complete`). This is the doc's refresh table, row by
        row; a HogQL error (fails_validation) is raised here, before any slot is taken."""
        key = (insight.project_id, insight.id, variant.key)
        self._settle_key(key)
        now = self.clock()
        entry = self._cache.get(key)

        def cached(status: dict[str, Any] | None = None) -> dict[str, Any]:
            assert entry is not None
            return self._cached_fields(insight, variant, entry, is_cached=True, status=status)

        def calculate() -> dict[str, Any] | None:
            if insight.fails_validation:
                raise errors.validation(
                    insight.fails or "Query validation failed.", code="query_validation_error"
                )
            return None  # pending: the caller calculates in a slot

        def with_job() -> dict[str, Any]:
            return self._job_status(self._start_job(insight, variant), show_progress=False)

        def running_job() -> dict[str, Any] | None:
            job = self._jobs.for_key(key, now)
            if job is None or job.state != "running":
                return None
            return self._job_status(job, show_progress=False)

        if mode == "force_cache":  # PostHog attaches a running job's status to a hit and a miss alike
            return (
                cached(running_job())
                if entry is not None
                else self._miss_fields(insight, variant, running_job())
            )
        if mode == "force_blocking":
            return calculate()
        if mode == "force_async":
            return self._miss_fields(insight, variant, with_job())
        state = self._state(insight, variant, entry, now)  # only the modes below depend on it
        if state == staleness.FRESH:
            return cached(running_job())
        if mode == "blocking":
            return calculate()
        if mode == "async":
            return (
                cached(with_job()) if entry is not None else self._miss_fields(insight, variant, with_job())
            )
        if mode == "lazy_async":
            if entry is None:
                return self._miss_fields(insight, variant, with_job())
            return cached(with_job()) if state == staleness.VERY_STALE else cached(running_job())
        raise AssertionError(f"unknown refresh mode {mode}")

    def _peek(self, insight: Insight, variant: Variant = BASE) -> dict[str, Any]:
        """The force_cache view (which never calculates)."""
        fields = self._resolve(insight, variant, "force_cache", None)
        assert fields is not None
        return fields

    def complete(self, read: Read) -> bool:
        """Finish a pending read's calculation (its slot held for the calculation's time): write the
        cache and answer is_cached false, or answer the insight's failure. True when it computed."""
        with self._lock:
            insight, variant = read.insight, read.variant
            if insight.fails is not None:
                read.fields = self._error_fields(insight, variant, read.client_query_id, insight.fails)
                return False
            entry = self._compute_entry(insight, variant, self.clock())
            read.fields = self._cached_fields(insight, variant, entry, is_cached=False, status=None)
            read.computed = True
            return True

    def refuse(self, read: Read) -> None:
        """The organisation's limit refused a pending read's calculation: nothing is cached or queued;
        the answer is concurrency_limit_exceeded (or a 500 without client_query_id)."""
        with self._lock:
            read.fields = self._error_fields(
                read.insight, read.variant, read.client_query_id, CONCURRENCY_ERROR
            )

    # ----------------------------------------------------------------------------------------------
    # Async jobs
    # ----------------------------------------------------------------------------------------------

    def _start_job(self, insight: Insight, variant: Variant) -> Job:
        key = (insight.project_id, insight.id, variant.key)
        return self._jobs.start(
            insight,
            variant,
            key,
            self.cache_key_string(insight, variant),
            self.clock(),
            self.config.async_delay_s,
        )

    def _settle_key(self, key: tuple[int, int, str]) -> None:
        job = self._jobs.for_key(key, self.clock())
        if job is not None:
            self._settle(job)

    def _settle(self, job: Job) -> None:
        """Finish a job whose time has come: write the cache (or record the failure)."""
        if job.state != "running" or self.clock() < job.ready_at:
            return
        insight = self._projects[job.project_id].insights.get(job.insight_id)
        if insight is None or insight.fails is not None:
            jobs.finished(job, error=insight.fails if insight else "Insight not found", results=None)
            return
        entry = self._compute_entry(insight, job.variant, job.ready_at)
        fields = self._cached_fields(insight, job.variant, entry, is_cached=False, status=None)
        # PostHog nests the query runner's response here, whose list is `results`; `result` mirrors it
        # so that a retrieve-shaped reader finds it too.
        fields["results"] = fields["result"]
        fields["cache_key"] = fields["filters_hash"]
        jobs.finished(job, error=None, results=fields)

    def _job_status(self, job: Job, *, show_progress: bool) -> dict[str, Any]:
        self._settle(job)
        return jobs.status(job, self.clock(), show_progress=show_progress)

    def query_status(self, project_id: int, query_id: str, *, show_progress: bool = False) -> dict[str, Any]:
        """The status endpoint's `query_status` (the server maps it to 202 / 200 / 400 / 500); 404 for
        an unknown id or a status past its expiration_time."""
        with self._lock:
            self.check_project(project_id)
            job = self._jobs.get(query_id, self.clock())
            if job is not None:
                self._settle(job)
                job = self._jobs.get(query_id, self.clock())  # finishing may be long past: expired
            if job is None or job.project_id != project_id:
                raise errors.not_found("Query not found.")
            return self._job_status(job, show_progress=show_progress)

    def cancel(self, project_id: int, query_id: str) -> str:
        """PostHog's `cancel_query`: a finished query keeps its status ("Query already complete"); a
        running one is cancelled and forgotten (a later poll is 404); an unknown id is no error."""
        with self._lock:
            self.check_project(project_id)
            job = self._jobs.get(query_id, self.clock())
            if job is None or job.project_id != project_id:
                return jobs.CANCELLED
            self._settle(job)
            if job.state != "running":
                return jobs.ALREADY_COMPLETE
            self._jobs.forget(job)
            return jobs.CANCELLED

    # ----------------------------------------------------------------------------------------------
    # Representations
    # ----------------------------------------------------------------------------------------------

    def _full(self, insight: Insight, fields: dict[str, Any], variant: Variant = BASE) -> dict[str, Any]:
        return serialize.full(insight, fields, self.user, variant)

    def _basic(self, insight: Insight) -> dict[str, Any]:
        return serialize.basic(insight, self.user)

    # ----------------------------------------------------------------------------------------------
    # List
    # ----------------------------------------------------------------------------------------------

    def _ordered_insights(self, project: Project, params: Mapping[str, str]) -> list[Insight]:
        """Filter and order the project's insights. An explicitly ordered result is memoised until
        metadata changes (a paging client asks for the same order 100 times), unless a relative date
        filter makes it depend on the clock; the default order is reshuffled on every request."""
        order = params.get("order")
        relevant = tuple(sorted((k, v) for k, v in params.items() if k not in _NON_FILTER_PARAMS))
        memo_key = (project.id, relevant, self._metadata_version)
        cacheable = bool(order) and not any(k in listing.DATE_FILTERS for k, _ in relevant)
        if cacheable and memo_key in self._list_memo:
            return self._list_memo[memo_key]
        checks = listing.list_filters(params, self.clock())
        matched = [i for i in project.insights.values() if not i.deleted and all(c(i) for c in checks)]
        if not order:
            self._list_requests += 1
        result = listing.ordered(matched, order, f"{self.config.seed}:list:{self._list_requests}")
        if cacheable:
            if len(self._list_memo) >= 32:
                self._list_memo.clear()
            self._list_memo[memo_key] = result
        return result

    def _touch(self) -> None:
        """Metadata changed: memoised list orders are out of date."""
        self._metadata_version += 1
        self._list_memo.clear()

    def begin_list(
        self, project_id: int, params: Mapping[str, str], *, basic: bool, offset: int, limit: int
    ) -> tuple[int, list[Read], list[dict[str, Any]]]:
        """One page of the list: (count, reads, basic items). Without `basic` every item is read
        through `_resolve` under the request's `refresh`, exactly as a retrieve of it would be
        (force_cache without one); the pending reads must be computed, in page order, and the page
        then built with `represent`. `basic` gives metadata only and never computes."""
        with self._lock:
            project = self.check_project(project_id)
            ordered = self._ordered_insights(project, params)
            page = ordered[offset : offset + limit]
            if basic:
                return len(ordered), [], [self._basic(insight) for insight in page]
            mode = parse_refresh(params.get("refresh"))
            client_query_id = params.get("client_query_id")
            reads = []
            for insight in page:
                read = Read(insight, BASE, client_query_id)
                read.fields = self._resolve(insight, BASE, mode, client_query_id)
                reads.append(read)
            return len(ordered), reads, []

    def represent(self, reads: list[Read]) -> list[dict[str, Any]]:
        """The InsightSerializer representation of finished reads."""
        with self._lock:
            out = []
            for read in reads:
                assert read.fields is not None, "a pending read was not completed"
                out.append(self._full(read.insight, read.fields, read.variant))
            return out

    def list_insights(
        self, project_id: int, params: Mapping[str, str], *, basic: bool, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """A hook: one page as the list shows it without `refresh` (force_cache, never computes)."""
        quiet = {key: value for key, value in params.items() if key != "refresh"}
        count, reads, basic_items = self.begin_list(
            project_id, quiet, basic=basic, offset=offset, limit=limit
        )
        return count, basic_items if basic else self.represent(reads)

    # ----------------------------------------------------------------------------------------------
    # Retrieve
    # ----------------------------------------------------------------------------------------------

    def _variant(
        self,
        project: Project,
        insight: Insight,
        from_dashboard: str | None,
        filters_override: str | None,
        variables_override: str | None,
    ) -> Variant:
        dashboard_id: int | None = None
        filters: dict[str, Any] | None = None
        dashboard_filters: dict[str, Any] = {}
        parts: list[str] = []
        if from_dashboard is not None and not from_dashboard.isdigit():
            raise errors.validation("from_dashboard must be a dashboard id", "from_dashboard")
        # like PostHog, a dashboard the insight has no live tile on is ignored: the plain result comes back
        if from_dashboard is not None and int(from_dashboard) in insight.dashboards:
            dashboard_id = int(from_dashboard)
            dashboard = project.dashboards.get(dashboard_id)
            dashboard_filters = dict(dashboard.filters) if dashboard is not None else {}
            filters = {key: value for key, value in dashboard_filters.items() if value is not None} or None
            parts.append(f"d={dashboard_id}")
        for name, raw in (("filters_override", filters_override), ("variables_override", variables_override)):
            if raw is None:
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise errors.validation(f"{name} is not valid JSON", name) from exc
            if not isinstance(value, dict):
                raise errors.validation(f"{name} must be a JSON object", name)
            if name == "filters_override":  # PostHog: {**dashboard.filters, **filters_override}
                merged = {**dashboard_filters, **value}
                filters = {key: item for key, item in merged.items() if item is not None}
            parts.append(f"{name[0]}={orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()}")
        if not parts:
            return BASE
        return Variant("|".join(parts), dashboard_id, filters)

    def begin_retrieve(
        self,
        project_id: int,
        ident: str,
        *,
        refresh: str | None = None,
        from_dashboard: str | None = None,
        filters_override: str | None = None,
        variables_override: str | None = None,
        client_query_id: str | None = None,
    ) -> Read:
        """GET .../insights/{id}/: the read, pending if it must calculate (see `begin_list`)."""
        with self._lock:
            project = self.check_project(project_id)
            insight = self._get(project, ident)
            variant = self._variant(project, insight, from_dashboard, filters_override, variables_override)
            read = Read(insight, variant, client_query_id)
            read.fields = self._resolve(insight, variant, parse_refresh(refresh), client_query_id)
            return read

    # ----------------------------------------------------------------------------------------------
    # Create, update, activity, sharing, views
    # ----------------------------------------------------------------------------------------------

    def _validate_body(self, body: Mapping[str, Any]) -> dict[str, Any]:
        clean: dict[str, Any] = {}
        for key in UPDATABLE_FIELDS:
            if key not in body:
                continue
            value = body[key]
            if key == "query" and value is not None:
                if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
                    raise errors.validation("Query must be a valid JSON object with a kind", "query")
                source = value.get("source")
                if value["kind"] == "InsightVizNode" and (
                    not isinstance(source, dict) or source.get("kind") not in synth.INSIGHT_BY_SOURCE_KIND
                ):
                    raise errors.validation("InsightVizNode needs a source of a known insight kind", "query")
            if key == "filters" and value is not None and not isinstance(value, dict):
                raise errors.validation("filters must be an object", "filters")
            if key == "tags" and (not isinstance(value, list) or not all(isinstance(t, str) for t in value)):
                raise errors.validation("tags must be a list of strings", "tags")
            if key == "dashboards" and (
                not isinstance(value, list) or not all(isinstance(d, int) for d in value)
            ):
                raise errors.validation("dashboards must be a list of ids", "dashboards")
            if key in ("saved", "favorited", "deleted") and not isinstance(value, bool):
                raise errors.validation(f"{key} must be a boolean", key)
            if key == "order" and value is not None and not isinstance(value, int):
                raise errors.validation("order must be an integer", key)
            if (
                key in ("name", "derived_name", "description")
                and value is not None
                and not isinstance(value, str)
            ):
                raise errors.validation(f"{key} must be a string", key)
            clean[key] = value
        return clean

    def _check_dashboards(self, project: Project, dashboard_ids: list[int]) -> None:
        for dashboard_id in dashboard_ids:
            dashboard = project.dashboards.get(dashboard_id)
            if dashboard is None or dashboard.deleted:  # Dashboard.objects: live dashboards only
                raise errors.validation("Dashboard not found", "dashboards")

    def _log(
        self, project: Project, insight: Insight, action: str, changes: list[dict[str, Any]] | None
    ) -> None:
        self._log_sequence += 1
        record = activity.entry(
            insight, action, changes, self.user(KEY_USER_ID), self.clock(), f"log:{self._log_sequence}"
        )
        if project.activity is None:
            project.pending_activity.append(record)
        else:
            project.activity.append(record)

    def _activity_log(self, project: Project) -> list[dict[str, Any]]:
        """The project's log, oldest first, seeded "created" records included."""
        if project.activity is None:
            users = {user["id"]: user for user in self._users}
            project.activity = (
                activity.seeded_log(project.insights.values(), users) + project.pending_activity
            )
            project.pending_activity = []
        return project.activity

    def create(self, project_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            project = self.check_project(project_id)
            clean = self._validate_body(body)
            if clean.get("dashboards"):
                self._check_dashboards(project, clean["dashboards"])
            now = self.clock()
            insight_id = self._ids.insight()
            insight = Insight(
                id=insight_id,
                short_id=self._ids.short_id(random.Random(f"{self.config.seed}:create:{insight_id}")),
                project_id=project_id,
                name=clean.get("name"),
                derived_name=clean.get("derived_name"),
                description=clean.get("description"),
                query=clean.get("query"),
                filters=clean.get("filters") or {},
                saved=clean.get("saved", False),
                favorited=clean.get("favorited", False),
                tags=sorted(set(clean.get("tags") or [])),
                dashboards=sorted(set(clean.get("dashboards") or [])),
                order=clean.get("order"),
                created_at=now,
                created_by=KEY_USER_ID,
                last_modified_at=now,
                last_modified_by=KEY_USER_ID,
                updated_at=now,
                deleted=bool(clean.get("deleted", False)),
            )
            insight.refresh_definition()
            self._ids.place(insight)
            project.add(insight)
            self._touch()
            self._viewed.setdefault(project_id, {})[insight.id] = now
            insight.last_viewed_at = now
            self._log(project, insight, "created", None)
            return self._full(insight, self._peek(insight))

    def update(self, project_id: int, ident: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH: changes are logged with before/after; `deleted: true` soft-deletes, false restores."""
        with self._lock:
            project = self.check_project(project_id)
            restoring = body.get("deleted") is False
            insight = self._get(project, ident, include_deleted=restoring)
            clean = self._validate_body(body)
            clean.setdefault("saved", True)  # PostHog's update defaults saved to True
            if "dashboards" in clean:
                self._check_dashboards(project, clean["dashboards"])
                clean["dashboards"] = sorted(set(clean["dashboards"]))
            if "tags" in clean:
                clean["tags"] = sorted(set(clean["tags"]))
            changes = []
            for key, value in clean.items():
                before = getattr(insight, key)
                if before == value:
                    continue
                changes.append(activity.change(key, before, value))
                setattr(insight, key, value)
            now = self.clock()
            changed_fields = {change["field"] for change in changes}
            if changed_fields & MATERIAL_FIELDS:
                insight.last_modified_at = now
                insight.last_modified_by = KEY_USER_ID
            insight.updated_at = now
            self._touch()
            if changed_fields & {"query", "filters", "dashboards"}:
                insight.refresh_definition()
                self._ids.place(insight)  # a dashboard it was on before gets its old tile back
            if "deleted" in changed_fields and insight.deleted:
                insight.dashboards = []  # PostHog soft-deletes the insight's tiles; a restore keeps them so
            if changed_fields & {"query", "filters"}:
                insight.version += 1  # a new query is a new cache key: old results are unreachable
                for cache_key in [k for k in self._cache if k[0] == project_id and k[1] == insight.id]:
                    del self._cache[cache_key]
            action = "updated"
            if "deleted" in changed_fields:
                action = "deleted" if insight.deleted else "restored"
            self._log(project, insight, action, changes)
            return self._full(insight, self._peek(insight))

    def activity(
        self, project_id: int, ident: str | None, *, limit: int, page: int
    ) -> tuple[list[dict[str, Any]], bool, bool, int]:
        """Activity, newest first, page-based like PostHog: (results, has_next, has_previous, total)."""
        with self._lock:
            project = self.check_project(project_id)
            item_id = None if ident is None else str(self._get(project, ident).id)
            return activity.page(self._activity_log(project), item_id, limit=limit, page=page)

    def sharing(
        self, project_id: int, ident: str, changes: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        with self._lock:
            project = self.check_project(project_id)
            insight = self._get(project, ident)
            if insight.sharing is None:
                token = hashlib.sha256(f"{self.config.seed}:share:{insight.id}".encode()).hexdigest()[:22]
                insight.sharing = {
                    "created_at": None,
                    "enabled": False,
                    "access_token": token,
                    "settings": None,
                    "password_required": False,
                    "share_passwords": [],
                }
            if changes:
                for key in ("enabled", "password_required"):
                    if key in changes:
                        if not isinstance(changes[key], bool):
                            raise errors.validation(f"{key} must be a boolean", key)
                        insight.sharing[key] = changes[key]
                if "settings" in changes:
                    if changes["settings"] is not None and not isinstance(changes["settings"], dict):
                        raise errors.validation("settings must be an object", "settings")
                    insight.sharing["settings"] = changes["settings"]
                if insight.sharing["created_at"] is None:
                    insight.sharing["created_at"] = iso(self.clock())
            return dict(insight.sharing)

    def mark_viewed(self, project_id: int, insight_ids: list[int]) -> None:
        with self._lock:
            project = self.check_project(project_id)
            now = self.clock()
            views = self._viewed.setdefault(project_id, {})
            for insight_id in insight_ids:
                insight = project.insights.get(insight_id)
                if insight is not None and not insight.deleted:
                    views[insight_id] = now
                    insight.last_viewed_at = now
            self._touch()

    def viewed_one(self, project_id: int, ident: str) -> None:
        with self._lock:
            project = self.check_project(project_id)
            self.mark_viewed(project_id, [self._get(project, ident).id])

    def my_last_viewed(self, project_id: int) -> list[dict[str, Any]]:
        """The 5 insights this key's user viewed last, newest first (basic representation)."""
        with self._lock:
            project = self.check_project(project_id)
            views = self._viewed.get(project_id, {})
            recent = sorted(views.items(), key=lambda item: (-item[1], -item[0]))
            out = []
            for insight_id, _ in recent:
                insight = project.insights.get(insight_id)
                if insight is None or insight.deleted:
                    continue
                out.append(self._basic(insight))
                if len(out) == 5:
                    break
            return out

    def legacy_begin(
        self, project_id: int, endpoint: str, filters: dict[str, Any], refresh: str | None
    ) -> LegacyRead:
        """A legacy compute request: pending unless a recent cache answers it. Any refresh mode is
        blocking there (they never supported async): a fresh cache answers, else it calculates."""
        with self._lock:
            self.check_project(project_id)
            transient, variant, canonical = legacy.transient_insight(project_id, endpoint, filters)
            cache_key = (project_id, canonical + endpoint)
            entry = self._legacy_cache.get(cache_key)
            mode = parse_refresh(refresh) if refresh is not None else "blocking"
            now = self.clock()
            pending = (
                entry is None
                or mode == "force_blocking"
                or self._state(transient, variant, entry, now) != staleness.FRESH
            )
            return LegacyRead(project_id, endpoint, transient, variant, cache_key, pending)

    def legacy_finish(self, read: LegacyRead) -> dict[str, Any]:
        """The legacy answer, `{result, timezone, is_cached, last_refresh, timings}` (+ `next` for
        trends), after the calculation if the read was pending (its slot held by the caller)."""
        with self._lock:
            transient, variant = read.insight, read.variant
            entry = self._legacy_cache.get(read.cache_key)
            if read.pending or entry is None:
                now = self.clock()
                entry = CacheEntry(
                    last_refresh=now,
                    cache_target_age=staleness.cache_target_age(transient.shape.interval, now),
                    next_allowed=now + self.config.client_refresh_s,
                    generation=(entry.generation + 1) if entry is not None else 1,
                    window=self._window(transient, variant, now),
                )
                self._legacy_cache[read.cache_key] = entry
            rng = synth.rng_for(self.config.seed, "legacy", variant.key, entry.window.key(), entry.generation)
            if read.endpoint == "funnel/correlation":
                result: Any = legacy.correlation(rng)
            else:
                result = synth.synthesize(transient.shape, entry.window, self.config.points, rng).result
            payload: dict[str, Any] = {
                "result": result,
                "timezone": self.config.timezone,
                "is_cached": not read.pending,
                "last_refresh": iso(entry.last_refresh),
                "timings": [],
            }
            if read.endpoint == "trend":
                payload["next"] = None
            return payload

    # ----------------------------------------------------------------------------------------------
    # Dashboards
    # ----------------------------------------------------------------------------------------------

    def _dashboard(self, project: Project, ident: str | int, *, include_deleted: bool = False) -> Dashboard:
        text = str(ident)
        dashboard = project.dashboards.get(int(text)) if text.isdigit() else None
        if dashboard is None or (dashboard.deleted and not include_deleted):
            raise errors.not_found()
        return dashboard

    def _tiles_of(self, project: Project, dashboard: Dashboard) -> list[tuple[int, int]]:
        """(tile id, insight id) of the dashboard's live tiles, by tile id."""
        return sorted(
            (insight.tiles[dashboard.id], insight.id)
            for insight in project.insights.values()
            if not insight.deleted and dashboard.id in insight.dashboards
        )

    def list_dashboards(
        self, project_id: int, *, tags: list[str], creation_mode: str | None, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of the dashboards list: (count, DashboardBasicSerializer items). Never computes."""
        with self._lock:
            project = self.check_project(project_id)
            self._list_requests += 1
            found = dashboards.listed(
                project.dashboards.values(),
                tags=tags,
                creation_mode=creation_mode,
                shuffle_seed=f"{self.config.seed}:dashboards:{self._list_requests}",
            )
            page = found[offset : offset + limit]
            return len(found), [serialize.dashboard_basic(d, self.user) for d in page]

    def _dashboard_full(self, project: Project, dashboard: Dashboard) -> dict[str, Any]:
        """DashboardSerializer: every live tile's insight in the dashboard's context, result included
        (read from the cache: tiles are served as force_cache, whatever the request's refresh)."""
        tile_insights = []
        for tile_id, insight_id in self._tiles_of(project, dashboard):
            insight = project.insights[insight_id]
            variant = self._variant(project, insight, str(dashboard.id), None, None)
            fields = self._resolve(insight, variant, "force_cache", None)
            assert fields is not None  # force_cache never calculates
            shown = self._full(insight, fields, variant)
            shown.pop("color", None)  # the tile carries these, not its insight
            shown.pop("layouts", None)
            tile_insights.append((tile_id, shown))
        return serialize.dashboard_full(dashboard, self.user, tile_insights)

    def retrieve_dashboard(self, project_id: int, ident: str) -> dict[str, Any]:
        """GET .../dashboards/{id}/ (see `_dashboard_full`). Like PostHog, it stamps the dashboard's
        `last_accessed_at`: the read is a write."""
        with self._lock:
            project = self.check_project(project_id)
            dashboard = self._dashboard(project, ident)
            dashboard.last_accessed_at = self.clock()
            return self._dashboard_full(project, dashboard)

    def _new_dashboard(self, project: Project, clean: Mapping[str, Any], creation_mode: str) -> Dashboard:
        now = self.clock()
        dashboard = Dashboard(
            id=self._ids.dashboard(),
            project_id=project.id,
            name=clean.get("name"),
            description=clean.get("description", ""),
            pinned=bool(clean.get("pinned", False)),
            created_at=now,
            created_by=KEY_USER_ID,
            filters=dict(clean.get("filters") or {}),
            tags=list(clean.get("tags") or []),
            creation_mode=creation_mode,
        )
        project.dashboards[dashboard.id] = dashboard
        return dashboard

    def create_dashboard(self, project_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST .../dashboards/ (201): an empty dashboard, `creation_mode` "default" (read-only: an unlisted
        one only through the `create_unlisted_dashboard` hook, as PostHog has an action of its own)."""
        with self._lock:
            project = self.check_project(project_id)
            clean = dashboards.clean_body(body)
            if clean.get("deleted"):
                raise errors.validation("A new dashboard cannot be deleted.", "deleted")
            dashboard = self._new_dashboard(project, clean, "default")
            return self._dashboard_full(project, dashboard)

    def update_dashboard(self, project_id: int, ident: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PATCH .../dashboards/{id}/: `{"deleted": true}` soft-deletes it and its tiles (the insights on
        it lose it from `dashboards`/`dashboard_tiles`), `{"deleted": false}` restores both (the same tile
        ids); name, description, pinned, tags and filters change as given."""
        with self._lock:
            project = self.check_project(project_id)
            restoring = body.get("deleted") is False
            dashboard = self._dashboard(project, ident, include_deleted=restoring)
            clean = dashboards.clean_body(body)
            deleted = clean.pop("deleted", dashboard.deleted)
            for key, value in clean.items():
                setattr(dashboard, key, value)
            if deleted and not dashboard.deleted:
                dashboard.deleted = True
                for insight in project.insights.values():
                    if dashboard.id in insight.dashboards:
                        insight.dashboards.remove(dashboard.id)
                        dashboard.hidden.append(insight.id)
            elif not deleted and dashboard.deleted:
                dashboard.deleted = False
                for insight_id in dashboard.hidden:
                    back = project.insights.get(insight_id)
                    if back is not None and not back.deleted and dashboard.id not in back.dashboards:
                        back.dashboards = sorted([*back.dashboards, dashboard.id])
                dashboard.hidden = []
            self._touch()
            return self._dashboard_full(project, dashboard)

    # ----------------------------------------------------------------------------------------------
    # Test hooks
    # ----------------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward (freshness, async jobs and rate windows all follow)."""
        self.clock.advance(seconds)

    def project_ids(self) -> list[int]:
        return list(self._projects)

    def job_spans(self) -> list[tuple[float, float]]:
        """(start, ready_at) of every async job started so far, on the emulator's clock."""
        with self._lock:
            return list(self._jobs.spans)

    def insight_ids(self, project_id: int) -> list[int]:
        """Ids of the project's live (not soft-deleted) insights, ascending."""
        with self._lock:
            project = self.check_project(project_id)
            return sorted(i.id for i in project.insights.values() if not i.deleted)

    def dashboard_ids(self, project_id: int) -> list[int]:
        """Ids of the project's live (not soft-deleted) dashboards, ascending."""
        with self._lock:
            dashboards = self.check_project(project_id).dashboards.values()
            return sorted(d.id for d in dashboards if not d.deleted)

    def dashboard(self, project_id: int, dashboard_id: int) -> dict[str, Any]:
        """The dashboard as the list shows it (soft-deleted ones too), plus `_emulator: {filters, tiles}`:
        its filters, and its live tiles as `[tile id, insight id]`, by tile id."""
        with self._lock:
            project = self.check_project(project_id)
            dashboard = project.dashboards.get(dashboard_id)
            if dashboard is None:
                raise KeyError(f"no dashboard {dashboard_id} in project {project_id}")
            data = serialize.dashboard_basic(dashboard, self.user)
            data["_emulator"] = {
                "filters": dict(dashboard.filters),
                "tiles": self._tiles_of(project, dashboard),
            }
            return data

    def dashboard_tiles(self, project_id: int) -> list[tuple[int, int, int]]:
        """(tile id, dashboard id, insight id) of every live tile of the project, by tile id: what the
        insights' `dashboard_tiles` show (live insights, live dashboards)."""
        with self._lock:
            project = self.check_project(project_id)
            found = [
                (tile_id, dashboard_id, insight.id)
                for insight in project.insights.values()
                if not insight.deleted
                for tile_id, dashboard_id in insight.live_tiles
            ]
            return sorted(found)

    def soft_delete_dashboard(self, project_id: int, dashboard_id: int) -> None:
        """As `PATCH .../dashboards/{id}/ {"deleted": true}`."""
        self.update_dashboard(project_id, str(dashboard_id), {"deleted": True})

    def create_unlisted_dashboard(self, project_id: int, name: str) -> int:
        """A product-embedded dashboard (`creation_mode: unlisted`), which the list leaves out."""
        with self._lock:
            project = self.check_project(project_id)
            return self._new_dashboard(project, {"name": name}, "unlisted").id

    def insight(self, project_id: int, id_or_short_id: int | str) -> dict[str, Any]:
        """The insight as a force_cache retrieve shows it (soft-deleted ones too), as plain JSON data,
        plus an `_emulator` entry: cache state, compute generation, failure, kind, variant, interval
        and whether its date range is fixed."""
        with self._lock:
            project = self.check_project(project_id)
            insight = self._get(project, id_or_short_id, include_deleted=True)
            data: dict[str, Any] = orjson.loads(orjson.dumps(self._full(insight, self._peek(insight))))
            key = (project_id, insight.id, "")
            entry = self._cache.get(key)
            data["_emulator"] = {
                "cache_state": self._state(insight, BASE, entry, self.clock()),
                "generation": entry.generation if entry is not None else None,
                "computes": self._generations.get(key, 0),
                "fails": insight.fails,
                "kind": insight.kind,
                "variant": insight.variant,
                "interval": insight.shape.interval,
                "fixed_range": _fixed_range(insight),
            }
            return data

    def find(
        self,
        project_id: int,
        kind: str,
        variant: str | None = None,
        *,
        interval: str | None = None,
        fixed_range: bool | None = None,
    ) -> list[int]:
        """Ids of live insights of a kind (TRENDS ... SQL, JSON), optionally of a variant, an interval
        (minute, hour, day, week, month) and with or without a fixed past date range. Variants: line,
        breakdown, compare, number, calendar_heatmap, boxplot (trends); steps, breakdown,
        time_to_convert, trends (funnels); cohorts, breakdown, sampled (retention); links (paths);
        series (stickiness, lifecycle); viz, table (SQL); events, web_overview, web_stats, table (JSON)."""
        with self._lock:
            project = self.check_project(project_id)
            return sorted(
                i.id
                for i in project.insights.values()
                if not i.deleted
                and i.kind == kind
                and (variant is None or i.variant == variant)
                and (interval is None or i.shape.interval == interval)
                and (fixed_range is None or _fixed_range(i) == fixed_range)
            )

    def set_cache_state(self, project_id: int, insight_id: int | str, state: str) -> None:
        """Force the plain cache of an insight, by its own interval's thresholds: fresh (computed
        now), stale (past the default threshold, not the lazy one; where the two coincide, week and
        month, also past the lazy one), very_stale (past lazy_async's threshold) or missing (every
        cached variant dropped). An insight with a fixed past range stays fresh whatever its age."""
        if state not in CACHE_STATES:
            raise ValueError(f"state must be one of {CACHE_STATES}")
        with self._lock:
            project = self.check_project(project_id)
            insight = self._get(project, insight_id, include_deleted=True)
            key = (project_id, insight.id, "")
            if state == "missing":
                for cache_key in [k for k in self._cache if k[0] == project_id and k[1] == insight.id]:
                    del self._cache[cache_key]
                return
            age = staleness.age_for(state, insight.shape.interval)
            generation = self._cache[key].generation if key in self._cache else 0
            self._put_entry(insight, BASE, self.clock() - age, generation=generation)

    def soft_delete(self, project_id: int, insight_id: int | str) -> None:
        with self._lock:
            project = self.check_project(project_id)
            insight = self._get(project, insight_id, include_deleted=True)
            if not insight.deleted:
                insight.deleted = True
                insight.dashboards = []  # its tiles are soft-deleted with it
                insight.updated_at = self.clock()
                self._touch()
                self._log(project, insight, "deleted", [activity.change("deleted", False, True)])

    def set_fails(
        self, project_id: int, insight_id: int | str, message: str | None, *, validation: bool = False
    ) -> None:
        """Make calculations of an insight fail with `message` (None heals it): a synchronous one
        answers PostHog's error result (500 without client_query_id), an async job ends in error;
        `validation=True` makes calculations answer 400 validation_error instead (a HogQL error).
        Reads that do not calculate are unaffected. (The organisation's concurrency limit is not a
        failure of an insight: see `set_background_calcs`.)"""
        with self._lock:
            project = self.check_project(project_id)
            insight = self._get(project, insight_id, include_deleted=True)
            insight.fails = message
            insight.fails_validation = validation and message is not None

    def set_background_calcs(self, count: int) -> None:
        """How many of the organisation's slots its own users hold from now on (0 .. org_concurrency)."""
        self.slots.set_background(count)

    def running_jobs(self, project_id: int) -> list[str]:
        with self._lock:
            return self._jobs.running(project_id, self.clock())


def _fixed_range(insight: Insight) -> bool:
    """Whether the insight's window ends on an absolute date (relative ones start with `-`)."""
    date_to = insight.shape.date_to
    return bool(date_to) and not str(date_to).startswith("-")
