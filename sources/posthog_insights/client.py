"""Async HTTP client for the PostHog Insights API: auth, pacing, retries, pagination, error mapping.

dlt's HTTP helpers are requests-only, so this is a small httpx client of our own (DESIGN.md, pitfalls):

* The ``httpx.AsyncClient`` is created in ``__aenter__``, inside the running loop: dlt starts a new event
  loop per extract, and a client bound to a dead loop fails on its next request.
* The personal API key travels only in the ``Authorization: Bearer`` header. It is never put in a URL (the
  server would accept it there, and URLs end up in logs), never logged, never in an exception: errors are
  built from statuses, paths and PostHog's ``detail`` (scrubbed of the key, truncated) and raised
  ``from None`` so no httpx request object (which holds the headers) hangs off them.
* Redirects are not followed (a redirect would carry the header to wherever it points); a 3xx is a
  ``ConfigError`` naming the status and the origin it points to. Pagination ``next`` links are followed
  only on the configured origin.
* Every HTTP request, retries included, goes through ``pacer.slot()`` (the rate windows and concurrency).
* Retries (tenacity): 5xx, 408, 429, connection errors, timeouts and 2xx bodies that are not JSON, with
  exponential backoff and jitter, at most ``max_retries`` retries after the first attempt. A 429 waits its
  ``Retry-After`` (or PostHog's "Expected available in N seconds"), pauses the pacer so that every request
  of the run waits too, and stops the run at once (``RateLimitExceededError``) if that wait is longer than
  ``max_wait_s``. 400/401/403/404 are never retried.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn
from urllib.parse import quote, urlsplit

import httpx
import orjson
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from posthog_insights.errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PaginationLoopError,
    PermissionDeniedError,
    PostHogInsightsError,
    QueryError,
    RateLimitExceededError,
    TransportError,
    UnexpectedStatusError,
    UnsafeNextLinkError,
    truncate,
)
from posthog_insights.pacer import Pacer
from posthog_insights.settings import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_WAIT_S,
    DEFAULT_PAGE_SIZE,
    DEFAULT_TIMEOUT_S,
    LIST_ORDER,
    LIST_PREFETCH_PAGES,
    REFRESH_MODES,
)

logger = logging.getLogger("posthog_insights")

USER_AGENT = "posthog-insights/0.1"
DEFAULT_BACKOFF_S = 0.5
DEFAULT_BACKOFF_MAX_S = 30.0

RequestKind = Literal["list", "retrieve", "poll", "cancel", "activity"]
REQUEST_KINDS: tuple[str, ...] = ("list", "retrieve", "poll", "cancel", "activity")
# The personal-API-key scope each kind of request needs (named in 403 messages).
_SCOPES: dict[str, str] = {
    "list": "insight:read",
    "retrieve": "insight:read",
    "poll": "query:read",
    "cancel": "query:read",
    "activity": "activity_log:read",
}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_EXPECTED_AVAILABLE_RE = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


# -- host ------------------------------------------------------------------------------------------


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _format_origin(scheme: str, hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def normalize_host(host: str, *, allow_insecure_http: bool = False) -> str:
    """The API origin ``scheme://host[:port]`` (lower-case host, default port dropped, no trailing slash).

    A trailing ``/`` is accepted; any other path, a query or a fragment is refused rather than stripped:
    the client appends ``/api/...`` to the origin, so ``https://x.com/api`` or a sub-path deployment would
    silently produce wrong URLs. Also refused: schemes other than http/https, user:password in the URL,
    plain ``http://`` to a non-loopback host (the key would travel in clear) unless
    ``allow_insecure_http``, PostHog's ingestion hosts (``*.i.posthog.com``) and UI/marketing hosts.
    """
    if not isinstance(host, str):
        raise ConfigError("host", f"expected a URL like https://us.posthog.com, got {type(host).__name__}")
    raw = host.strip()
    if not raw:
        raise ConfigError("host", "empty; use https://us.posthog.com, https://eu.posthog.com or your own URL")
    shown = repr(raw if len(raw) <= 80 else raw[:79] + "…")
    if "://" not in raw:
        hint = (
            f"https://{raw.rstrip('/')}" if re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?/?", raw) else "https://..."
        )
        raise ConfigError("host", f"{shown} has no scheme; use {hint}")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError("host", f"{shown} is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError("host", f"scheme {scheme!r} is not supported; use https://")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigError("host", "must not contain user:password@; the personal API key is sent as a header")
    hostname = (parts.hostname or "").lower().rstrip(".")
    if not hostname:
        raise ConfigError("host", f"{shown} has no host name; use e.g. https://us.posthog.com")
    if parts.query or parts.fragment or "?" in raw or "#" in raw:
        raise ConfigError(
            "host", "must be an origin without ?query or #fragment, e.g. https://us.posthog.com"
        )
    if parts.path not in ("", "/"):
        origin = _format_origin(scheme, hostname, port)
        raise ConfigError(
            "host",
            f"must be an origin without a path (got path {parts.path[:60]!r}); use {origin} (the client adds"
            " /api/... itself)",
        )
    if hostname.endswith(".i.posthog.com"):
        raise ConfigError(
            "host",
            f"{hostname} is an event-ingestion host, not the API host; use https://us.posthog.com or"
            " https://eu.posthog.com",
        )
    if hostname == "app.posthog.com":
        raise ConfigError(
            "host",
            "app.posthog.com is PostHog's UI host, not the API host; use https://us.posthog.com (US cloud) or"
            " https://eu.posthog.com (EU cloud)",
        )
    if hostname in ("posthog.com", "www.posthog.com"):
        raise ConfigError(
            "host",
            f"{hostname} is PostHog's website; use https://us.posthog.com or https://eu.posthog.com",
        )
    if scheme == "http" and not allow_insecure_http and not _is_loopback(hostname):
        raise ConfigError(
            "host",
            f"plain http:// to {hostname} would send the API key unencrypted; use https://, or on a trusted"
            " private network opt in with --allow-insecure-http (allow_insecure_http = true)",
        )
    return _format_origin(scheme, hostname, port)


def _pages_after(current: httpx.URL, next_link: str, count: Any, ahead: int) -> list[httpx.URL]:
    """`next_link` and the pages after it, `ahead` in all, when it is `current` with only `offset` moved on
    by `limit` (limit/offset pagination), as far as `count` says pages exist; else none."""
    following = httpx.URL(next_link)
    try:
        limit = int(current.params["limit"])
        offset = int(current.params.get("offset", "0"))
        next_offset = int(following.params["offset"])
    except (KeyError, ValueError):
        return []
    rest = {k: v for k, v in current.params.multi_items() if k != "offset"}
    same = {k: v for k, v in following.params.multi_items() if k != "offset"}
    if (
        limit < 1
        or next_offset != offset + limit
        or rest != same
        or following.copy_with(query=None) != current.copy_with(query=None)
        or isinstance(count, bool)
        or not isinstance(count, int)
    ):
        return []
    offsets = range(next_offset, min(count, next_offset + limit * ahead), limit)
    return [following.copy_merge_params({"offset": str(o)}) for o in offsets]


def _origin_of(url: httpx.URL) -> str:
    scheme = url.scheme.lower()
    return _format_origin(scheme, url.host.lower().rstrip("."), url.port)


# -- results and statistics -------------------------------------------------------------------------


@dataclass
class RequestStats:
    """What a run spent. Counts HTTP requests actually sent (each retry is one more request)."""

    by_kind: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    #: 429 responses met.
    throttled: int = 0
    #: Requests repeated after a retryable failure.
    retries: int = 0
    #: Seconds slept because of 429s (Retry-After, the detail's hint, or backoff).
    waited_s: float = 0.0
    #: Requests that got no HTTP status (connection error, timeout).
    transport_failures: int = 0
    #: Best-effort query cancellations that failed (never raised).
    cancel_failures: int = 0

    @property
    def requests(self) -> int:
        return sum(self.by_kind.values())

    def count(self, kind: str | None = None) -> int:
        """Requests sent of one kind ("list", "retrieve", "poll", "cancel", "activity"), or of all kinds."""
        return self.requests if kind is None else self.by_kind[kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_kind": {kind: self.by_kind[kind] for kind in sorted(self.by_kind)},
            "by_status": {str(status): self.by_status[status] for status in sorted(self.by_status)},
            "throttled": self.throttled,
            "retries": self.retries,
            "waited_s": round(self.waited_s, 3),
            "transport_failures": self.transport_failures,
            "cancel_failures": self.cancel_failures,
        }


@dataclass(frozen=True)
class QueryStatus:
    """One poll of an async query: running, complete (``response`` is the insight-shaped result) or error."""

    state: Literal["running", "complete", "error"]
    response: dict[str, Any] | None = None
    error_message: str | None = None


def job_response(query_status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The insight-shaped response a completed job holds in ``query_status.results``, else None.

    PostHog stores the query runner's response there, whose rows are under ``results``; the insight
    endpoints call them ``result``. Both spellings are accepted, so either reads as a retrieve payload.
    """
    results = query_status.get("results")
    if not isinstance(results, dict):
        return None
    if results.get("result") is None and isinstance(results.get("results"), list | dict):
        return {**results, "result": results["results"]}
    return results


@dataclass(frozen=True)
class _Response:
    status: int
    body: Any
    headers: httpx.Headers
    nbytes: int = 0  # size of the body as received


class Page(list[dict[str, Any]]):
    """One page of ``results``; ``nbytes`` is the size of the response body it came in, which callers use
    to bound what they hold."""

    nbytes: int = 0


class _Retryable(Exception):
    """An attempt failed in a way worth repeating; never leaves the client."""

    def __init__(self, cause: str, *, status: int | None = None, wait_s: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status
        self.wait_s = wait_s


class _Secret:
    """Holds the key so that no repr, vars() dump or debugger view of the client shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__


def _check_key(personal_api_key: str) -> str:
    if not isinstance(personal_api_key, str):
        raise ConfigError("personal_api_key", "must be text (a personal API key starting with phx_)")
    key = personal_api_key.strip()
    if not key:
        raise ConfigError(
            "personal_api_key",
            "empty; set POSTHOG_PERSONAL_API_KEY or sources.posthog_insights.personal_api_key in"
            " .dlt/secrets.toml",
        )
    if not key.isascii() or not key.isprintable() or any(ch.isspace() for ch in key):
        # Never echo it: say only what is wrong.
        raise ConfigError(
            "personal_api_key", "contains spaces or non-printable characters; paste the key exactly"
        )
    return key


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, f"must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(name, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def _project(project_id: int) -> str:
    if isinstance(project_id, bool):
        raise ConfigError("project_id", f"must be a whole number, got {project_id!r}")
    if isinstance(project_id, str) and project_id.strip().isdigit():
        project_id = int(project_id.strip())
    if not isinstance(project_id, int) or project_id < 1:
        raise ConfigError(
            "project_id", f"must be a positive whole number (see the project's URL), got {project_id!r}"
        )
    return str(project_id)


def _segment(value: int | str, setting: str) -> str:
    text = str(value).strip()
    if not text or isinstance(value, bool):
        raise ConfigError(setting, f"must not be empty, got {value!r}")
    return quote(text, safe="")


# -- the client ---------------------------------------------------------------------------------------


class PostHogClient:
    """Async client for one PostHog host and personal API key. Use as ``async with PostHogClient(...)``.

    ``pacer`` defaults to a new ``Pacer()`` with PostHog Cloud's windows; share one pacer between clients
    that use the same key. ``stats`` defaults to a new ``RequestStats`` (read it back as ``client.stats``).
    ``max_retries`` is the number of retries after the first attempt. ``backoff_s`` / ``backoff_max_s``
    shape the exponential backoff (plus up to ``backoff_s`` of jitter) between retries.
    """

    def __init__(
        self,
        host: str,
        personal_api_key: str,
        *,
        pacer: Pacer | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        stats: RequestStats | None = None,
        backoff_s: float = DEFAULT_BACKOFF_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        allow_insecure_http: bool = False,
    ) -> None:
        self.origin = normalize_host(host, allow_insecure_http=allow_insecure_http)
        self._key = _Secret(_check_key(personal_api_key))
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError("max_retries", f"must be a whole number >= 0, got {max_retries!r}")
        self.timeout_s = _positive("timeout_s", timeout_s)
        self.max_retries = max_retries
        self.max_wait_s = _positive("max_wait_s", max_wait_s, allow_zero=True)
        self.backoff_s = _positive("backoff_s", backoff_s, allow_zero=True)
        self.backoff_max_s = _positive("backoff_max_s", backoff_max_s, allow_zero=True)
        self.pacer = pacer if pacer is not None else Pacer()
        self.stats = stats if stats is not None else RequestStats()
        # Exponential backoff plus up to one base of random jitter (tenacity's own wait strategies).
        self._backoff = wait_exponential(multiplier=self.backoff_s, max=self.backoff_max_s) + wait_random(
            0, self.backoff_s
        )
        self._http: httpx.AsyncClient | None = None
        # Set by a 429 whose wait exceeds max_wait_s: until then every request fails at once, unsent.
        # Requests queued behind the first 429 would only meet the same 429 (and PostHog counts refused
        # requests against the key's other windows, so they would lengthen the wait).
        self._refused_until = -math.inf

    def __repr__(self) -> str:
        return f"PostHogClient(origin={self.origin!r}, open={self._http is not None})"

    async def __aenter__(self) -> PostHogClient:
        if self._http is not None:
            raise RuntimeError("PostHogClient is already open; use one `async with` at a time")
        concurrency = self.pacer.concurrency
        self._http = httpx.AsyncClient(
            headers={
                "Authorization": f"Bearer {self._key.reveal()}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(self.timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- public API ------------------------------------------------------------------------------

    async def list_insights(
        self,
        project_id: int,
        *,
        params: Mapping[str, str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        basic: bool = False,
    ) -> AsyncIterator[Page]:
        """Yield each page's ``results`` of ``GET /api/projects/{id}/insights/``, in a stable order.

        Always sends an explicit ``order`` (``settings.LIST_ORDER`` unless ``params['order']``): PostHog's
        default order is unstable. Without ``basic`` every item carries its cached result.
        """
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ConfigError("page_size", f"must be a whole number >= 1, got {page_size!r}")
        query: dict[str, str] = {"limit": str(page_size), "offset": "0", "order": LIST_ORDER}
        if basic:
            query["basic"] = "true"
        query.update(params or {})
        if not query.get("order"):
            query["order"] = LIST_ORDER
        url = f"{self.origin}/api/projects/{_project(project_id)}/insights/"
        pages = self._paginate("list", url, query, project_id=project_id, prefetch=LIST_PREFETCH_PAGES)
        async for page in pages:
            yield page

    async def get_insight(
        self,
        project_id: int,
        insight_id: int | str,
        *,
        refresh: str,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """``GET /api/projects/{id}/insights/{insight_id}/?refresh=MODE`` (+ ``from_dashboard``,
        ``filters_override`` / ``variables_override`` as JSON strings, ... via ``params``)."""
        if refresh not in REFRESH_MODES:
            raise ConfigError("refresh", f"{refresh!r} is not one of {', '.join(REFRESH_MODES)}")
        query = {**(params or {}), "refresh": refresh}
        url = (
            f"{self.origin}/api/projects/{_project(project_id)}/insights/"
            f"{_segment(insight_id, 'insight_id')}/"
        )
        response = await self._request(
            "retrieve", "GET", url, params=query, project_id=project_id, insight_id=insight_id
        )
        body: dict[str, Any] = response.body
        return body

    async def query_status(self, project_id: int, query_id: str) -> QueryStatus:
        """Poll ``GET /api/environments/{id}/query/{query_id}/``: 202 running, 200 complete, 400 error.

        A 500 that persists through the retries is an ``error`` status (PostHog's answer for a failed query
        without a message); 403 raises ``PermissionDeniedError`` (the key lacks ``query:read``: fall back
        to a ``force_cache`` re-GET of the insight).
        """
        url = self._query_url(project_id, query_id)
        try:
            response = await self._request("poll", "GET", url, accept=(200, 202, 400), project_id=project_id)
        except TransportError as exc:
            if exc.status is not None and exc.status >= 500:
                return QueryStatus("error", None, f"HTTP {exc.status} from the query-status endpoint")
            raise
        body: dict[str, Any] = response.body if isinstance(response.body, dict) else {}
        nested = body.get("query_status")
        status: dict[str, Any] = nested if isinstance(nested, dict) else body
        if response.status == 202:
            return QueryStatus("running")
        if response.status == 400:
            message = status.get("error_message") or body.get("detail") or body.get("error_message")
            return QueryStatus("error", None, self._clean(str(message)) if message else "the query failed")
        if status.get("error"):
            message = status.get("error_message")
            return QueryStatus("error", None, self._clean(str(message)) if message else "the query failed")
        if status.get("complete") is False:
            return QueryStatus("running")
        return QueryStatus("complete", job_response(status), None)

    async def cancel_query(self, project_id: int, query_id: str) -> None:
        """Best-effort ``DELETE`` of an async query: one attempt, failures only counted and logged."""
        try:
            url = self._query_url(project_id, query_id)
            await self._request(
                "cancel", "DELETE", url, accept=(200, 202, 204), project_id=project_id, attempts=1
            )
        except PostHogInsightsError as exc:
            self.stats.cancel_failures += 1
            logger.debug("cancel of query %s failed (ignored): %s", query_id, exc)

    async def list_activity(
        self,
        project_id: int,
        insight_id: int | None = None,
        *,
        params: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Page]:
        """Yield pages of the activity log: ``.../insights/{id}/activity/`` or ``.../insights/activity/``."""
        base = f"{self.origin}/api/projects/{_project(project_id)}/insights/"
        url = (
            f"{base}{_segment(insight_id, 'insight_id')}/activity/"
            if insight_id is not None
            else f"{base}activity/"
        )
        async for page in self._paginate("activity", url, dict(params or {}), project_id=project_id):
            yield page

    # -- pagination ------------------------------------------------------------------------------

    async def _paginate(
        self,
        kind: RequestKind,
        url: str,
        params: Mapping[str, str],
        *,
        project_id: int,
        prefetch: int = 0,
    ) -> AsyncIterator[Page]:
        """Follow ``next`` links; with ``prefetch``, fetch up to that many later pages ahead.

        Pages still come out in order and each is checked as it comes. Which pages to fetch ahead is read
        from the page just fetched: its ``count`` and a ``next`` link that only moves ``offset`` on by
        ``limit`` (PostHog's limit/offset pagination), so nothing past the last page is requested.
        """
        current = httpx.URL(url, params=dict(params)) if params else httpx.URL(url)
        seen_urls: set[str] = set()
        seen_ids: set[int | str] = set()
        ahead: dict[str, asyncio.Task[_Response]] = {}
        try:
            while True:
                seen_urls.add(str(current))
                task = ahead.pop(str(current), None)
                if task is not None:
                    response = await task
                else:
                    response = await self._request(kind, "GET", current, project_id=project_id)
                body = response.body
                next_link = body.get("next") if isinstance(body, dict) else None
                if prefetch and isinstance(next_link, str):
                    for page_url in _pages_after(current, next_link, body.get("count"), prefetch):
                        if str(page_url) not in ahead and str(page_url) not in seen_urls:
                            ahead[str(page_url)] = asyncio.ensure_future(
                                self._request(kind, "GET", page_url, project_id=project_id)
                            )
                results = Page(self._page_results(current, body, seen_ids))
                results.nbytes = response.nbytes
                yield results
                if not results or not next_link:
                    return
                current = self._next_page(current, next_link, seen_urls)
        finally:
            for task in ahead.values():
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not warn about it
                else:
                    task.cancel()

    def _page_results(self, current: httpx.URL, body: Any, seen_ids: set[int | str]) -> list[dict[str, Any]]:
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise PostHogInsightsError(
                f"GET {current.path} on {self.origin}: the response is not a page (no 'results' list);"
                " check that host points at the PostHog API"
            )
        ids = [
            item["id"]
            for item in results
            if isinstance(item, dict) and isinstance(item.get("id"), int | str) and item["id"] != ""
        ]
        if ids and all(item_id in seen_ids for item_id in ids):
            raise PaginationLoopError(
                self.origin, current.path, f"a page of {len(ids)} items all listed before came back"
            )
        seen_ids.update(ids)
        return results

    def _next_page(self, current: httpx.URL, next_link: Any, seen_urls: set[str]) -> httpx.URL:
        if not isinstance(next_link, str):
            raise PostHogInsightsError(
                f"GET {current.path} on {self.origin}: 'next' is not a URL; check that host points at"
                " the PostHog API"
            )
        following = self._safe_next(next_link, current)
        if str(following) in seen_urls:
            raise PaginationLoopError(
                self.origin, following.path, "the next link points to a page already fetched"
            )
        return following

    def _safe_next(self, link: str, base: httpx.URL) -> httpx.URL:
        try:
            candidate = httpx.URL(link)
            if not candidate.is_absolute_url:
                candidate = base.join(link)
        except httpx.InvalidURL:
            raise PostHogInsightsError(
                f"pagination: PostHog's next link on {self.origin} is not a valid URL; stopped listing"
            ) from None
        if candidate.userinfo:
            raise UnsafeNextLinkError(self.origin, _origin_of(candidate) + " (with user:password)")
        next_origin = _origin_of(candidate)
        if next_origin == self.origin:
            return candidate
        ours = httpx.URL(self.origin)
        if (
            ours.scheme == "https"
            and candidate.scheme == "http"
            and candidate.host.lower() == ours.host
            and candidate.port in (None, 80)
        ):
            # Same host, link built as http:// by a server behind a TLS-terminating proxy: follow the
            # path on our (https) origin; the key still goes only to the configured origin, encrypted.
            logger.debug("next link on %s uses http://; following it over %s", candidate.host, self.origin)
            return candidate.copy_with(scheme=ours.scheme, port=ours.port)
        raise UnsafeNextLinkError(self.origin, next_origin)

    # -- one request, with retries -----------------------------------------------------------------

    def _query_url(self, project_id: int, query_id: str) -> str:
        return (
            f"{self.origin}/api/environments/{_project(project_id)}/query/{_segment(query_id, 'query_id')}/"
        )

    def _clean(self, text: str) -> str:
        """PostHog-provided text made safe for messages: without the key, one line, truncated."""
        return truncate(text.replace(self._key.reveal(), "<redacted>"))

    async def _request(
        self,
        kind: RequestKind,
        method: str,
        url: str | httpx.URL,
        *,
        params: Mapping[str, str] | None = None,
        accept: tuple[int, ...] = (200,),
        project_id: int | None = None,
        insight_id: int | str | None = None,
        attempts: int | None = None,
    ) -> _Response:
        if self._http is None:
            raise RuntimeError(
                "PostHogClient is not open; use it as `async with PostHogClient(...) as client`"
            )
        total = attempts if attempts is not None else self.max_retries + 1
        request_url = httpx.URL(url, params=dict(params)) if params else httpx.URL(url)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(total),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        failure: _Retryable | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(
                        kind,
                        method,
                        request_url,
                        accept=accept,
                        attempt_no=attempt.retry_state.attempt_number,
                        project_id=project_id,
                        insight_id=insight_id,
                    )
        except _Retryable as exc:
            failure = exc
        # Raised outside the except block: nothing of the failed attempts is chained to the error.
        if failure is None:
            raise AssertionError("unreachable: tenacity either returns or raises")
        if failure.status == 429:
            raise RateLimitExceededError(
                self.origin, wait_s=failure.wait_s, max_wait_s=self.max_wait_s, attempts=total
            )
        raise TransportError(
            self.origin,
            method=method,
            path=request_url.path,
            attempts=total,
            last_cause=failure.cause,
            status=failure.status,
        )

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.status == 429:
            wait = exc.wait_s
            if wait is None:
                # No hint from PostHog: back off, and hold every other request of the run as well.
                wait = float(self._backoff(retry_state))
                self.pacer.pause(wait)
            self.stats.waited_s += wait
            return wait
        return float(self._backoff(retry_state))

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        sleep = retry_state.next_action.sleep if retry_state.next_action is not None else 0.0
        logger.debug("retrying in %.2f s after attempt %d: %s", sleep, retry_state.attempt_number, exc)

    async def _attempt(
        self,
        kind: RequestKind,
        method: str,
        url: httpx.URL,
        *,
        accept: tuple[int, ...],
        attempt_no: int,
        project_id: int | None,
        insight_id: int | str | None,
    ) -> _Response:
        http = self._http
        if http is None:
            raise RuntimeError("PostHogClient was closed during a request")
        target = url.raw_path.decode("ascii", "replace")
        async with self.pacer.slot():
            refused_for = self._refused_until - time.monotonic()
            if refused_for > self.max_wait_s:
                raise RateLimitExceededError(self.origin, wait_s=refused_for, max_wait_s=self.max_wait_s)
            self.stats.by_kind[kind] += 1
            response: httpx.Response | None = None
            failure: _Retryable | None = None
            try:
                response = await http.request(method, url)
            except httpx.TimeoutException as exc:
                self.stats.transport_failures += 1
                logger.debug("%s %s -> timeout (%s, attempt %d)", method, target, kind, attempt_no)
                failure = _Retryable(f"timeout after {self.timeout_s:g} s ({type(exc).__name__})")
            except httpx.RequestError as exc:
                self.stats.transport_failures += 1
                logger.debug(
                    "%s %s -> %s (%s, attempt %d)", method, target, type(exc).__name__, kind, attempt_no
                )
                failure = _Retryable(f"{type(exc).__name__}: {self._clean(str(exc)) or 'connection failed'}")
            # Raised outside the except blocks, so the httpx exception (and its request, whose headers
            # hold the key) is not chained to anything that leaves the client.
            if failure is not None or response is None:
                raise failure or _Retryable("no response")
            status = response.status_code
            self.stats.by_status[status] += 1
            logger.debug("%s %s -> %d (%s, attempt %d)", method, target, status, kind, attempt_no)
            if status == 429:
                self.stats.throttled += 1
                wait = self._throttle_wait(response)
                if wait is not None and wait > self.max_wait_s:
                    self._refused_until = max(self._refused_until, time.monotonic() + wait)
                    raise RateLimitExceededError(self.origin, wait_s=wait, max_wait_s=self.max_wait_s)
                if wait is not None:
                    # Pause before this slot closes, so no queued request slips in ahead of the pause.
                    self.pacer.pause(wait)
                raise _Retryable("HTTP 429 throttled", status=429, wait_s=wait)
        if status in accept:
            return _Response(
                status,
                self._parse_body(response, strict=200 <= status < 300 and status != 202),
                response.headers,
                len(response.content),
            )
        self._raise_for_status(kind, method, url, response, project_id=project_id, insight_id=insight_id)

    def _parse_body(self, response: httpx.Response, *, strict: bool) -> Any:
        content = response.content
        if response.status_code == 204 or not content.strip():
            if strict and response.request.method == "GET":
                raise _Retryable(
                    f"HTTP {response.status_code} with an empty body", status=response.status_code
                )
            return None
        try:
            body = orjson.loads(content)
        except orjson.JSONDecodeError:
            if not strict:
                return None
            raise _Retryable(
                f"HTTP {response.status_code} with a body that is not valid JSON ({len(content)} bytes,"
                " truncated?)"
            ) from None
        if strict and not isinstance(body, dict):
            raise _Retryable(f"HTTP {response.status_code} with a JSON {type(body).__name__}, not an object")
        return body

    def _error_fields(self, response: httpx.Response) -> tuple[str | None, str | None, str | None]:
        """PostHog's ``{type, code, detail, attr}`` error body: (detail, code, attr), cleaned."""
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            text = response.text.strip()
            return (self._clean(text) if text else None), None, None
        if not isinstance(body, dict):
            return self._clean(str(body)), None, None
        detail = body.get("detail") or body.get("error_message") or body.get("error")
        code, attr = body.get("code"), body.get("attr")
        return (
            self._clean(str(detail)) if detail else None,
            self._clean(str(code)) if code else None,
            self._clean(str(attr)) if attr else None,
        )

    def _throttle_wait(self, response: httpx.Response) -> float | None:
        """Seconds a 429 asks to wait: ``Retry-After`` (seconds or HTTP date), else the detail's hint."""
        header = response.headers.get("retry-after", "").strip()
        if header:
            try:
                seconds = float(header)
                if math.isfinite(seconds):
                    return max(0.0, seconds)
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(header)
                    return max(0.0, when.timestamp() - time.time())
                except (TypeError, ValueError):
                    pass
        detail = self._error_fields(response)[0] or ""
        match = _EXPECTED_AVAILABLE_RE.search(detail)
        return float(match[1]) if match else None

    def _raise_for_status(
        self,
        kind: RequestKind,
        method: str,
        url: httpx.URL,
        response: httpx.Response,
        *,
        project_id: int | None,
        insight_id: int | str | None,
    ) -> NoReturn:
        status = response.status_code
        path = url.path
        if status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status}", status=status)
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            try:
                target = _origin_of(url.join(location)) if location else "nowhere"
            except (httpx.InvalidURL, ValueError):
                target = "an invalid location"
            raise ConfigError(
                "host",
                f"HTTP {status} redirect from {self.origin}{path} to {target}; redirects are not followed"
                " (they would carry the API key); set host to the origin that serves PostHog's API",
            )
        detail, code, attr = self._error_fields(response)
        if status == 401:
            raise AuthenticationError(self.origin, detail)
        if status == 403:
            raise PermissionDeniedError(
                self.origin, project_id=project_id, scope=_SCOPES[kind], detail=detail
            )
        if status == 404:
            raise NotFoundError(self.origin, path, detail)
        if status == 400:
            raise QueryError(self.origin, path, detail=detail, code=code, attr=attr, insight_id=insight_id)
        raise UnexpectedStatusError(self.origin, method=method, path=path, status=status, detail=detail)
