"""Pagination through the client over httpx.MockTransport: no socket adds anything to what is tested here
(which URLs are fetched, in which order, and which are refused)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from posthog_insights.client import LIST_PREFETCH_BYTES, LIST_PREFETCH_PAGES, PostHogClient
from posthog_insights.errors import PaginationLoopError, UnsafeNextLinkError
from posthog_insights.pacer import Pacer
from posthog_insights.pagination import pages_ahead, safe_next

ORIGIN = "https://eu.posthog.com"
LIST = f"{ORIGIN}/api/projects/1/insights/"


def page(ids: list[int], next_link: str | None, count: int | None = None) -> dict[str, Any]:
    return {
        "count": count if count is not None else len(ids),
        "next": next_link,
        "results": [{"id": i} for i in ids],
    }


def listing(
    answer: Callable[[httpx.Request], dict[str, Any]], **list_args: Any
) -> tuple[list[list[int]], list[httpx.URL]]:
    """Every page's ids, and every URL requested."""
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=answer(request))

    async def main() -> list[list[int]]:
        client = PostHogClient(
            ORIGIN,
            "phx_k",
            pacer=Pacer(None, concurrency=4),
            transport=httpx.MockTransport(handler),
            max_retries=0,
        )
        async with client:
            return [[item["id"] for item in p] async for p in client.list_insights(1, **list_args)]

    return asyncio.run(main()), seen


def by_offset(total: int, limit: int, same_items: bool = False) -> Callable[[httpx.Request], dict[str, Any]]:
    """PostHog's limit/offset pagination, answering each request by its own offset."""

    def answer(request: httpx.Request) -> dict[str, Any]:
        offset = int(request.url.params.get("offset", "0"))
        first = 0 if same_items else offset
        following = f"{LIST}?limit={limit}&offset={offset + limit}&order=id"
        return page(
            list(range(first + 1, min(first + limit, total) + 1)),
            following if offset + limit < total else None,
            total,
        )

    return answer


def test_pages_come_in_order_and_each_is_fetched_once() -> None:
    pages, urls = listing(by_offset(25, 2), page_size=2)
    assert [i for p in pages for i in p] == list(range(1, 26))
    assert sorted(int(u.params["offset"]) for u in urls) == list(range(0, 25, 2))
    assert all(u.params["order"] == "id" for u in urls)


def test_pages_ahead_are_asked_for_only_up_to_count() -> None:
    pages, urls = listing(by_offset(3, 2), page_size=2)
    assert pages == [[1, 2], [3]] and len(urls) == 2


def test_a_page_of_items_all_seen_before_is_a_loop_and_stops_what_is_in_flight() -> None:
    with pytest.raises(PaginationLoopError):
        listing(by_offset(1_000, 2, same_items=True), page_size=2)


def test_a_next_link_seen_before_is_a_loop() -> None:
    again = f"{LIST}?limit=1&offset=1&order=id"
    answers = iter([page([1], again, 5), page([2], again, 5)])
    with pytest.raises(PaginationLoopError):
        listing(lambda request: next(answers), page_size=1)


def test_a_next_link_to_another_origin_is_never_followed() -> None:
    for elsewhere in (
        "https://evil.example.com/api/projects/1/insights/?offset=2",
        "http://localhost:8000/x",
    ):
        asked: list[httpx.URL] = []

        def answer(
            request: httpx.Request, link: str = elsewhere, asked: list[httpx.URL] = asked
        ) -> dict[str, Any]:
            asked.append(request.url)
            return page([1], link)

        with pytest.raises(UnsafeNextLinkError):
            listing(answer)
        assert [u.host for u in asked] == ["eu.posthog.com"]


def test_the_echoed_client_query_id_is_not_followed_and_each_page_gets_its_own() -> None:
    def answer(request: httpx.Request) -> dict[str, Any]:
        offset = int(request.url.params.get("offset", "0"))
        echoed = request.url.params["client_query_id"]
        following = f"{LIST}?client_query_id={echoed}&limit=1&offset={offset + 1}&order=id&refresh=blocking"
        return page([offset + 1], following if offset < 3 else None, 4)

    pages, urls = listing(answer, page_size=1, refresh="blocking")
    assert pages == [[1], [2], [3], [4]]
    assert len({u.params["client_query_id"] for u in urls}) == 4
    assert len(urls) == 4  # the prefetch saw through the echoed id: no page twice


def test_an_empty_page_ends_the_listing_even_with_a_next_link() -> None:
    pages, urls = listing(lambda request: page([], f"{LIST}?offset=100"))
    assert pages == [[]] and len(urls) == 1


def test_http_next_link_on_the_same_https_host_is_upgraded_not_downgraded() -> None:
    base = httpx.URL(f"{LIST}?offset=0")
    upgraded = safe_next("http://eu.posthog.com/api/projects/1/insights/?offset=100", base, ORIGIN)
    assert str(upgraded) == f"{LIST}?offset=100"
    assert str(safe_next("/api/projects/1/insights/?offset=200", base, ORIGIN)) == f"{LIST}?offset=200"
    with pytest.raises(UnsafeNextLinkError):
        safe_next("http://eu.posthog.com:8080/api/projects/1/insights/", base, ORIGIN)
    with pytest.raises(UnsafeNextLinkError):
        safe_next("https://user:pw@eu.posthog.com/api/projects/1/insights/", base, ORIGIN)


def test_later_pages_are_on_their_way_while_the_first_is_read() -> None:
    assert _fetched_during_first_page(0) == [2 * i for i in range(1 + LIST_PREFETCH_PAGES)]


def _fetched_during_first_page(padding: int) -> list[int]:
    """The offsets asked for while the caller still reads the first page, with each page's body padded
    to `padding` bytes."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(int(request.url.params["offset"]))
        return httpx.Response(200, json={**by_offset(40, 2)(request), "pad": "x" * padding})

    async def main() -> list[int]:
        client = PostHogClient(
            ORIGIN, "phx_k", pacer=Pacer(None, concurrency=16), transport=httpx.MockTransport(handler)
        )
        during_first: list[int] = []
        async with client:
            async for _ in client.list_insights(1, page_size=2):
                if not during_first:
                    await asyncio.sleep(0.05)
                    during_first = sorted(seen)
        return during_first

    return asyncio.run(main())


def test_pages_of_large_results_are_fetched_ahead_fewer_at_a_time() -> None:
    """Pages held parsed until read: their count ahead is bounded by their size, never below one."""
    third = LIST_PREFETCH_BYTES // 3 + 1  # a bit over a third of the budget: two fit, three do not
    assert _fetched_during_first_page(third) == [0, 2, 4]
    assert _fetched_during_first_page(LIST_PREFETCH_BYTES * 2) == [0, 2]


def test_pages_ahead_is_the_page_count_where_the_bytes_allow() -> None:
    assert pages_ahead(8, None, 10**9) == 8
    assert pages_ahead(8, 8_000, 1_000) == 8
    assert pages_ahead(8, 8_000, 3_000) == 2
    assert pages_ahead(8, 8_000, 50_000) == 1
    assert pages_ahead(0, 8_000, 1_000) == 0
