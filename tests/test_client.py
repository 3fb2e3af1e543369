"""The HTTP client against a real HTTP server on 127.0.0.1 (no mocks of httpx)."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from starlette.requests import Request

from posthog_insights.client import PostHogClient, QueryStatus, RequestStats
from posthog_insights.errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PermissionDeniedError,
    PostHogInsightsError,
    QueryError,
    TransportError,
    UnexpectedStatusError,
    UnsafeNextLinkError,
)
from posthog_insights.pacer import Pacer
from tests.support.scripted_server import Drop, Reply, ScriptedServer, error_reply, page

KEY = "phx_SECRET_canary_123"
LIST = "/api/projects/1/insights/"
T = TypeVar("T")


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        yield scripted


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def make_client(server: ScriptedServer, **overrides: Any) -> PostHogClient:
    options: dict[str, Any] = {
        "pacer": Pacer(None, concurrency=4),
        "timeout_s": 2.0,
        "max_retries": 3,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
    }
    options.update(overrides)
    return PostHogClient(server.url, KEY, **options)


async def list_all(client: PostHogClient, **kwargs: Any) -> list[list[dict[str, Any]]]:
    async with client:
        return [p async for p in client.list_insights(1, **kwargs)]


async def get_one(client: PostHogClient, insight_id: int | str = 7, **kwargs: Any) -> dict[str, Any]:
    async with client:
        return await client.get_insight(1, insight_id, refresh=kwargs.pop("refresh", "blocking"), **kwargs)


def assert_clean(err: BaseException) -> None:
    """One line; the key nowhere in its text, repr, attributes or chain; no httpx object attached."""
    text = str(err)
    assert text and "\n" not in text
    assert KEY not in text
    assert KEY not in repr(err)
    assert KEY not in repr(vars(err))
    link: BaseException | None = err
    while link is not None:
        assert not isinstance(link, httpx.HTTPError), "an httpx error (holding the request) is chained"
        assert KEY not in repr(link) and KEY not in repr(vars(link))
        link = link.__cause__ or link.__context__
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == text and type(copy) is type(err)


# -- auth, headers, listing ----------------------------------------------------------------------------


def test_key_travels_only_in_the_authorization_header(server: ScriptedServer) -> None:
    server.script(LIST, Reply(200, {}, page([{"id": 1}])))
    assert run(list_all(make_client(server))) == [[{"id": 1}]]
    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["user-agent"] == "posthog-insights/0.1"
    assert KEY not in request.target
    assert "phx_" not in request.query_string


def test_list_sends_an_explicit_order(server: ScriptedServer) -> None:
    server.script(LIST, Reply(200, {}, page([])), Reply(200, {}, page([])), Reply(200, {}, page([])))

    async def main() -> None:
        async with make_client(server) as client:
            [_ async for _ in client.list_insights(1)]
            [_ async for _ in client.list_insights(1, page_size=50, basic=True)]
            [_ async for _ in client.list_insights(1, params={"order": "-last_modified_at", "saved": "true"})]

    run(main())
    first, second, third = (r.params for r in server.requests)
    assert first == {"limit": "100", "offset": "0", "order": "id"}
    assert second == {"limit": "50", "offset": "0", "order": "id", "basic": "true"}
    assert third == {"limit": "100", "offset": "0", "order": "-last_modified_at", "saved": "true"}


def test_pagination_follows_next(server: ScriptedServer) -> None:
    second = f"{server.url}{LIST}?limit=2&offset=2&order=id"
    third = f"{server.url}{LIST}?limit=2&offset=4&order=id"
    server.script(
        LIST,
        Reply(200, {}, page([{"id": 1}, {"id": 2}], second, count=5)),
        Reply(200, {}, page([{"id": 3}, {"id": 4}], third, count=5)),
        Reply(200, {}, page([{"id": 5}], None, count=5)),
    )
    pages = run(list_all(make_client(server), page_size=2))
    assert [[item["id"] for item in p] for p in pages] == [[1, 2], [3, 4], [5]]
    assert [r.params["offset"] for r in server.requests] == ["0", "2", "4"]


def _paged_by_offset(server: ScriptedServer, total: int, limit: int, *, same_items: bool = False) -> None:
    """Answer every list request by its own offset, like PostHog's limit/offset pagination."""

    def answer(request: Request) -> Reply:
        offset = int(request.query_params.get("offset", "0"))
        first = 0 if same_items else offset
        ids = [{"id": i + 1} for i in range(first, min(first + limit, total))]
        following = f"{server.url}{LIST}?limit={limit}&offset={offset + limit}&order=id"
        return Reply(200, {}, page(ids, following if offset + limit < total else None, count=total))

    server.always(LIST, answer)


def test_next_link_to_another_origin_is_refused(server: ScriptedServer) -> None:
    for elsewhere in (
        "https://evil.example.com/api/projects/1/insights/?offset=2",
        f"http://localhost:{server.port}/x",
    ):
        server.script(LIST, Reply(200, {}, page([{"id": 1}], elsewhere)))
        with pytest.raises(UnsafeNextLinkError) as info:
            run(list_all(make_client(server)))
        assert_clean(info.value)
    assert len(server.requests) == 2  # one page each; the foreign link was never requested


def test_activity_pages(server: ScriptedServer) -> None:
    server.script("/api/projects/1/insights/7/activity/", Reply(200, {}, page([{"id": "a"}])))
    server.script("/api/projects/1/insights/activity/", Reply(200, {}, page([{"id": "b"}, {"id": "c"}])))

    async def main() -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
        async with make_client(server) as client:
            one = [p async for p in client.list_activity(1, 7)]
            every = [p async for p in client.list_activity(1)]
            return one, every

    one, every = run(main())
    assert one == [[{"id": "a"}]]
    assert every == [[{"id": "b"}, {"id": "c"}]]


# -- retrieve, query status, cancel --------------------------------------------------------------------


def test_get_insight_sends_refresh_and_extra_params(server: ScriptedServer) -> None:
    server.script("/api/projects/1/insights/7/", Reply(200, {}, {"id": 7, "result": [1]}))
    server.script("/api/projects/1/insights/AbCd1234/", Reply(200, {}, {"id": 8, "result": None}))

    async def main() -> list[dict[str, Any]]:
        async with make_client(server) as client:
            return [
                await client.get_insight(
                    1,
                    7,
                    refresh="force_blocking",
                    params={"from_dashboard": "3", "filters_override": '{"a":1}'},
                ),
                await client.get_insight(1, "AbCd1234", refresh="async"),
            ]

    assert run(main()) == [{"id": 7, "result": [1]}, {"id": 8, "result": None}]
    first, second = (dict(r.params) for r in server.requests)
    # a read that may compute names its calculation, so that PostHog can answer a refusal, not a 500
    assert {first.pop("client_query_id"), second.pop("client_query_id")} != {""}
    assert first == {"from_dashboard": "3", "filters_override": '{"a":1}', "refresh": "force_blocking"}
    assert second == {"refresh": "async"}


def test_every_read_that_may_compute_carries_a_fresh_client_query_id(server: ScriptedServer) -> None:
    insight = "/api/projects/1/insights/7/"
    server.script(insight, Reply(502), Reply(200, {}, {"id": 7}), Reply(200, {}, {"id": 7}))
    server.script(insight, Reply(200, {}, {"id": 7}))
    second_page = f"{server.url}{LIST}?client_query_id=echoed&limit=1&offset=1&order=id&refresh=blocking"
    server.script(
        LIST,
        Reply(200, {}, page([{"id": 1}], second_page, count=2)),
        Reply(200, {}, page([{"id": 2}], None, count=2)),
        Reply(200, {}, page([{"id": 1}], None, count=1)),
    )

    async def main() -> None:
        async with make_client(server) as client:
            await client.get_insight(1, 7, refresh="blocking")  # a 502 first: two attempts
            await client.get_insight(1, 7, refresh="force_blocking")
            await client.get_insight(1, 7, refresh="force_cache")
            [_ async for _ in client.list_insights(1, page_size=1, refresh="blocking")]
            [_ async for _ in client.list_insights(1)]

    run(main())
    retrieves = [r.params for r in server.requests_to(insight)]
    ids = [p.get("client_query_id") for p in retrieves]
    assert ids[3] is None  # force_cache never computes
    assert len(set(ids[:3])) == 3 and all(ids[:3])  # one per attempt, the retry included
    pages = [r.params for r in server.requests_to(LIST)]
    assert [p.get("refresh") for p in pages] == ["blocking", "blocking", None]
    page_ids = [p.get("client_query_id") for p in pages]
    assert page_ids[0] and page_ids[1] and page_ids[0] != page_ids[1] != "echoed"
    assert page_ids[2] is None


def test_get_insight_refuses_an_unknown_refresh_mode(server: ScriptedServer) -> None:
    with pytest.raises(ConfigError) as info:
        run(get_one(make_client(server), refresh="sometimes"))
    assert str(info.value).startswith("refresh: ")
    assert server.requests == []


def test_query_status_states(server: ScriptedServer) -> None:
    path = "/api/environments/1/query/q-1/"
    done = {"query_status": {"id": "q-1", "complete": True, "error": False, "results": {"result": [1, 2]}}}
    server.script(
        path,
        Reply(202, {}, {"query_status": {"id": "q-1", "complete": False}}),
        Reply(200, {}, done),
        Reply(400, {}, {"query_status": {"error": True, "error_message": "bad breakdown"}}),
        Reply(500),
        Reply(500),
        Reply(403, {}, {"type": "authentication_error", "code": "permission_denied", "detail": "no scope"}),
    )

    async def main() -> list[QueryStatus]:
        async with make_client(server, max_retries=1) as client:
            statuses = [await client.query_status(1, "q-1") for _ in range(4)]
            with pytest.raises(PermissionDeniedError) as info:
                await client.query_status(1, "q-1")
            assert "query:read" in str(info.value)
            return statuses

    running, complete, error, failed = run(main())
    assert running == QueryStatus("running", None, None)
    assert complete == QueryStatus("complete", {"result": [1, 2]}, None)
    assert error == QueryStatus("error", None, "bad breakdown")
    assert failed.state == "error" and failed.error_message and "500" in failed.error_message


def test_retries_a_dropped_connection(server: ScriptedServer) -> None:
    server.script("/api/projects/1/insights/7/", Drop(), Reply(200, {}, {"id": 7}))
    stats = RequestStats()
    assert run(get_one(make_client(server, stats=stats))) == {"id": 7}
    assert len(server.requests) == 2
    assert stats.transport_failures == 1


def test_retries_a_read_timeout(server: ScriptedServer) -> None:
    async def slow(request: Request) -> Reply:
        await asyncio.sleep(0.5)
        return Reply(200, {}, {"id": "too late"})

    server.script("/api/projects/1/insights/7/", slow, Reply(200, {}, {"id": 7}))
    assert run(get_one(make_client(server, timeout_s=0.15))) == {"id": 7}
    assert len(server.requests) == 2


def test_connection_refused_is_a_transport_error() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        client = PostHogClient(
            f"http://127.0.0.1:{port}", KEY, max_retries=1, backoff_s=0.01, pacer=Pacer(None)
        )
        with pytest.raises(TransportError) as info:
            run(get_one(client))
    assert "ConnectError" in str(info.value)
    assert_clean(info.value)


# -- 429 -----------------------------------------------------------------------------------------------


def throttled(retry_after: str | None, detail: str = "Request was throttled.") -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(
        429, headers, {"type": "throttled_error", "code": "throttled", "detail": detail, "attr": None}
    )


@pytest.mark.parametrize(
    ("reply", "error_type", "words"),
    [
        (
            error_reply(401, "authentication_failed", "Invalid personal API key.", "authentication_error"),
            AuthenticationError,
            ["HTTP 401", "POSTHOG_PERSONAL_API_KEY"],
        ),
        (
            error_reply(403, "permission_denied", "API key missing required scope 'insight:read'"),
            PermissionDeniedError,
            ["HTTP 403", "project 1", "insight:read"],
        ),
        (
            error_reply(404, "not_found", "Not found."),
            NotFoundError,
            ["HTTP 404", "/api/projects/1/insights/7/"],
        ),
        (
            error_reply(400, "invalid_input", "Breakdown is invalid", "validation_error"),
            QueryError,
            ["HTTP 400", "insight 7", "Breakdown is invalid"],
        ),
        (Reply(405, {}, {"detail": 'Method "GET" not allowed.'}), UnexpectedStatusError, ["HTTP 405"]),
    ],
)
def test_client_errors_are_mapped_and_not_retried(
    server: ScriptedServer, reply: Reply, error_type: type[PostHogInsightsError], words: list[str]
) -> None:
    server.always("/api/projects/1/insights/7/", reply)
    with pytest.raises(error_type) as info:
        run(get_one(make_client(server)))
    assert len(server.requests) == 1
    for word in words:
        assert word in str(info.value)
    assert info.value.status == reply.status
    assert_clean(info.value)


def test_permission_denied_carries_the_project(server: ScriptedServer) -> None:
    server.always(LIST, error_reply(403, "permission_denied", "You don't have access to the project."))
    with pytest.raises(PermissionDeniedError) as info:
        run(list_all(make_client(server)))
    assert info.value.project_id == 1 and info.value.scope == "insight:read"


def test_redirects_are_not_followed(server: ScriptedServer) -> None:
    location = f"https://elsewhere.example.org/login?next=x&echo={KEY}"
    server.script("/api/projects/1/insights/7/", Reply(302, {"Location": location}))
    with pytest.raises(ConfigError) as info:
        run(get_one(make_client(server)))
    assert str(info.value).startswith("host: HTTP 302")
    assert "https://elsewhere.example.org" in str(info.value)
    assert len(server.requests) == 1
    assert_clean(info.value)


def test_detail_is_truncated_and_the_key_scrubbed(server: ScriptedServer) -> None:
    echo = f"Invalid token {KEY} " + "x" * 500
    server.always("/api/projects/1/insights/7/", error_reply(401, "authentication_failed", echo))
    with pytest.raises(AuthenticationError) as info:
        run(get_one(make_client(server)))
    assert len(info.value.detail or "") <= 200
    assert "<redacted>" in str(info.value)
    assert_clean(info.value)


def test_no_error_or_log_line_ever_contains_the_key(
    server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every failure mode once, with the server echoing the key where it can; logs captured at DEBUG."""
    caplog.set_level(logging.DEBUG)
    path = "/api/projects/1/insights/7/"
    echo = f"token {KEY} rejected"
    scenarios: list[Any] = [
        error_reply(401, "authentication_failed", echo),
        error_reply(403, "permission_denied", echo),
        error_reply(404, "not_found", echo),
        error_reply(400, "invalid_input", echo),
        throttled("9999", echo),
        Reply(500, {}, echo),
        Drop(partial=KEY.encode()),
        Reply(200, {}, KEY.encode()),  # not JSON
        Reply(301, {"Location": "https://x.example/login"}),
        Reply(418, {}, echo),
    ]
    errors: list[BaseException] = []
    for reply in scenarios:
        server.always(path, reply)
        with pytest.raises(PostHogInsightsError) as info:
            run(get_one(make_client(server, max_retries=1)))
        errors.append(info.value)
    server.always(LIST, Reply(200, {}, page([{"id": 1}], f"https://evil.example/?key={KEY}")))
    with pytest.raises(UnsafeNextLinkError) as unsafe:
        run(list_all(make_client(server)))
    errors.append(unsafe.value)
    assert len({type(e) for e in errors}) >= 8
    for err in errors:
        assert_clean(err)
    assert caplog.records, "expected DEBUG records from the client"
    assert any(r.name == "posthog_insights" for r in caplog.records)
    assert KEY not in caplog.text
    for record in caplog.records:
        assert KEY not in record.getMessage()


def test_the_client_hides_the_key_in_its_repr() -> None:
    client = PostHogClient("https://eu.posthog.com", KEY)
    assert KEY not in repr(client) and KEY not in repr(vars(client))


# -- lifecycle and settings ----------------------------------------------------------------------------


def test_client_must_be_entered(server: ScriptedServer) -> None:
    async def main() -> None:
        await make_client(server).get_insight(1, 7, refresh="force_cache")

    with pytest.raises(RuntimeError, match="async with"):
        run(main())


def test_one_client_object_serves_successive_event_loops(server: ScriptedServer) -> None:
    """dlt runs each extract in a fresh loop: the httpx client is made in __aenter__, inside it."""
    server.always("/api/projects/1/insights/7/", Reply(200, {}, {"id": 7}))
    client = make_client(server)
    assert run(get_one(client)) == {"id": 7}
    assert run(get_one(client)) == {"id": 7}
