"""The HTTP face of the emulator: PostHog's routes, auth, throttling, pagination URLs and faults.

Two layers. `EmulatorApp` is a plain ASGI wrapper that does what a network and load balancer do
(latency, seeded faults: 5xx, truncated bodies, dropped connections, slow answers) and counts every
request; it needs raw ASGI because a truncated or dropped response cannot be expressed as a
Starlette `Response`. Inside it, a Starlette router maps PostHog's paths to small handlers that
authenticate like PostHog's personal-API-key auth, throttle like DRF, and delegate to the `Store`.

A read that must calculate synchronously is run here, between two store calls: the handler holds
one of the organisation's slots for the calculation's time (awaiting, so the event loop and the
store stay free), then has the store complete it; list items are calculated one after another.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib import parse

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from posthog_emulator import errors
from posthog_emulator.calculations import Calculator
from posthog_emulator.config import EmulatorConfig
from posthog_emulator.faults import FaultInjector
from posthog_emulator.models import Read, str_to_bool
from posthog_emulator.stats import Stats
from posthog_emulator.store import Store
from posthog_emulator.throttle import SlidingWindowThrottle

API_SCOPES = frozenset({"projects", "environments"})
# Paths under .../insights/ that are actions, not insight ids.
_INSIGHT_ACTIONS = frozenset(
    {"activity", "my_last_viewed", "viewed", "cancel", "trend", "funnel", "retention", "path"}
)
_API_PATH = re.compile(r"^/api/(?:projects|environments)/\d+/(.*?)/?$")
_DROP_LOG_MESSAGE = "ASGI callable returned without completing response."

Handler = Callable[[Request, int], Awaitable[Response]]


class _DropFaultLogFilter(logging.Filter):
    """A `drop` fault ends the response on purpose; uvicorn would log that as an error every time."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _DROP_LOG_MESSAGE


def install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DropFaultLogFilter) for existing in logger.filters):
        logger.addFilter(_DropFaultLogFilter())


def classify(method: str, path: str) -> str:
    """The stats kind of a request: list, retrieve, poll, cancel, dashboards (the dashboards list),
    dashboard (one dashboard) or other (compute is added later)."""
    match = _API_PATH.match(path)
    if match is None:
        return "other"
    rest = match.group(1).split("/")
    if rest[0] == "dashboards" and method == "GET" and len(rest) <= 2:
        return "dashboards" if len(rest) == 1 else "dashboard"
    if rest[0] == "insights":
        if len(rest) == 1 and method == "GET":
            return "list"
        if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
            return "cancel"
        if len(rest) == 2 and rest[1] not in _INSIGHT_ACTIONS and method == "GET":
            return "retrieve"
    elif rest[0] == "query" and len(rest) == 2:
        if method == "GET":
            return "poll"
        if method == "DELETE":
            return "cancel"
    return "other"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: errors.ApiError) -> Response:
    return json_response(error.body(), error.status, error.headers or None)


# DRF's URL helpers (rest_framework.utils.urls), so next/previous links are byte-for-byte PostHog's.
def replace_query_param(url: str, key: str, value: object) -> str:
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    query_dict = parse.parse_qs(query, keep_blank_values=True)
    query_dict[key] = [str(value)]
    query = parse.urlencode(sorted(query_dict.items()), doseq=True)
    return parse.urlunsplit((scheme, netloc, path, query, fragment))


def remove_query_param(url: str, key: str) -> str:
    scheme, netloc, path, query, fragment = parse.urlsplit(url)
    query_dict = parse.parse_qs(query, keep_blank_values=True)
    query_dict.pop(key, None)
    query = parse.urlencode(sorted(query_dict.items()), doseq=True)
    return parse.urlunsplit((scheme, netloc, path, query, fragment))


def absolute_url(request: Request) -> str:
    """DRF's `build_absolute_uri()`: scheme, the request's Host header, path and raw query string."""
    host = request.headers.get("host") or "127.0.0.1"
    query = request.scope.get("query_string", b"").decode("latin-1")
    return f"{request.url.scheme}://{host}{request.url.path}" + (f"?{query}" if query else "")


def page_links(url: str, *, offset: int, limit: int, count: int) -> tuple[str | None, str | None]:
    """DRF's LimitOffsetPagination `next` and `previous` links."""
    next_url = None
    if offset + limit < count:
        next_url = replace_query_param(replace_query_param(url, "limit", limit), "offset", offset + limit)
    previous_url = None
    if offset > 0:
        previous_url = replace_query_param(url, "limit", limit)
        if offset - limit <= 0:
            previous_url = remove_query_param(previous_url, "offset")
        else:
            previous_url = replace_query_param(previous_url, "offset", offset - limit)
    return next_url, previous_url


def _positive_int(value: str | None, *, default: int, strict: bool) -> int:
    """DRF's limit/offset parsing: a bad value silently becomes the default."""
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        return default
    if number < 0 or (number == 0 and strict):
        return default
    return number


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.ApiError(400, "validation_error", "parse_error", f"JSON parse error - {exc}") from exc
    if not isinstance(body, dict):
        raise errors.ApiError(400, "validation_error", "parse_error", "JSON parse error - expected an object")
    return body


class Api:
    """PostHog's endpoints over a `Store`."""

    def __init__(
        self,
        config: EmulatorConfig,
        store: Store,
        throttles: dict[str, SlidingWindowThrottle | None],
        calculator: Calculator,
    ) -> None:
        self.config = config
        self.store = store
        self.throttles = throttles  # by bucket: "insights", "other"
        self.calculator = calculator

    # -- request preamble ------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str:
        """PostHog's personal API key auth: `Authorization: Bearer <key>`, or `?personal_api_key=`."""
        header = request.headers.get("authorization")
        key: str | None = None
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                key = value.strip()
        if key is None:
            key = request.query_params.get("personal_api_key") or None
        if key is None:
            raise errors.not_authenticated()
        if key != self.config.api_key:
            raise errors.authentication_failed()
        return key

    def endpoint(
        self, handler: Handler, methods: frozenset[str], *, bucket: str | None
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler with auth, project checks, DRF throttling (in `bucket`'s windows, None: not
        throttled) and PostHog's error bodies."""
        throttle = self.throttles.get(bucket) if bucket is not None else None

        async def run(request: Request) -> Response:
            try:
                if request.path_params.get("scope") not in API_SCOPES:
                    raise errors.not_found()
                # DRF's order: authentication, permissions (the project), throttles, then the method.
                key = self._authenticate(request)
                project_id: int = request.path_params["project_id"]
                self.store.check_project(project_id)
                if throttle is not None:
                    wait = throttle.check(key)
                    if wait is not None:
                        raise errors.throttled(wait)
                if request.method not in methods:
                    raise errors.method_not_allowed(request.method)
                return await handler(request, project_id)
            except errors.ApiError as error:
                return error_response(error)

        return run

    @staticmethod
    def _mark_computed(request: Request, computed: bool) -> None:
        if computed:
            request.scope.setdefault("emulator", {})["computed"] = True

    async def _calculate(self, reads: list[Read]) -> bool:
        """Run the pending reads' calculations one after another, each in a slot of its own; True if
        any computed. A refusal or failure without client_query_id raises the store's 500."""
        computed = False
        for read in reads:
            if not read.pending:
                continue
            async with self.calculator.slot() as granted:
                if not granted:
                    self.store.refuse(read)
                    continue
                ok = False
                try:
                    ok = self.store.complete(read)
                finally:
                    self.calculator.stats.calculation_ended(ok=ok)
                computed = computed or ok
        return computed

    # -- insights ----------------------------------------------------------------------------------------

    async def insights(self, request: Request, project_id: int) -> Response:
        if request.method == "POST":
            body = await _json_body(request)
            return json_response(self.store.create(project_id, body), 201)
        params = dict(request.query_params)
        limit = _positive_int(params.get("limit"), default=100, strict=True)
        offset = _positive_int(params.get("offset"), default=0, strict=False)
        basic = str_to_bool(params.get("basic", "0"))
        count, reads, items = self.store.begin_list(
            project_id, params, basic=basic, offset=offset, limit=limit
        )
        if reads:
            self._mark_computed(request, await self._calculate(reads))
            items = self.store.represent(reads)
        next_url, previous_url = page_links(absolute_url(request), offset=offset, limit=limit, count=count)
        return json_response({"count": count, "next": next_url, "previous": previous_url, "results": items})

    async def insight(self, request: Request, project_id: int) -> Response:
        ident = request.path_params["ident"]
        if request.method == "DELETE":
            # PostHog's ForbidDestroyModel: 405 with an empty body; deletion is PATCH {"deleted": true}.
            return Response(status_code=405)
        if request.method in ("PATCH", "PUT"):
            body = await _json_body(request)
            return json_response(self.store.update(project_id, ident, body))
        params = request.query_params
        read = self.store.begin_retrieve(
            project_id,
            ident,
            refresh=params.get("refresh"),
            from_dashboard=params.get("from_dashboard"),
            filters_override=params.get("filters_override"),
            variables_override=params.get("variables_override"),
            client_query_id=params.get("client_query_id"),
        )
        self._mark_computed(request, await self._calculate([read]))
        return json_response(self.store.represent([read])[0])

    # -- dashboards (DashboardsViewSet: the `dashboard:read` scope, the default throttles) ---------------

    def _dashboard_scope(self) -> None:
        if not self.config.allow_dashboards:
            raise errors.permission_denied("API key missing required scope 'dashboard:read'")

    async def dashboards(self, request: Request, project_id: int) -> Response:
        self._dashboard_scope()
        if request.method == "POST":
            return json_response(self.store.create_dashboard(project_id, await _json_body(request)), 201)
        params = request.query_params
        limit = _positive_int(params.get("limit"), default=100, strict=True)
        offset = _positive_int(params.get("offset"), default=0, strict=False)
        count, items = self.store.list_dashboards(
            project_id,
            tags=params.getlist("tags"),
            creation_mode=params.get("creation_mode") or None,
            offset=offset,
            limit=limit,
        )
        next_url, previous_url = page_links(absolute_url(request), offset=offset, limit=limit, count=count)
        return json_response({"count": count, "next": next_url, "previous": previous_url, "results": items})

    async def dashboard(self, request: Request, project_id: int) -> Response:
        self._dashboard_scope()
        ident = request.path_params["ident"]
        if request.method == "DELETE":
            return Response(status_code=405)  # ForbidDestroyModel, as for insights
        if request.method in ("PATCH", "PUT"):
            body = await _json_body(request)
            return json_response(self.store.update_dashboard(project_id, ident, body))
        return json_response(self.store.retrieve_dashboard(project_id, ident))

    def _activity_page(self, request: Request, project_id: int, ident: str | None) -> Response:
        values: dict[str, int] = {}
        for name, default in (("limit", 10), ("page", 1)):
            raw = request.query_params.get(name)
            try:
                values[name] = default if raw is None else int(raw)
            except ValueError as exc:
                raise errors.validation("A valid integer is required.", name, "invalid") from exc
            if values[name] < 1:
                raise errors.validation("Ensure this value is greater than or equal to 1.", name, "min_value")
        limit, page = values["limit"], values["page"]
        results, has_next, has_previous, total = self.store.activity(
            project_id, ident, limit=limit, page=page
        )
        url = absolute_url(request)
        return json_response(
            {
                "results": results,
                "next": replace_query_param(replace_query_param(url, "page", page + 1), "limit", limit)
                if has_next
                else None,
                "previous": replace_query_param(replace_query_param(url, "page", page - 1), "limit", limit)
                if has_previous
                else None,
                "total_count": total,
            }
        )

    async def all_activity(self, request: Request, project_id: int) -> Response:
        return self._activity_page(request, project_id, None)

    async def insight_activity(self, request: Request, project_id: int) -> Response:
        return self._activity_page(request, project_id, request.path_params["ident"])

    async def sharing(self, request: Request, project_id: int) -> Response:
        changes = await _json_body(request) if request.method == "PATCH" else None
        return json_response(self.store.sharing(project_id, request.path_params["ident"], changes))

    async def viewed(self, request: Request, project_id: int) -> Response:
        body = await _json_body(request)
        ids = body.get("insight_ids")
        if not ids or not isinstance(ids, list) or not all(isinstance(item, int) for item in ids):
            raise errors.validation("Must be a non-empty list of insight IDs", "insight_ids")
        self.store.mark_viewed(project_id, ids)
        return Response(status_code=201)

    async def viewed_one(self, request: Request, project_id: int) -> Response:
        self.store.viewed_one(project_id, request.path_params["ident"])
        return Response(status_code=201)

    async def my_last_viewed(self, request: Request, project_id: int) -> Response:
        return json_response(self.store.my_last_viewed(project_id))

    async def cancel(self, request: Request, project_id: int) -> Response:
        body = await _json_body(request)
        if "client_query_id" not in body:
            raise errors.validation("Field is required.", "client_query_id", "required")
        self.store.cancel(project_id, str(body["client_query_id"]))
        return Response(status_code=201)

    def legacy(self, endpoint: str) -> Handler:
        async def handler(request: Request, project_id: int) -> Response:
            filters: dict[str, Any] = {}
            for key, value in request.query_params.items():
                if key in ("refresh", "personal_api_key"):
                    continue
                filters[key] = _maybe_json(value)
            if request.method == "POST":
                filters |= await _json_body(request)
            read = self.store.legacy_begin(project_id, endpoint, filters, request.query_params.get("refresh"))
            if not read.pending:
                return json_response(self.store.legacy_finish(read))
            async with self.calculator.slot() as granted:
                if not granted:
                    # Nothing in the legacy endpoints catches ConcurrencyLimitExceeded: Django's 500.
                    raise errors.server_error()
                payload = self.store.legacy_finish(read)
                self.calculator.stats.calculation_ended(ok=True)
            self._mark_computed(request, True)
            return json_response(payload)

        return handler

    # -- async query status ------------------------------------------------------------------------------

    async def query(self, request: Request, project_id: int) -> Response:
        if not self.config.allow_query_status:
            raise errors.permission_denied("API key missing required scope 'query:read'")
        query_id = request.path_params["query_id"]
        if request.method == "DELETE":
            return json_response({"message": self.store.cancel(project_id, query_id)})
        show_progress = "true" in (
            request.query_params.get("show_progress"),
            request.query_params.get("showProgress"),
        )
        status = self.store.query_status(project_id, query_id, show_progress=show_progress)
        body: dict[str, Any] = {"query_status": status}
        if status["error"]:
            if not status["error_message"]:
                return json_response(body, 500)
            # PostHog answers 400 with the status; the error fields make it a PostHog error body too.
            body |= {
                "type": "validation_error",
                "code": "query_error",
                "detail": status["error_message"],
                "attr": None,
            }
            return json_response(body, 400)
        return json_response(body, 200 if status["complete"] else 202)


def _maybe_json(value: str) -> Any:
    if value[:1] in ("[", "{") or value in ("true", "false", "null"):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


async def _health(request: Request) -> Response:
    return json_response({"status": "ok"})


def build_routes(api: Api, stats: Stats) -> list[BaseRoute]:
    """PostHog's routes under both `/api/projects/{id}/` and `/api/environments/{id}/`, each with and
    without the trailing slash (PostHog's routers accept both). Two rate buckets, as PostHog counts
    them: `insights` for every action of the insights viewset and the query-status poll and cancel
    (throttled with the same ClickHouse classes), `other` for the viewsets on DRF's default throttles
    (dashboards, sharing)."""
    prefix = "/api/{scope}/{project_id:int}"
    get, post = frozenset({"GET"}), frozenset({"POST"})
    ins, other = "insights", "other"
    table: list[tuple[str, Handler, frozenset[str], str | None]] = [
        ("/insights", api.insights, frozenset({"GET", "POST"}), ins),
        ("/insights/activity", api.all_activity, get, ins),
        ("/insights/my_last_viewed", api.my_last_viewed, get, ins),
        ("/insights/viewed", api.viewed, post, ins),
        ("/insights/cancel", api.cancel, post, ins),
        ("/insights/trend", api.legacy("trend"), frozenset({"GET", "POST"}), ins),
        ("/insights/funnel", api.legacy("funnel"), frozenset({"GET", "POST"}), ins),
        ("/insights/funnel/correlation", api.legacy("funnel/correlation"), frozenset({"GET", "POST"}), ins),
        ("/insights/retention", api.legacy("retention"), frozenset({"GET", "POST"}), ins),
        ("/insights/path", api.legacy("path"), frozenset({"GET", "POST"}), ins),
        ("/insights/{ident}", api.insight, frozenset({"GET", "PATCH", "PUT", "DELETE"}), ins),
        ("/insights/{ident}/activity", api.insight_activity, get, ins),
        ("/insights/{ident}/sharing", api.sharing, frozenset({"GET", "PATCH"}), other),
        ("/insights/{ident}/viewed", api.viewed_one, post, ins),
        ("/query/{query_id}", api.query, frozenset({"GET", "DELETE"}), ins),
        ("/dashboards", api.dashboards, frozenset({"GET", "POST"}), other),
        ("/dashboards/{ident}", api.dashboard, frozenset({"GET", "PATCH", "PUT", "DELETE"}), other),
    ]
    routes: list[BaseRoute] = []
    all_methods = ["GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS"]
    for path, handler, methods, bucket in table:
        endpoint = api.endpoint(handler, methods, bucket=bucket)
        routes.append(Route(prefix + path + "/", endpoint, methods=all_methods))
        routes.append(Route(prefix + path, endpoint, methods=all_methods))

    async def stats_endpoint(request: Request) -> Response:
        return json_response(stats.snapshot().as_dict())

    routes.append(Route("/_emulator/health", _health, methods=["GET"]))
    routes.append(Route("/_emulator/stats", stats_endpoint, methods=["GET"]))
    return routes


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(errors.not_found())


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(errors.ApiError(500, "server_error", "error", "A server error occurred."))


class EmulatorApp:
    """The outer ASGI layer: stats, latency and faults around the Starlette app."""

    def __init__(
        self,
        config: EmulatorConfig,
        store: Store,
        stats: Stats,
        throttles: dict[str, SlidingWindowThrottle | None],
        faults: FaultInjector | None,
    ) -> None:
        self.stats = stats
        self.faults = faults
        self.latency_s = config.latency_ms / 1000.0
        api = Api(config, store, throttles, Calculator(store.slots, config.calc_ms / 1000.0, stats))
        self.inner = Starlette(
            routes=build_routes(api, stats),
            exception_handlers={404: _not_found, 405: _not_found, 500: _server_error},
        )
        self.inner.router.redirect_slashes = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_emulator/"):
            await self.inner(scope, receive, send)
            return
        info: dict[str, Any] = {"computed": False}
        scope["emulator"] = info
        query_string: bytes = scope.get("query_string", b"")
        record = _Record(
            self.stats, classify(scope["method"], path), info, b"personal_api_key=" in query_string
        )
        self.stats.begin()
        try:
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            fault = self.faults.draw() if self.faults is not None else None
            record.fault = fault.kind if fault is not None else None
            if fault is not None and fault.kind == "slow" and self.faults is not None:
                await asyncio.sleep(self.faults.slow_s)
            if fault is not None and fault.kind == "5xx":
                await _send_simple(record.wrap(send), fault.status, fault.content_type, fault.body)
            elif fault is not None and fault.kind in ("truncate", "drop"):
                await self._mangled(scope, receive, record.wrap(send), fault.kind)
            else:
                await self.inner(scope, receive, record.wrap(send))
        finally:
            record.finish()

    async def _mangled(self, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        """Run the request, then deliver half its body: as a complete shorter body (`truncate`), or
        under the full Content-Length and then close the connection (`drop`)."""
        start: Message = {}
        chunks: list[bytes] = []

        async def collect(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.inner(scope, receive, collect)
        body = b"".join(chunks)
        half = body[: len(body) // 2]
        declared = len(half) if kind == "truncate" else max(len(body), len(half) + 1)
        headers = [
            (name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(declared).encode()))
        status = int(start.get("status", 200))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        # A drop leaves the body incomplete: returning now makes uvicorn close the connection.
        await send({"type": "http.response.body", "body": half, "more_body": kind == "drop"})


class _Record:
    """Counts one request in the stats before its response leaves: a client that reads the stats
    right after its response must already see its request counted."""

    def __init__(self, stats: Stats, kind: str, info: dict[str, Any], key_in_query: bool) -> None:
        self.stats = stats
        self.kind = kind
        self.info = info
        self.key_in_query = key_in_query
        self.status = 0
        self.fault: str | None = None
        self.done = False

    def wrap(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Counted when the headers leave: a body may be empty (204, 201), and then the
                # headers alone complete the response for the client.
                self.status = int(message["status"])
                self.finish()
            await send(message)

        return wrapped

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        self.stats.end(
            self.kind,
            self.status,
            computed=bool(self.info.get("computed")),
            key_in_query=self.key_in_query,
            fault=self.fault,
        )


async def _send_simple(send: Send, status: int, content_type: str, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
