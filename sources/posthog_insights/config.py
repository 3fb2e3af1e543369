"""Every setting of the source, defined once: `PostHogInsightsSettings` (and `BackfillSettings`).

A dlt configspec, so each field resolves like any dlt source argument: from the source's own arguments,
then `SOURCES__POSTHOG_INSIGHTS__<NAME>` environment variables, then `[sources.posthog_insights]` in
`.dlt/config.toml` / `.dlt/secrets.toml`. The CLI builds its flags from the same fields (their metadata
carries the flag and its help), and `on_resolved` checks every value once, before any request, with a
one-line `ConfigError` that names the setting. Inner layers take the resolved object and trust it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

from posthog_insights.errors import ConfigError
from posthog_insights.hosts import normalize_host
from posthog_insights.pacer import Windows, parse_rate_limit

DEFAULT_HOST: Final = "https://us.posthog.com"
REFRESH_MODES: Final[tuple[str, ...]] = (
    "force_cache",
    "blocking",
    "async",
    "async_except_on_cache_miss",
    "lazy_async",
    "force_blocking",
    "force_async",
)
# How the async modes refresh: by list pages (collection.py) or a retrieve per insight (retrieval.py).
REFRESH_VIA: Final = ("list", "retrieve")
# The modes whose refresh is a background job, and the `refresh` their list pages are read with.
LIST_JOB_REFRESH: Final = {
    "async": "async",
    "lazy_async": "lazy_async",
    "force_async": "force_async",
    "async_except_on_cache_miss": "async",  # its misses too: the run waits for them as for a blocking read
}
KINDS: Final = ("TRENDS", "FUNNELS", "RETENTION", "PATHS", "STICKINESS", "LIFECYCLE", "SQL", "JSON")
WINDOW_SIZES: Final = ("day", "week", "month")


def _setting(default: Any, help: str, flag: str | None = None, *, listing: bool = False, **cli: Any) -> Any:
    """A field with its CLI flag (None: not a flag) and help; `cli` goes to argparse as it is. `listing`:
    a setting of a run that lists only (not a flag of the backfill)."""
    return dataclasses.field(
        default=default, metadata={"help": help, "flag": flag, "cli": cli, "listing": listing}
    )


@configspec
class PostHogInsightsSettings(BaseConfiguration):
    """What one run loads and how it spends requests. Field names are the setting names users script
    against (flags, `SOURCES__POSTHOG_INSIGHTS__...` variables, TOML keys); keep them."""

    project_ids: Any = _setting(None, "project id; repeat for several", "--project-id", action="append")
    personal_api_key: TSecretStrValue = _setting(None, "personal API key (insight:read)")
    host: str = _setting(
        DEFAULT_HOST, f"PostHog API host (default {DEFAULT_HOST}; EU: https://eu.posthog.com)", "--host"
    )
    refresh: str = _setting("blocking", "refresh mode (default blocking)", "--refresh", choices=REFRESH_MODES)
    page_size: int = _setting(100, "insights per list page", "--page-size", type=int, listing=True)
    # kinds and tags are also a backfill's: they narrow the insights of its --dashboard
    kinds: Any | None = _setting(
        None,
        "only insights of this kind (TRENDS, ...; a backfill: of its --dashboard)",
        "--kind",
        action="append",
    )
    tags: Any | None = _setting(
        None, "only insights with this tag (a backfill: of its --dashboard)", "--tag", action="append"
    )
    saved: Any | None = _setting(
        None,
        "only saved (true) or unsaved (false) insights",
        "--saved",
        choices=("true", "false"),
        listing=True,
    )
    dashboards: Any | None = _setting(
        None, "only insights on this dashboard", "--dashboard", action="append", listing=True
    )
    short_ids: Any | None = _setting(None, "only this insight", "--short-id", action="append", listing=True)
    from_dashboard: int | None = _setting(
        None, "results as this dashboard shows them", "--from-dashboard", type=int
    )
    rate_limit: str = _setting(
        "240/60,1200/3600", "client-side windows, e.g. 240/60,1200/3600 (default); off", "--rate-limit"
    )
    concurrency: int = _setting(4, "requests (and calculations) at once", "--concurrency", type=int)
    max_requests: int | None = _setting(
        None, "request budget for this run; the rest goes next run", "--max-requests", type=int
    )
    max_wait_s: float = _setting(300.0, "longest 429 wait sat through (s)", "--max-wait", type=float)
    poll_deadline_s: float = _setting(
        300.0,
        "how long async jobs, and calculations PostHog refuses, are waited for (s)",
        "--poll-deadline",
        type=float,
    )
    refresh_via: str = _setting(
        "list",
        "how the async modes and blocking refresh: list (list reads start and collect jobs, or compute"
        " a few insights each; default) or retrieve (one request per insight)",
        "--refresh-via",
        choices=REFRESH_VIA,
        listing=True,
    )
    max_jobs: int = _setting(
        200, "async jobs of this run running at once on PostHog (default 200)", "--max-jobs", type=int
    )
    max_list_calculations: int = _setting(
        10,
        "under blocking through the list, the most stale insights one list read computes, one after"
        " another inside the request (default 10; lower it when calculations are slow; 1: a retrieve each)",
        "--max-list-calculations",
        type=int,
    )
    timeout_s: float = _setting(60.0, "per-request timeout (s)", "--timeout", type=float)
    max_retries: int = _setting(5, "retries of a failed request", "--max-retries", type=int)
    retry_backoff_s: float = _setting(0.5, "first retry backoff (s)")
    retry_errors_after_s: float = _setting(
        1800.0,
        "seconds before an insight that failed to calculate is retried (default 1800; 0: every run)",
        "--retry-errors-after",
        type=float,
        listing=True,
    )
    allow_insecure_http: bool = _setting(
        False,
        "allow http:// to a host that is not loopback (the key would travel in clear text)",
        "--allow-insecure-http",
        action="store_true",
    )
    include_activity: bool = _setting(
        False,
        "also load insight_activity (needs the activity_log:read scope)",
        "--activity",
        action="store_true",
        listing=True,
    )
    # On unless turned off (dashboards.py says why): None loads them when the key may read dashboards and
    # says so in the log when it may not; True makes a key without dashboard:read a reported failure.
    include_dashboards: bool | None = _setting(
        None,
        "load dashboards and dashboard_tiles (default: when the key may read dashboards, the"
        " dashboard:read scope; --dashboards: always, a 403 is reported; --no-dashboards: never)",
        "--dashboards",
        action=argparse.BooleanOptionalAction,
        listing=True,
    )

    def on_resolved(self) -> None:
        self.check()

    def check(self) -> None:
        """Validate every value (each parsed form below raises on a bad one), once, before any request."""
        _check_key(self.personal_api_key)
        if self.refresh not in REFRESH_MODES:
            raise ConfigError(
                f"refresh: unknown mode {self.refresh!r}; use one of {', '.join(REFRESH_MODES)}"
            )
        if self.refresh_via not in REFRESH_VIA:
            raise ConfigError(f"refresh_via: use one of {', '.join(REFRESH_VIA)}, got {self.refresh_via!r}")
        for name in ("page_size", "concurrency", "max_jobs", "max_list_calculations"):
            _whole(name, getattr(self, name), minimum=1)
        _whole("max_retries", self.max_retries, minimum=0)
        if self.max_requests is not None:
            _whole("max_requests", self.max_requests, minimum=1)
        if self.from_dashboard is not None:
            _whole("from_dashboard", self.from_dashboard, minimum=1)
        if self.include_dashboards is not None and not isinstance(self.include_dashboards, bool):
            raise ConfigError(f"include_dashboards: must be true or false, got {self.include_dashboards!r}")
        _number("timeout_s", self.timeout_s, allow_zero=False)
        for name in ("max_wait_s", "poll_deadline_s", "retry_backoff_s", "retry_errors_after_s"):
            _number(name, getattr(self, name))
        for parsed in ("origin", "projects", "rate_windows", "insight_filter"):
            getattr(self, parsed)

    # -- the parsed forms the run reads --------------------------------------------------------------

    @property
    def list_job_refresh(self) -> str | None:
        """The `refresh` the listing sends when the list path starts this run's jobs, else None."""
        if self.refresh_via != "list" or self.from_dashboard is not None:
            return None  # a dashboard's view of an insight is not what the list shows
        return LIST_JOB_REFRESH.get(self.refresh)

    @property
    def list_calculations(self) -> int:
        """How many stale insights one blocking list read computes: 1 (none: a retrieve each) unless
        `blocking` refreshes through the list."""
        if self.refresh != "blocking" or self.refresh_via != "list" or self.from_dashboard is not None:
            return 1
        return int(self.max_list_calculations)

    @property
    def origin(self) -> str:
        """The API origin the key may go to."""
        return normalize_host(self.host, allow_insecure_http=bool(self.allow_insecure_http))

    @property
    def projects(self) -> tuple[int, ...]:
        return parse_project_ids(self.project_ids)

    @property
    def rate_windows(self) -> Windows | None:
        return parse_rate_limit(self.rate_limit)

    @property
    def insight_filter(self) -> InsightFilter:
        # a dashboard's view exists only for the insights on it: list just those
        dashboards = (
            self.dashboards if self.dashboards or self.from_dashboard is None else [self.from_dashboard]
        )
        return parse_filter(self.kinds, self.tags, self.saved, dashboards, self.short_ids)

    @property
    def variant(self) -> str:
        """Which view of the results this run loads: "" (plain) or "dashboard=ID"."""
        return f"dashboard={self.from_dashboard}" if self.from_dashboard is not None else ""

    def retrieve_params(self) -> dict[str, str]:
        return {} if self.from_dashboard is None else {"from_dashboard": str(self.from_dashboard)}


@configspec
class BackfillSettings(PostHogInsightsSettings):
    """A backfill's settings: a run's, plus which insights and which past windows."""

    insights: Any | None = _setting(None, "id or short id; repeat for several", "--insight", action="append")
    backfill_dashboards: Any | None = _setting(
        None,
        "every insight on this dashboard, as the dashboard shows it (--kind and --tag narrow them);"
        " repeat for several",
        "--dashboard",
        action="append",
    )
    date_from: str | None = _setting(None, "first day, YYYY-MM-DD", "--from")
    date_to: str | None = _setting(None, "last day, YYYY-MM-DD", "--to")
    window: str = _setting("week", "window size", "--window", choices=WINDOW_SIZES)

    def check(self) -> None:
        super().check()
        dashboards = self.dashboard_ids  # checks each id
        if not self.refs and not dashboards:
            raise ConfigError(
                "insight: no insight given; pass --insight ID_OR_SHORT_ID, or --dashboard ID for every"
                " insight on a dashboard"
            )
        if self.window not in WINDOW_SIZES:
            raise ConfigError(f"window: {self.window!r} is not one of {', '.join(WINDOW_SIZES)}")
        if self.last_day < self.first_day:
            raise ConfigError(f"to: {self.last_day} is before from: {self.first_day}")

    @property
    def refs(self) -> tuple[str, ...]:
        """The insights asked for, as ids or short ids."""
        return tuple(str(ref).strip() for ref in as_list(self.insights) if str(ref).strip())

    @property
    def dashboard_ids(self) -> tuple[int, ...]:
        """The dashboards whose insights to recompute, each as it shows them."""
        ids: list[int] = []
        for raw in as_list(self.backfill_dashboards):
            text = str(raw).strip()
            if isinstance(raw, bool) or not text.isdigit() or int(text) < 1:
                raise ConfigError(
                    f"dashboard: {text!r} is not a numeric dashboard id (the number in its URL)"
                )
            ids.append(int(text))
        return tuple(dict.fromkeys(ids))

    @property
    def first_day(self) -> date:
        return _day(self.date_from, "from")

    @property
    def last_day(self) -> date:
        return _day(self.date_to, "to")


def settings_fields(spec: type[BaseConfiguration]) -> Iterator[dataclasses.Field[Any]]:
    """The fields that are settings (not dlt's own), in definition order: what the CLI turns into flags."""
    for field in dataclasses.fields(spec):
        if "help" in field.metadata:
            yield field


# -- parsers -----------------------------------------------------------------------------------------


def as_list(value: Any) -> list[Any]:
    """dlt hands lists from TOML as lists, env vars as strings ("1,2" or a JSON array)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"not a JSON list: {text!r}") from exc
            return list(parsed) if isinstance(parsed, list) else [parsed]
        return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(value, int | float):
        return [value]
    return list(value)


def parse_project_ids(value: Any) -> tuple[int, ...]:
    ids: list[int] = []
    for raw in as_list(value):
        text = str(raw).strip()
        if isinstance(raw, bool) or not text.isdigit() or int(text) < 1:
            raise ConfigError(
                f"project_id: {text!r} is not a numeric PostHog project id; "
                "use the number in your project's URL (/project/12345)"
            )
        ids.append(int(text))
    if not ids:
        raise ConfigError(
            "project_id: no project id given; pass --project-id ID or set"
            " SOURCES__POSTHOG_INSIGHTS__PROJECT_IDS"
        )
    return tuple(dict.fromkeys(ids))


@dataclass(frozen=True)
class InsightFilter:
    """Which insights to load; maps onto the list endpoint's own filters so nothing is over-fetched."""

    kinds: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    saved: bool | None = None
    dashboards: tuple[int, ...] = ()
    short_ids: tuple[str, ...] = ()

    @property
    def is_complete_listing(self) -> bool:
        """Only an unfiltered list can tell that an insight vanished (was deleted)."""
        return not (self.kinds or self.tags or self.saved is not None or self.dashboards or self.short_ids)

    def list_params(self) -> list[dict[str, str]]:
        """One parameter set per list call: PostHog filters one kind and one short_id per call."""
        base: dict[str, str] = {}
        if self.tags:
            base["tags"] = json.dumps(list(self.tags))
        if self.saved is not None:
            base["saved"] = "true" if self.saved else "false"
        if self.dashboards:
            base["dashboards"] = json.dumps(list(self.dashboards))
        variants: list[dict[str, str]] = [base]
        if self.kinds:
            variants = [{**v, "insight": kind} for v in variants for kind in self.kinds]
        if self.short_ids:
            variants = [{**v, "short_id": sid} for v in variants for sid in self.short_ids]
        return variants


def parse_filter(
    kinds: Any = None, tags: Any = None, saved: Any = None, dashboards: Any = None, short_ids: Any = None
) -> InsightFilter:
    kind_list = [str(k).upper() for k in as_list(kinds)]
    for kind in kind_list:
        if kind not in KINDS:
            raise ConfigError(f"kinds: unknown insight kind {kind!r}; use one of {', '.join(KINDS)}")
    dash_list = []
    for raw in as_list(dashboards):
        if not str(raw).strip().isdigit():
            raise ConfigError(f"dashboards: {raw!r} is not a numeric dashboard id")
        dash_list.append(int(raw))
    saved_value: bool | None
    if saved is None or saved == "":
        saved_value = None
    elif isinstance(saved, bool):
        saved_value = saved
    elif str(saved).lower() in ("true", "1", "yes"):
        saved_value = True
    elif str(saved).lower() in ("false", "0", "no"):
        saved_value = False
    else:
        raise ConfigError(f"saved: {saved!r} is not true or false")
    return InsightFilter(
        kinds=tuple(kind_list),
        tags=tuple(str(t) for t in as_list(tags)),
        saved=saved_value,
        dashboards=tuple(dash_list),
        short_ids=tuple(str(s) for s in as_list(short_ids)),
    )


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key.strip():
        raise ConfigError(
            "personal_api_key: missing or empty; set POSTHOG_PERSONAL_API_KEY or personal_api_key under"
            " [sources.posthog_insights] in .dlt/secrets.toml"
        )
    text = key.strip()
    if not text.isascii() or not text.isprintable() or any(ch.isspace() for ch in text):
        # Never echo it: say only what is wrong.
        raise ConfigError(
            "personal_api_key: contains spaces or non-printable characters; paste the key exactly"
        )


def _whole(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: must be a whole number >= {minimum}, got {value!r}")


def _number(name: str, value: Any, *, allow_zero: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _day(value: Any, setting: str) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{setting}: {value!r} is not a date; use YYYY-MM-DD") from None
