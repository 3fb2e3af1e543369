"""dlt source for PostHog saved insights: definitions, computed results and their history.

The source is a resource per table over two resources that do the talking to PostHog:

    insight_listing (list every project once,   -> insights
                     then its dashboards)       -> dashboards, dashboard_tiles
                    \\-> insight_retrieval (what the list did not answer: retrieve, poll)
                                                -> insight_results, trend_points, funnel_steps, ...
    insight_activity (the activity log)

dlt evaluates a parent once and hands its items to every child, so the project is listed once, and the
results the list carries reach the result tables without a request of their own, as the tiles the
listed insights carry reach `dashboard_tiles`. A run that selects only `insights` never retrieves, and
one that does not select `dashboards` never lists dashboards. The network side runs on dlt's event loop
(one pacer for every request of the key); the table side (ledger.py, dashboards.py, shapes/) builds
Arrow tables in dlt's main thread.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, cast

import dlt
import pyarrow as pa
from dlt.extract.resource import DltResource

from posthog_insights import tables
from posthog_insights.activity import activity_tables
from posthog_insights.backfill import Backfill
from posthog_insights.config import BackfillSettings, PostHogInsightsSettings
from posthog_insights.dashboards import DashboardLedger, DashboardsListed, TileLedger, list_dashboards
from posthog_insights.errors import ConfigError, PostHogInsightsError
from posthog_insights.events import Deferred, Event, ListedPage, Paused, Plan, Retrieved, Vanished
from posthog_insights.ledger import MetadataLedger, ResultLedger, Tables
from posthog_insights.listing import Listing
from posthog_insights.outcomes import utcnow
from posthog_insights.report import RunReport
from posthog_insights.retrieval import Retrieval
from posthog_insights.rows import DASHBOARDS_SCHEMA, INSIGHTS_SCHEMA
from posthog_insights.session import Session

__all__ = [
    "BackfillSettings",
    "ConfigError",
    "PostHogInsightsError",
    "PostHogInsightsSettings",
    "RunReport",
    "Session",
    "posthog_insights_backfill",
    "posthog_insights_source",
]


@dlt.source(
    name="posthog_insights", section="posthog_insights", max_table_nesting=0, spec=PostHogInsightsSettings
)
def posthog_insights_source(
    project_ids: Any = dlt.config.value,
    personal_api_key: str = dlt.secrets.value,
    host: str = dlt.config.value,
    refresh: str = dlt.config.value,
    page_size: int = dlt.config.value,
    kinds: Any = dlt.config.value,
    tags: Any = dlt.config.value,
    saved: Any = dlt.config.value,
    dashboards: Any = dlt.config.value,
    short_ids: Any = dlt.config.value,
    from_dashboard: int | None = dlt.config.value,
    rate_limit: str = dlt.config.value,
    concurrency: int = dlt.config.value,
    max_requests: int | None = dlt.config.value,
    max_wait_s: float = dlt.config.value,
    poll_deadline_s: float = dlt.config.value,
    timeout_s: float = dlt.config.value,
    max_retries: int = dlt.config.value,
    retry_backoff_s: float = dlt.config.value,
    retry_errors_after_s: float = dlt.config.value,
    allow_insecure_http: bool = dlt.config.value,
    include_activity: bool = dlt.config.value,
    include_dashboards: bool | None = dlt.config.value,
    settings: PostHogInsightsSettings = dlt.config.value,
    session: Session | None = None,
) -> list[DltResource]:
    """PostHog saved insights and their results under a `refresh` mode, as tidy tables.

    Every argument not given comes from dlt's configuration: `SOURCES__POSTHOG_INSIGHTS__<NAME>`
    environment variables, or `[sources.posthog_insights]` in `.dlt/config.toml` / `.dlt/secrets.toml`.
    Defaults and checks are `PostHogInsightsSettings`'.

    Args:
        project_ids: the projects to load (the number in a project's URL); a list, or "1,2".
        personal_api_key: a personal API key with `insight:read` (`query:read` to poll async jobs,
            `activity_log:read` for the activity log). Secret: sent only in the Authorization header.
        host: the API origin: https://us.posthog.com (default), https://eu.posthog.com or your own.
        refresh: PostHog's refresh mode for results that need one (default `blocking`).
        page_size: insights per list page (default 100).
        kinds: only insights of these kinds (TRENDS, FUNNELS, RETENTION, PATHS, STICKINESS, LIFECYCLE,
            SQL, JSON).
        tags: only insights with any of these tags.
        saved: only saved (true) or unsaved (false) insights.
        dashboards: only insights on all of these dashboards.
        short_ids: only these insights.
        from_dashboard: load results as this dashboard shows them (variant `dashboard=ID`).
        rate_limit: the client's sliding windows, `240/60,1200/3600` (PostHog's) by default; `off`.
        concurrency: requests, and synchronous calculations, at once (default 4).
        max_requests: request budget of the run; what is left is refreshed first next run.
        max_wait_s: the longest 429 wait sat through; a longer one stops the run, keeping what it has.
        poll_deadline_s: how long async jobs are polled, and refused calculations asked for again.
        timeout_s: per-request timeout.
        max_retries: retries of a request that failed in a way worth repeating.
        retry_backoff_s: the first retry's backoff (doubling, with jitter).
        retry_errors_after_s: an insight whose calculation failed is retried after this long (sooner if
            its definition changed).
        allow_insecure_http: allow plain http:// to a host that is not loopback.
        include_activity: also load `insight_activity`.
        include_dashboards: load `dashboards` and `dashboard_tiles`: not set (the default), when the key
            has `dashboard:read` (else a line in the log); True, a key without it is reported as not
            fetched; False, never (no dashboards request). See `posthog_insights.dashboards`.
        settings: all of the above, resolved by dlt; a resolved `PostHogInsightsSettings` may be passed
            instead of them.
        session: shared by bounded runs of one load (posthog_insights_cli.loader); a new one by default.

    Returns:
        The resources: `insights`, `insight_results`, the tidy tables, `insight_activity` (selected with
        `include_activity`), `dashboards` and `dashboard_tiles` (selected unless `include_dashboards` is
        False) and the two that talk to PostHog, which load nothing themselves.
    """
    return _resources(session or Session(settings), Listing)


@dlt.source(name="posthog_insights", section="posthog_insights", max_table_nesting=0, spec=BackfillSettings)
def posthog_insights_backfill(
    insights: Any = dlt.config.value,
    backfill_dashboards: Any = dlt.config.value,
    kinds: Any = dlt.config.value,
    tags: Any = dlt.config.value,
    date_from: str = dlt.config.value,
    date_to: str = dlt.config.value,
    window: str = dlt.config.value,
    project_ids: Any = dlt.config.value,
    personal_api_key: str = dlt.secrets.value,
    host: str = dlt.config.value,
    refresh: str = dlt.config.value,
    from_dashboard: int | None = dlt.config.value,
    rate_limit: str = dlt.config.value,
    concurrency: int = dlt.config.value,
    max_requests: int | None = dlt.config.value,
    max_wait_s: float = dlt.config.value,
    poll_deadline_s: float = dlt.config.value,
    timeout_s: float = dlt.config.value,
    max_retries: int = dlt.config.value,
    retry_backoff_s: float = dlt.config.value,
    allow_insecure_http: bool = dlt.config.value,
    settings: BackfillSettings = dlt.config.value,
    session: Session | None = None,
) -> list[DltResource]:
    """Recompute `insights` over the windows between `date_from` and `date_to`, into the same tables.

    Each window is its own snapshot (variant `window=<from>..<to>`, or `dashboard=ID;window=<from>..<to>`
    as a dashboard shows it); finished windows are remembered, so a backfill that stopped resumes where
    it did. The other arguments are `posthog_insights_source`'s.

    Args:
        insights: ids or short ids of the insights to recompute.
        backfill_dashboards: ids of dashboards: every insight on each, as that dashboard shows it (its
            filters applied: `from_dashboard`), listed with one list read per dashboard.
        kinds: only the dashboards' insights of these kinds (the `insights` named are never narrowed).
        tags: only the dashboards' insights with any of these tags.
        date_from: the first day, YYYY-MM-DD.
        date_to: the last day, YYYY-MM-DD.
        window: `day`, `week` (ISO weeks, the default) or `month`.
        settings: all arguments, resolved by dlt (a resolved `BackfillSettings` may be passed instead).
        session: as in `posthog_insights_source`.
    """
    return _resources(session or Session(settings), Backfill)


def _resources(session: Session, planner: type[Listing] | type[Backfill]) -> list[DltResource]:
    settings = session.settings
    key = str(settings.personal_api_key).strip()
    first_run = session.start_run()

    lists_dashboards = planner is Listing

    @dlt.resource(name="insight_listing", selected=False)
    async def insight_listing() -> AsyncIterator[Event | DashboardsListed]:
        """Every project listed once (or, continuing a session, what its last run left), then, before
        the plan goes out, each project's dashboards if `dashboards` is selected (see dashboards.py)."""
        state = dlt.current.source_state()
        wanted = lists_dashboards and _selected(tables.DASHBOARDS)
        if first_run:
            _adopt_older_state(state)
            session.listing = planner(session, key, state)
        listing = session.listing
        if listing is not None and not listing.done:
            listing.continue_in(state)
            async for event in listing.events():
                if isinstance(event, Plan) and wanted:  # the listing is over: its dashboards, counted first
                    async with session.client(key) as client:
                        spent = session.stats.count
                        async for listed in list_dashboards(client, settings, session.report, spent):
                            yield listed
                yield event
        elif session.pending is not None:
            yield session.pending

    @dlt.transformer(
        data_from=insight_listing,
        name=tables.INSIGHTS,
        write_disposition="merge",
        primary_key=list(tables.PRIMARY_KEYS[tables.INSIGHTS]),
        max_table_nesting=0,
    )
    def insights(event: Event | DashboardsListed) -> Iterator[pa.Table]:
        ledger = MetadataLedger(dlt.current.source_state(), session.report)
        found: pa.Table | None = None
        if isinstance(event, ListedPage):
            found = ledger.listed(event.project_id, event.items, event.seen_at)
        elif isinstance(event, Vanished):
            found = ledger.vanished(
                event.project_id, _previous_insights(event.project_id, event.insight_ids), utcnow()
            )
        if found is not None:
            session.run_bytes += found.nbytes
            yield found

    retrieval = Retrieval(session, key)

    @dlt.transformer(data_from=insight_listing, name="insight_retrieval", selected=False)
    async def insight_retrieval(event: Event | DashboardsListed) -> AsyncIterator[Event]:
        """What the list answered, then the plan's retrieves and polls."""
        if isinstance(event, DashboardsListed):
            return
        async for found in retrieval.events(event):
            yield found

    ledger: list[ResultLedger] = []  # made in the first call, on the extract's state

    def record(event: Event) -> Tables | None:
        """Outcomes into rows (dlt's main thread), handed on in batches of a useful size."""
        if not ledger:
            ledger.append(ResultLedger(dlt.current.source_state(), session.report))
        if isinstance(event, Retrieved):
            for outcome, meta, final in event.outcomes:
                ledger[0].outcome(outcome, meta, final)
            if not ledger[0].full():
                return None
        elif isinstance(event, Deferred):
            ledger[0].defer(event.by_project)
        elif not isinstance(event, Paused):
            return None
        batch = ledger[0].take()
        session.run_bytes += sum(t.nbytes for t in batch.values())
        return batch or None

    retrieved = cast(DltResource, insight_retrieval).add_map(record)
    activity = _activity_resource(session, key)
    activity.selected = bool(settings.include_activity) and first_run
    resources = [
        cast(DltResource, insight_listing),
        cast(DltResource, insights),
        retrieved,
        *(_result_table(retrieved, name) for name in (tables.RESULTS, *tables.TIDY)),
        activity,
    ]
    if lists_dashboards:  # a backfill loads results only
        for resource in _dashboard_resources(session, cast(DltResource, insight_listing)):
            resource.selected = settings.include_dashboards is not False
            resources.append(resource)
    return resources


def _selected(name: str) -> bool:
    """Whether the source being extracted loads the resource `name` (what `with_resources` chose)."""
    resources = dlt.current.source().resources
    return name in resources and bool(resources[name].selected)


def _dashboard_resources(session: Session, listing: DltResource) -> list[DltResource]:
    """`dashboards` and `dashboard_tiles`, from the dashboards lists and the listed insights' tiles; each
    keeps what it loaded in its own state, and emits only what changed (dashboards.py)."""

    @dlt.transformer(
        data_from=listing,
        name=tables.DASHBOARDS,
        write_disposition="merge",
        primary_key=list(tables.PRIMARY_KEYS[tables.DASHBOARDS]),
        max_table_nesting=0,
    )
    def dashboards(event: Event | DashboardsListed) -> Iterator[pa.Table]:
        if isinstance(event, DashboardsListed):
            ledger = DashboardLedger(dlt.current.resource_state())
            found = ledger.listed(event, _previous_dashboards)
            if found is not None:
                session.run_bytes += found.nbytes
                yield found

    @dlt.transformer(
        data_from=listing,
        name=tables.DASHBOARD_TILES,
        write_disposition="merge",
        primary_key=list(tables.PRIMARY_KEYS[tables.DASHBOARD_TILES]),
        max_table_nesting=0,
    )
    def dashboard_tiles(event: Event | DashboardsListed) -> Iterator[pa.Table]:
        ledger = TileLedger(dlt.current.resource_state())
        found: pa.Table | None = None
        if isinstance(event, ListedPage):
            found = ledger.listed_page(event)
        elif isinstance(event, Vanished):
            found = ledger.vanished(event, utcnow())
        elif isinstance(event, DashboardsListed):
            found = ledger.dashboards_listed(event)
        if found is not None:
            session.run_bytes += found.nbytes
            yield found

    return [cast(DltResource, dashboards), cast(DltResource, dashboard_tiles)]


def _result_table(parent: DltResource, name: str) -> DltResource:
    """One result table's resource: its part of each batch the retrieval's records hand on. Merged a whole
    snapshot at a time (dlt's delete-insert on the snapshot key): a re-run never duplicates."""

    @dlt.transformer(
        data_from=parent,
        name=name,
        write_disposition="merge",
        primary_key=list(tables.PRIMARY_KEYS[name]),
        merge_key=list(tables.SNAPSHOT_KEY),
        max_table_nesting=0,
    )
    def rows(batch: Tables) -> Iterator[pa.Table]:
        found = batch.get(name)
        if found is not None:
            yield found

    return cast(DltResource, rows)


def _activity_resource(session: Session, key: str) -> DltResource:
    @dlt.resource(
        name=tables.ACTIVITY,
        write_disposition="merge",
        primary_key=list(tables.PRIMARY_KEYS[tables.ACTIVITY]),
        max_table_nesting=0,
    )
    async def insight_activity() -> AsyncIterator[pa.Table]:
        """Who changed which insight, when: incremental on `created_at`, merged on the entry's id."""
        async with session.client(key) as client:
            state = dlt.current.resource_state()
            async for found in activity_tables(client, session.settings.projects, state, session.report):
                yield found

    return cast(DltResource, insight_activity)


def _adopt_older_state(state: dict[str, Any] | Any) -> None:
    """Versions before the resource per table kept the run's record in the `insights` resource's state:
    carried over once, so an existing pipeline neither reloads nor forgets what it deferred."""
    older = state.get("resources", {}).get(tables.INSIGHTS, {})
    if "projects" in older and "projects" not in state:
        state["projects"] = older.pop("projects")


def _previous_insights(project_id: int, ids: list[int] | Any) -> list[Mapping[str, Any]]:
    """Rows of insights that vanished from the list, read back so they stay whole with deleted = true."""
    return _previous_rows(tables.INSIGHTS, INSIGHTS_SCHEMA, project_id, list(ids))


def _previous_dashboards(project_id: int, ids: list[int]) -> list[Mapping[str, Any]]:
    """Rows of dashboards that vanished from the list, read back so they stay whole with deleted = true."""
    return _previous_rows(tables.DASHBOARDS, DASHBOARDS_SCHEMA, project_id, ids)


def _previous_rows(table: str, schema: pa.Schema, project_id: int, ids: list[int]) -> list[Mapping[str, Any]]:
    """The destination's rows of `table` with these ids (just `{"id": ...}` for those it cannot give)."""
    found: list[Mapping[str, Any]] = []
    try:
        pipeline = dlt.current.pipeline()
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name(table)
            columns = ", ".join(schema.names)
            placeholders = ", ".join(["%s"] * len(ids))
            sql = f"SELECT {columns} FROM {name} WHERE project_id = %s AND id IN ({placeholders})"
            rows = client.execute_sql(sql, project_id, *ids) or []
        found = [dict(zip(schema.names, row, strict=True)) for row in rows]
    except Exception:  # no destination table yet, or a destination that cannot be read back
        found = []
    missing = set(ids) - {int(r["id"]) for r in found}
    return found + [{"id": i} for i in sorted(missing)]
