"""PostHog's limit/offset pagination as one function: pages in order, fetched ahead, never off-origin.

PostHog's list endpoints answer `{"count", "next", "previous", "results"}` with an absolute `next` URL.
`paginate` follows `next` only on the configured origin (the key goes nowhere else), stops at a page it
has seen or a page of items it has all seen (an unstable order or a misbehaving proxy would otherwise
loop), and, when `next` only moves `offset` on by `limit`, fetches up to `prefetch` later pages while the
caller reads the current one (each still goes through the client, so through the pacer). A page fetched
ahead is held parsed until it is read, so how many are fetched ahead is also bounded by their size
(`prefetch_bytes`): pages of large results are not held eight at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import httpx

from posthog_insights.errors import PaginationLoopError, PostHogInsightsError, UnsafeNextLinkError
from posthog_insights.hosts import origin_of

log = logging.getLogger("posthog_insights")

# PostHog echoes the request's `client_query_id` into `next`; each page asks for its own (transport.py).
QUERY_ID_PARAM = "client_query_id"


class Page(list[dict[str, Any]]):
    """One page of `results`; `nbytes` is the size of the response body it came in, which callers use to
    bound what they hold."""

    nbytes: int = 0


FetchPage = Callable[[httpx.URL], Awaitable[tuple[Any, int]]]  # url -> (JSON body, bytes received)


async def paginate(
    fetch: FetchPage,
    first: httpx.URL,
    *,
    origin: str,
    prefetch: int = 0,
    prefetch_bytes: int | None = None,
    kept: dict[int, tuple[Any, int]] | None = None,
) -> AsyncGenerator[Page, None]:
    """Yield each page's `results` in order, starting at `first`.

    `kept` holds pages fetched ahead but not read, by offset: read from before asking again, and, when
    the caller stops reading early, filled with what was fetched ahead meanwhile (fetches under way are
    waited for), so that a listing resumed later spends no request twice.
    """
    current = first
    seen_urls: set[str] = set()
    seen_ids: set[int | str] = set()
    ahead: dict[str, asyncio.Task[tuple[Any, int]]] = {}
    stopped_early = False  # the caller stopped reading: the pages on their way are worth keeping
    try:
        while True:
            seen_urls.add(str(current))
            task = ahead.pop(str(current), None)
            stored = kept.pop(_offset(current), None) if kept is not None else None
            body, nbytes = stored or await (task if task is not None else fetch(current))
            next_link = body.get("next") if isinstance(body, dict) else None
            depth = pages_ahead(prefetch, prefetch_bytes, nbytes)
            if depth and isinstance(next_link, str):
                for url in pages_after(current, next_link, body.get("count"), depth):
                    known = str(url) in ahead or str(url) in seen_urls
                    if not known and (kept is None or _offset(url) not in kept):
                        ahead[str(url)] = asyncio.ensure_future(fetch(url))
            results = Page(_results(current, body, seen_ids, origin))
            results.nbytes = nbytes
            try:
                yield results
            except GeneratorExit:
                stopped_early = True
                raise
            if not results or not next_link:
                return
            current = _next_page(current, next_link, seen_urls, origin)
    finally:
        if kept is not None and ahead and stopped_early:
            await asyncio.wait(ahead.values())
        for link, task in ahead.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                if kept is not None:
                    kept[_offset(httpx.URL(link))] = task.result()
            elif not task.done():
                task.cancel()


def pages_ahead(prefetch: int, prefetch_bytes: int | None, page_bytes: int) -> int:
    """How many pages to fetch ahead after a page of `page_bytes`: `prefetch`, fewer where that many
    such pages would exceed `prefetch_bytes`, but at least one (the next page is always worth having)."""
    if not prefetch or prefetch_bytes is None or page_bytes <= 0:
        return prefetch
    return max(1, min(prefetch, prefetch_bytes // page_bytes))


def _offset(url: httpx.URL) -> int:
    try:
        return int(url.params.get("offset", "0"))
    except ValueError:
        return -1


def pages_after(current: httpx.URL, next_link: str, count: Any, ahead: int) -> list[httpx.URL]:
    """`next_link` and the pages after it, `ahead` in all, when it is `current` with only `offset` moved on
    by `limit` (limit/offset pagination), as far as `count` says pages exist; else none."""
    following = httpx.URL(next_link).copy_remove_param(QUERY_ID_PARAM)
    try:
        limit = int(current.params["limit"])
        offset = int(current.params.get("offset", "0"))
        next_offset = int(following.params["offset"])
    except (KeyError, ValueError):
        return []
    rest = {k: v for k, v in current.params.multi_items() if k not in ("offset", QUERY_ID_PARAM)}
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


def _results(current: httpx.URL, body: Any, seen_ids: set[int | str], origin: str) -> list[dict[str, Any]]:
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise PostHogInsightsError(
            f"GET {current.path} on {origin}: the response is not a page (no 'results' list);"
            " check that host points at the PostHog API"
        )
    ids = [
        item["id"]
        for item in results
        if isinstance(item, dict) and isinstance(item.get("id"), int | str) and item["id"] != ""
    ]
    if ids and all(item_id in seen_ids for item_id in ids):
        raise PaginationLoopError(
            origin, current.path, f"a page of {len(ids)} items all listed before came back"
        )
    seen_ids.update(ids)
    return results


def _next_page(current: httpx.URL, next_link: Any, seen_urls: set[str], origin: str) -> httpx.URL:
    if not isinstance(next_link, str):
        raise PostHogInsightsError(
            f"GET {current.path} on {origin}: 'next' is not a URL; check that host points at the PostHog API"
        )
    following = safe_next(next_link, current, origin).copy_remove_param(QUERY_ID_PARAM)
    if str(following) in seen_urls:
        raise PaginationLoopError(origin, following.path, "the next link points to a page already fetched")
    return following


def safe_next(link: str, base: httpx.URL, origin: str) -> httpx.URL:
    """The `next` link as a URL on `origin`, or an error: following it elsewhere would send the key there."""
    try:
        candidate = httpx.URL(link)
        if not candidate.is_absolute_url:
            candidate = base.join(link)
    except httpx.InvalidURL:
        raise PostHogInsightsError(
            f"pagination: PostHog's next link on {origin} is not a valid URL; stopped listing"
        ) from None
    if candidate.userinfo:
        raise UnsafeNextLinkError(origin, origin_of(candidate) + " (with user:password)")
    next_origin = origin_of(candidate)
    if next_origin == origin:
        return candidate
    ours = httpx.URL(origin)
    if (
        ours.scheme == "https"
        and candidate.scheme == "http"
        and candidate.host.lower() == ours.host
        and candidate.port in (None, 80)
    ):
        # Same host, link built as http:// by a server behind a TLS-terminating proxy: follow the path on
        # our (https) origin; the key still goes only to the configured origin, encrypted.
        log.debug("next link on %s uses http://; following it over %s", candidate.host, origin)
        return candidate.copy_with(scheme=ours.scheme, port=ours.port)
    raise UnsafeNextLinkError(origin, next_origin)
