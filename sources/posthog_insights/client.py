"""The PostHog Insights API as Python calls: list, retrieve, query status, cancel, activity, dashboards.

dlt's HTTP helpers are requests-only, so this is a small httpx client of our own. It holds the endpoints
and maps PostHog's answers to errors; retries, pacing and the 429 policy are the transports under it
(transport.py), pagination a function (pagination.py), the host check is done where settings are read
(hosts.py). Two rules it keeps itself:

* The `httpx.AsyncClient` is created in `__aenter__`, inside the running loop: dlt starts a new event
  loop per extract, and a client bound to a dead loop fails on its next request.
* The personal API key travels only in the `Authorization: Bearer` header, to the configured origin. It
  is never put in a URL (the server would accept it there, and URLs end up in logs), never logged, never
  in an exception: errors carry statuses, paths and PostHog's `detail` (scrubbed of the key, truncated).
  Redirects are not followed (they would carry the header to wherever they point).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn
from urllib.parse import quote

import httpx
import orjson

from posthog_insights.config import REFRESH_MODES
from posthog_insights.errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    PostHogInsightsError,
    QueryError,
    TransportError,
    UnexpectedStatusError,
    truncate,
)
from posthog_insights.hosts import origin_of
from posthog_insights.pacer import Pacer
from posthog_insights.pagination import Page, paginate
from posthog_insights.transport import (
    ATTEMPTS,
    FRESH_QUERY_ID,
    JSON,
    KIND,
    PacedTransport,
    RequestStats,
    RetryingTransport,
    Throttle,
)

logger = logging.getLogger("posthog_insights")

USER_AGENT = "posthog-insights/0.1"
# The list is always ordered explicitly: PostHog's default order is unstable (nullable column, no
# tie-breaker), so pages can repeat or skip rows.
LIST_ORDER = "id"
# List pages fetched ahead of the one being read (their requests still go through the pacer).
LIST_PREFETCH_PAGES = 8
# ... and no more of them than fit this many bytes of response body (parsed, a page takes a few times its
# body): a page of year-long daily trends is megabytes, a page of small results a few hundred KB.
LIST_PREFETCH_BYTES = 8 * 2**20
# Dashboards per page of their list: PostHog orders it `-pinned, name` with no tie-breaker (and takes no
# `order`), so dashboards of the same name can repeat or go missing across offset pages; one page this
# big holds a project's dashboards whole (no maximum `limit` there; an item is under 1 KB).
DASHBOARDS_PAGE_SIZE = 1000
DEFAULT_BACKOFF_S = 0.5
DEFAULT_BACKOFF_MAX_S = 30.0

RequestKind = Literal["list", "retrieve", "poll", "cancel", "activity", "dashboards"]
# The personal-API-key scope each kind of request needs (named in 403 messages).
_SCOPES: dict[str, str] = {
    "list": "insight:read",
    "retrieve": "insight:read",
    "poll": "query:read",
    "cancel": "query:read",
    "activity": "activity_log:read",
    "dashboards": "dashboard:read",
}

__all__ = ["Page", "PostHogClient", "QueryStatus", "RequestStats", "job_response"]


@dataclass(frozen=True)
class QueryStatus:
    """One poll of an async query: running, complete (`response` is the insight-shaped result) or error."""

    state: Literal["running", "complete", "error"]
    response: dict[str, Any] | None = None
    error_message: str | None = None


def job_response(query_status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The insight-shaped response a completed job holds in `query_status.results`, else None.

    PostHog stores the query runner's response there, whose rows are under `results`; the insight
    endpoints call them `result`. Both spellings are accepted, so either reads as a retrieve payload.
    """
    results = query_status.get("results")
    if not isinstance(results, dict):
        return None
    if results.get("result") is None and isinstance(results.get("results"), list | dict):
        return {**results, "result": results["results"]}
    return results


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


def _segment(value: int | str) -> str:
    return quote(str(value).strip(), safe="")


def _may_compute(refresh: str | None) -> bool:
    """Whether PostHog may calculate while answering a read with this `refresh` (None: force_cache)."""
    return refresh is not None and refresh != "force_cache"


def _check_refresh(refresh: str) -> str:
    if refresh not in REFRESH_MODES:
        raise ConfigError("refresh", f"{refresh!r} is not one of {', '.join(REFRESH_MODES)}")
    return refresh


class PostHogClient:
    """Async client for one PostHog origin and personal API key. Use as `async with PostHogClient(...)`.

    `origin` is an already checked `scheme://host[:port]` (`hosts.normalize_host`). `pacer` defaults to a
    new `Pacer()` with PostHog Cloud's windows; share one pacer between clients that use the same key.
    `stats` defaults to a new `RequestStats`. `max_retries` counts retries after the first attempt;
    `backoff_s` / `backoff_max_s` shape the exponential backoff (plus up to `backoff_s` of jitter).
    `transport` replaces the network under the retry and pacing layers (tests use `httpx.MockTransport`).
    """

    def __init__(
        self,
        origin: str,
        personal_api_key: str,
        *,
        pacer: Pacer | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        max_wait_s: float = 300.0,
        stats: RequestStats | None = None,
        backoff_s: float = DEFAULT_BACKOFF_S,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.origin = origin
        self._key = _Secret(personal_api_key.strip())
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.pacer = pacer if pacer is not None else Pacer()
        self.stats = stats if stats is not None else RequestStats()
        self._network = transport
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"PostHogClient(origin={self.origin!r}, open={self._http is not None})"

    async def __aenter__(self) -> PostHogClient:
        if self._http is not None:
            raise RuntimeError("PostHogClient is already open; use one `async with` at a time")
        concurrency = self.pacer.concurrency
        network = self._network or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        )
        throttle = Throttle(self.pacer, self.max_wait_s)
        transport = RetryingTransport(
            PacedTransport(network, self.pacer, throttle, self.stats),
            throttle=throttle,
            stats=self.stats,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            timeout_s=self.timeout_s,
            redact=self._clean,
        )
        self._http = httpx.AsyncClient(
            headers={
                "Authorization": f"Bearer {self._key.reveal()}",
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(self.timeout_s),
            follow_redirects=False,
            transport=transport,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    # -- endpoints ---------------------------------------------------------------------------------

    def _project_url(self, project_id: int, rest: str, scope: str = "projects") -> str:
        return f"{self.origin}/api/{scope}/{int(project_id)}/{rest}"

    async def list_insights(
        self,
        project_id: int,
        *,
        params: Mapping[str, str] | None = None,
        page_size: int = 100,
        basic: bool = False,
        refresh: str | None = None,
        offset: int = 0,
        kept: dict[int, tuple[Any, int]] | None = None,
        prefetch: int = LIST_PREFETCH_PAGES,
    ) -> AsyncGenerator[Page, None]:
        """Yield each page's `results` of `GET /api/projects/{id}/insights/`, in a stable order.

        Always sends an explicit `order` (`LIST_ORDER` unless `params['order']`): PostHog's default
        order is unstable. Without `basic` every item carries its cached result; with `refresh` the page
        computes (or starts jobs for) its items as a retrieve of each would. `offset` and `kept` resume a
        listing stopped early (pagination.paginate); `prefetch` 0 fetches each page only when asked for.
        """
        query: dict[str, str] = {"limit": str(page_size), "offset": str(offset), "order": LIST_ORDER}
        if basic:
            query["basic"] = "true"
        if refresh is not None:
            query["refresh"] = _check_refresh(refresh)
        query.update(params or {})
        if not query.get("order"):
            query["order"] = LIST_ORDER
        first = httpx.URL(self._project_url(project_id, "insights/"), params=query)
        may_compute = _may_compute(refresh)

        async def fetch(url: httpx.URL) -> tuple[Any, int]:
            response = await self._send("list", "GET", url, project_id=project_id, fresh_query_id=may_compute)
            return response.extensions[JSON], len(response.content)

        pages = paginate(
            fetch,
            first,
            origin=self.origin,
            prefetch=prefetch,
            prefetch_bytes=LIST_PREFETCH_BYTES,
            kept=kept,
        )
        async with contextlib.aclosing(pages):
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
        """`GET /api/projects/{id}/insights/{insight_id}/?refresh=MODE` (+ `from_dashboard`,
        `filters_override` / `variables_override` as JSON strings, ... via `params`)."""
        query = {**(params or {}), "refresh": _check_refresh(refresh)}
        url = httpx.URL(self._project_url(project_id, f"insights/{_segment(insight_id)}/"), params=query)
        response = await self._send(
            "retrieve",
            "GET",
            url,
            project_id=project_id,
            insight_id=insight_id,
            fresh_query_id=_may_compute(refresh),
        )
        body: dict[str, Any] = response.extensions[JSON]
        return body

    def _query_url(self, project_id: int, query_id: str) -> httpx.URL:
        return httpx.URL(self._project_url(project_id, f"query/{_segment(query_id)}/", scope="environments"))

    async def query_status(self, project_id: int, query_id: str) -> QueryStatus:
        """Poll `GET /api/environments/{id}/query/{query_id}/`: 202 running, 200 complete, 400 error.

        A 500 that persists through the retries is an `error` status (PostHog's answer for a failed query
        without a message); 403 raises `PermissionDeniedError` (the key lacks `query:read`: fall back to
        a `force_cache` re-GET of the insight); 404 `NotFoundError` (the status expired).
        """
        try:
            response = await self._send(
                "poll",
                "GET",
                self._query_url(project_id, query_id),
                accept=(200, 202, 400),
                project_id=project_id,
            )
        except TransportError as exc:
            if exc.status is not None and exc.status >= 500:
                return QueryStatus("error", None, f"HTTP {exc.status} from the query-status endpoint")
            raise
        body = response.extensions.get(JSON) or _loose_json(response)
        nested = body.get("query_status") if isinstance(body, dict) else None
        status: dict[str, Any] = (
            nested if isinstance(nested, dict) else body if isinstance(body, dict) else {}
        )
        if response.status_code == 202:
            return QueryStatus("running")
        if response.status_code == 400 or status.get("error"):
            message = status.get("error_message") or (body.get("detail") if isinstance(body, dict) else None)
            return QueryStatus("error", None, self._clean(str(message)) if message else "the query failed")
        if status.get("complete") is False:
            return QueryStatus("running")
        return QueryStatus("complete", job_response(status), None)

    async def cancel_query(self, project_id: int, query_id: str) -> None:
        """Best-effort `DELETE` of an async query: one attempt, failures only counted and logged."""
        try:
            await self._send(
                "cancel",
                "DELETE",
                self._query_url(project_id, query_id),
                accept=(200, 202, 204),
                project_id=project_id,
                attempts=1,
            )
        except PostHogInsightsError as exc:
            self.stats.cancel_failures += 1
            logger.debug("cancel of query %s failed (ignored): %s", query_id, exc)

    async def list_activity(
        self, project_id: int, insight_id: int | None = None, *, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[Page]:
        """Yield pages of the activity log: `.../insights/{id}/activity/` or `.../insights/activity/`."""
        rest = "insights/activity/" if insight_id is None else f"insights/{_segment(insight_id)}/activity/"
        first = httpx.URL(self._project_url(project_id, rest), params=dict(params or {}))

        async def fetch(url: httpx.URL) -> tuple[Any, int]:
            response = await self._send("activity", "GET", url, project_id=project_id)
            return response.extensions[JSON], len(response.content)

        async for page in paginate(fetch, first, origin=self.origin):
            yield page

    async def list_dashboards(
        self, project_id: int, *, page_size: int = DASHBOARDS_PAGE_SIZE
    ) -> tuple[list[dict[str, Any]], bool]:
        """Every dashboard of `GET /api/projects/{id}/dashboards/` (metadata only: the list carries no
        tiles and never computes), once each, and whether the list is whole: as many distinct dashboards
        as its `count` says (an order that moved between pages, or a dashboard made meanwhile, can make
        it short; then what was read is true, but an absent dashboard is not known to be deleted)."""
        first = httpx.URL(self._project_url(project_id, "dashboards/"), params={"limit": str(page_size)})
        counts: list[int] = []

        async def fetch(url: httpx.URL) -> tuple[Any, int]:
            response = await self._send("dashboards", "GET", url, project_id=project_id)
            body = response.extensions[JSON]
            count = body.get("count") if isinstance(body, dict) else None
            if isinstance(count, int) and not isinstance(count, bool):
                counts.append(count)
            return body, len(response.content)

        found: dict[int, dict[str, Any]] = {}
        async for page in paginate(fetch, first, origin=self.origin):
            for item in page:
                if isinstance(item, dict) and isinstance(item.get("id"), int):
                    found.setdefault(int(item["id"]), item)
        return list(found.values()), bool(counts) and len(found) >= counts[-1]

    # -- one request -------------------------------------------------------------------------------

    async def _send(
        self,
        kind: RequestKind,
        method: str,
        url: httpx.URL,
        *,
        accept: tuple[int, ...] = (200,),
        project_id: int | None = None,
        insight_id: int | str | None = None,
        attempts: int | None = None,
        fresh_query_id: bool = False,
    ) -> httpx.Response:
        if self._http is None:
            raise RuntimeError(
                "PostHogClient is not open; use it as `async with PostHogClient(...) as client`"
            )
        extensions: dict[str, Any] = {KIND: kind, FRESH_QUERY_ID: fresh_query_id}
        if attempts is not None:
            extensions[ATTEMPTS] = attempts
        response = await self._http.request(method, url, extensions=extensions)
        if response.status_code in accept:
            return response
        self._raise_for_status(kind, method, url, response, project_id=project_id, insight_id=insight_id)

    def _clean(self, text: str) -> str:
        """PostHog-provided text made safe for messages: without the key, one line, truncated."""
        return truncate(text.replace(self._key.reveal(), "<redacted>"))

    def _error_fields(self, response: httpx.Response) -> tuple[str | None, str | None, str | None]:
        """PostHog's `{type, code, detail, attr}` error body: (detail, code, attr), cleaned."""
        body = _loose_json(response)
        if body is None:
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
        if 300 <= status < 400:
            location = response.headers.get("location", "")
            try:
                target = origin_of(url.join(location)) if location else "nowhere"
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


def _loose_json(response: httpx.Response) -> Any:
    """The body as JSON if it is JSON (error bodies, 202s, DELETE answers), else None."""
    try:
        return orjson.loads(response.content) if response.content.strip() else None
    except orjson.JSONDecodeError:
        return None
