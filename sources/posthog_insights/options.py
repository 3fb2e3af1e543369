"""Run options, validated before a single request is sent.

Every setting is checked here so that bad input fails fast with a one-line error naming the setting,
and no request reaches the network on invalid input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from posthog_insights import settings
from posthog_insights.errors import ConfigError

KINDS = ("TRENDS", "FUNNELS", "RETENTION", "PATHS", "STICKINESS", "LIFECYCLE", "SQL")


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
    if isinstance(value, (int, float)):
        return [value]
    return list(value)


def parse_project_ids(value: Any) -> tuple[int, ...]:
    ids: list[int] = []
    for raw in as_list(value):
        text = str(raw).strip()
        if not text.isdigit():
            raise ConfigError(
                f"project_id: {text!r} is not a numeric PostHog project id; "
                "use the number in your project's URL (/project/12345)"
            )
        ids.append(int(text))
    if not ids:
        raise ConfigError(
            "project_id: no project id given; pass --project-id ID or set "
            "SOURCES__POSTHOG_INSIGHTS__PROJECT_IDS"
        )
    return tuple(dict.fromkeys(ids))


def parse_refresh(value: str) -> str:
    if value not in settings.REFRESH_MODES:
        raise ConfigError(f"refresh: unknown mode {value!r}; use one of {', '.join(settings.REFRESH_MODES)}")
    return value


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


def _number(name: str, value: float, *, allow_zero: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


@dataclass(frozen=True)
class RunOptions:
    """Everything one run needs, already validated."""

    host: str
    project_ids: tuple[int, ...]
    refresh: str = settings.DEFAULT_REFRESH
    page_size: int = settings.DEFAULT_PAGE_SIZE
    insight_filter: InsightFilter = field(default_factory=InsightFilter)
    from_dashboard: int | None = None
    rate_limits: tuple[tuple[int, float], ...] | None = settings.DEFAULT_RATE_LIMITS
    concurrency: int = settings.DEFAULT_CONCURRENCY
    max_requests: int | None = None
    timeout_s: float = settings.DEFAULT_TIMEOUT_S
    max_retries: int = settings.DEFAULT_MAX_RETRIES
    max_wait_s: float = settings.DEFAULT_MAX_WAIT_S
    poll_deadline_s: float = settings.DEFAULT_POLL_DEADLINE_S
    retry_backoff_s: float = 0.5
    retry_errors_after_s: float = settings.DEFAULT_RETRY_ERRORS_AFTER_S
    variant: str = ""  # "" for plain results, "dashboard=ID" for a dashboard's view

    def __post_init__(self) -> None:
        _number("timeout_s", self.timeout_s, allow_zero=False)
        _number("max_wait_s", self.max_wait_s)
        _number("retry_backoff_s", self.retry_backoff_s)
        if (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ConfigError(f"max_retries: must be a whole number >= 0, got {self.max_retries!r}")
        if self.page_size < 1:
            raise ConfigError(f"page_size: {self.page_size} must be at least 1")
        if self.concurrency < 1:
            raise ConfigError(f"concurrency: {self.concurrency} must be at least 1")
        if self.max_requests is not None and self.max_requests < 1:
            raise ConfigError(f"max_requests: {self.max_requests} must be at least 1")
        if self.retry_errors_after_s < 0:
            raise ConfigError("retry_errors_after_s: must not be negative")
        if self.poll_deadline_s < 0:
            raise ConfigError("poll_deadline_s: must not be negative")

    def retrieve_params(self) -> dict[str, str]:
        return {} if self.from_dashboard is None else {"from_dashboard": str(self.from_dashboard)}
