"""dlt source for PostHog saved insights: definitions, computed results and their history.

The resource is thin: `options` validates the settings, `harvest` runs the requests (client, pacer,
planner), `recorder` and `shapes` turn payloads into Arrow tables. One resource feeds every table because
one listing serves them all: splitting it would list the project once per table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import dlt
from dlt.common.schema.typing import TDeleteInsertStrategyDict
from dlt.extract.resource import DltResource

from posthog_insights import settings
from posthog_insights.activity import ACTIVITY_PRIMARY_KEY, TABLE_ACTIVITY
from posthog_insights.backfill import BackfillHarvest, date_windows, parse_day
from posthog_insights.checkpoints import Checkpoints
from posthog_insights.errors import ConfigError, PostHogInsightsError
from posthog_insights.harvest import Harvest, Idle, iterate_sync
from posthog_insights.hosts import normalize_host
from posthog_insights.options import RunOptions, as_list, parse_filter, parse_project_ids, parse_refresh
from posthog_insights.pacer import parse_rate_limit
from posthog_insights.recorder import Batch
from posthog_insights.records import INSIGHTS_PRIMARY_KEY, INSIGHTS_SCHEMA, RESULTS_PRIMARY_KEY
from posthog_insights.report import RunReport
from posthog_insights.shapes import TIDY_PRIMARY_KEYS

__all__ = [
    "Checkpoints",
    "ConfigError",
    "PostHogInsightsError",
    "RunOptions",
    "RunReport",
    "build_options",
    "insights_resource",
    "posthog_insights_backfill",
    "posthog_insights_source",
]

# Each row's identity: the insight's metadata is keyed by (project_id, id); every result table by its
# snapshot plus the table's own position columns (TIDY_PRIMARY_KEYS, RESULTS_PRIMARY_KEY).
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    settings.TABLE_INSIGHTS: INSIGHTS_PRIMARY_KEY,
    settings.TABLE_RESULTS: RESULTS_PRIMARY_KEY,
    **TIDY_PRIMARY_KEYS,
}
# A snapshot never changes once PostHog computed it: result tables are merged a whole snapshot at a time
# (delete-insert on this merge key). The recorder emits each snapshot once per run, so the staging data is
# declared de-duplicated: dlt's de-duplication (a ROW_NUMBER window over every staged row) held 3 GiB for
# 7 million trend points and doubled the load time. The one way a load package can stage a row twice - a
# load killed after a staging copy committed, whose copy is then retried - is handled where a pending
# package is resumed (posthog_insights.recovery), which turns de-duplication back on for that package.
SNAPSHOT_KEY = ("project_id", "insight_id", "snapshot", "variant")
SNAPSHOT_MERGE: TDeleteInsertStrategyDict = {
    "disposition": "merge",
    "strategy": "delete-insert",
    "deduplicated": True,
}


def build_options(
    *,
    host: str,
    project_ids: Any,
    refresh: str = settings.DEFAULT_REFRESH,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    kinds: Any = None,
    tags: Any = None,
    saved: Any = None,
    dashboards: Any = None,
    short_ids: Any = None,
    from_dashboard: int | None = None,
    rate_limit: str = "240/60,1200/3600",
    concurrency: int = settings.DEFAULT_CONCURRENCY,
    max_requests: int | None = None,
    max_wait_s: float = settings.DEFAULT_MAX_WAIT_S,
    poll_deadline_s: float = settings.DEFAULT_POLL_DEADLINE_S,
    timeout_s: float = settings.DEFAULT_TIMEOUT_S,
    max_retries: int = settings.DEFAULT_MAX_RETRIES,
    retry_backoff_s: float = 0.5,
    retry_errors_after_s: float = settings.DEFAULT_RETRY_ERRORS_AFTER_S,
    allow_insecure_http: bool = False,
) -> RunOptions:
    """Validate every setting; raises ConfigError (one line, naming the setting) before any request."""
    return RunOptions(
        host=normalize_host(host, allow_insecure_http=allow_insecure_http),
        project_ids=parse_project_ids(project_ids),
        refresh=parse_refresh(refresh),
        page_size=int(page_size),
        # a dashboard's view exists only for the insights on it: list just those
        insight_filter=parse_filter(
            kinds,
            tags,
            saved,
            dashboards if dashboards or from_dashboard is None else [from_dashboard],
            short_ids,
        ),
        from_dashboard=from_dashboard,
        rate_limits=parse_rate_limit(rate_limit),
        concurrency=int(concurrency),
        max_requests=max_requests,
        timeout_s=float(timeout_s),
        max_retries=int(max_retries),
        retry_backoff_s=float(retry_backoff_s),
        retry_errors_after_s=float(retry_errors_after_s),
        max_wait_s=float(max_wait_s),
        poll_deadline_s=float(poll_deadline_s),
        variant=f"dashboard={from_dashboard}" if from_dashboard is not None else "",
    )


# Source arguments that are not run options (the rest map one to one onto `build_options`).
_NOT_OPTIONS = frozenset(
    {
        "personal_api_key",
        "report",
        "include_activity",
        "checkpoints",
        "insights",
        "date_from",
        "date_to",
        "window",
    }
)


def _options(arguments: Mapping[str, Any]) -> RunOptions:
    """Validate a source function's own arguments (pass `locals()` first thing) into run options."""
    return build_options(**{name: value for name, value in arguments.items() if name not in _NOT_OPTIONS})


def _previous_insights(project_id: int, ids: list[int]) -> list[dict[str, Any]]:
    """Rows of insights that vanished from the list, read back so they stay whole with deleted = true."""
    try:
        pipeline = dlt.current.pipeline()
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name(settings.TABLE_INSIGHTS)
            columns = ", ".join(INSIGHTS_SCHEMA.names)
            placeholders = ", ".join(["%s"] * len(ids))
            sql = f"SELECT {columns} FROM {name} WHERE project_id = %s AND id IN ({placeholders})"
            rows = client.execute_sql(sql, project_id, *ids) or []
    except Exception:  # no destination table yet, or a destination that cannot be read back
        return []
    return [dict(zip(INSIGHTS_SCHEMA.names, row, strict=True)) for row in rows]


HarvestFactory = Callable[[MutableMapping[str, Any]], Harvest]


def _whole_run(harvest: Harvest) -> Iterator[Batch]:
    for item in iterate_sync(harvest.batches()):
        if not isinstance(item, Idle):
            yield item


def insights_resource(make_harvest: HarvestFactory, checkpoints: Checkpoints | None = None) -> DltResource:
    """The resource behind every table; table variants carry each table's own primary key.

    `make_harvest(state)` builds the run (a plain run or a backfill) over the resource's dlt state. With
    `checkpoints`, the resource yields one segment of a run that spans several load packages.
    """

    @dlt.resource(
        name=settings.TABLE_INSIGHTS,
        write_disposition="merge",
        primary_key=INSIGHTS_PRIMARY_KEY,
        max_table_nesting=0,
    )
    def insights() -> Iterator[Any]:
        state = dlt.current.resource_state()
        batches = (
            checkpoints.segment(make_harvest, state)
            if checkpoints is not None
            else _whole_run(make_harvest(state))
        )
        for batch in batches:
            for table_name, arrow_table in batch:
                yield dlt.mark.with_table_name(arrow_table, table_name)

    for table_name in (settings.TABLE_RESULTS, *settings.TIDY_TABLES):
        insights.apply_hints(
            table_name=table_name,
            write_disposition=SNAPSHOT_MERGE,
            primary_key=list(PRIMARY_KEYS[table_name]),
            merge_key=list(SNAPSHOT_KEY),
            create_table_variant=True,
        )
    insights.apply_hints(
        table_name=TABLE_ACTIVITY,
        write_disposition="merge",
        primary_key=list(ACTIVITY_PRIMARY_KEY),
        create_table_variant=True,
    )
    return insights


@dlt.source(name="posthog_insights", max_table_nesting=0)
def posthog_insights_source(
    project_ids: Any = dlt.config.value,
    personal_api_key: str = dlt.secrets.value,
    host: str = settings.DEFAULT_HOST,
    refresh: str = settings.DEFAULT_REFRESH,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    kinds: Any = None,
    tags: Any = None,
    saved: Any = None,
    dashboards: Any = None,
    short_ids: Any = None,
    from_dashboard: int | None = None,
    rate_limit: str = "240/60,1200/3600",
    concurrency: int = settings.DEFAULT_CONCURRENCY,
    max_requests: int | None = None,
    max_wait_s: float = settings.DEFAULT_MAX_WAIT_S,
    poll_deadline_s: float = settings.DEFAULT_POLL_DEADLINE_S,
    timeout_s: float = settings.DEFAULT_TIMEOUT_S,
    max_retries: int = settings.DEFAULT_MAX_RETRIES,
    retry_backoff_s: float = 0.5,
    retry_errors_after_s: float = settings.DEFAULT_RETRY_ERRORS_AFTER_S,
    allow_insecure_http: bool = False,
    include_activity: bool = False,
    report: RunReport | None = None,
    checkpoints: Checkpoints | None = None,
) -> list[DltResource]:
    """PostHog saved insights and their results under a `refresh` mode, as tidy tables.

    Configure through `.dlt/config.toml` / `.dlt/secrets.toml` (section `[sources.posthog_insights]`) or
    `SOURCES__POSTHOG_INSIGHTS__...` environment variables. Pass a `RunReport` to read what the run did.
    `include_activity` also loads `insight_activity` (needs the `activity_log:read` scope), read by the
    same run so that it is paced in the insights' rate-limit bucket. With `checkpoints`, each source made
    with the same object extracts the run's next segment (checkpoints.py).
    """
    options = _options(locals())
    _require_key(personal_api_key)
    run_report = report if report is not None else RunReport()
    insights = insights_resource(
        lambda state: Harvest(
            options,
            personal_api_key,
            state,
            run_report,
            lookup_insights=_previous_insights,
            include_activity=bool(include_activity),
        ),
        checkpoints,
    )
    return [insights]


def _require_key(personal_api_key: str) -> None:
    if not isinstance(personal_api_key, str) or not personal_api_key.strip():
        raise ConfigError("personal_api_key: empty; set POSTHOG_PERSONAL_API_KEY or .dlt/secrets.toml")
    key = personal_api_key.strip()
    if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
        # Never echo it: say only what is wrong.
        raise ConfigError(
            "personal_api_key: contains spaces or non-printable characters; paste the key exactly"
        )


@dlt.source(name="posthog_insights", section="posthog_insights", max_table_nesting=0)
def posthog_insights_backfill(
    insights: Any = dlt.config.value,
    date_from: str = dlt.config.value,
    date_to: str = dlt.config.value,
    window: str = "week",
    project_ids: Any = dlt.config.value,
    personal_api_key: str = dlt.secrets.value,
    host: str = settings.DEFAULT_HOST,
    refresh: str = settings.DEFAULT_REFRESH,
    from_dashboard: int | None = None,
    rate_limit: str = "240/60,1200/3600",
    concurrency: int = settings.DEFAULT_CONCURRENCY,
    max_requests: int | None = None,
    max_wait_s: float = settings.DEFAULT_MAX_WAIT_S,
    poll_deadline_s: float = settings.DEFAULT_POLL_DEADLINE_S,
    timeout_s: float = settings.DEFAULT_TIMEOUT_S,
    max_retries: int = settings.DEFAULT_MAX_RETRIES,
    retry_backoff_s: float = 0.5,
    allow_insecure_http: bool = False,
    report: RunReport | None = None,
    checkpoints: Checkpoints | None = None,
) -> DltResource:
    """Recompute `insights` (ids or short ids) over the windows between `date_from` and `date_to`.

    Loads into the same tables as `posthog_insights_source`, each window its own snapshot (variant
    `window=<from>..<to>`); resumable, within the same request budget and pacer. `checkpoints` as in
    `posthog_insights_source`.
    """
    options = _options(locals())
    windows = date_windows(parse_day(date_from, "from"), parse_day(date_to, "to"), window)
    refs = [str(ref).strip() for ref in as_list(insights) if str(ref).strip()]
    if not refs:
        raise ConfigError("insight: no insight given; pass --insight ID_OR_SHORT_ID")
    _require_key(personal_api_key)
    run_report = report if report is not None else RunReport()
    return insights_resource(
        lambda state: BackfillHarvest(
            options, personal_api_key, state, run_report, refs, windows, lookup_insights=_previous_insights
        ),
        checkpoints,
    )
