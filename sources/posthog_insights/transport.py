"""The layers under the client, as httpx transports: retries around pacing around the network.

    RetryingTransport -> PacedTransport -> httpx.AsyncHTTPTransport

* `PacedTransport` admits every attempt through the pacer (PostHog's rate windows, bounded concurrency,
  a 429's pause), counts it, and reads its body inside the slot, so the pacer stamps it as finished only
  once the answer is in.
* `RetryingTransport` repeats what is worth repeating (tenacity): 5xx, 408, 429, connection errors,
  timeouts and 2xx answers to a GET whose body is not a JSON object (a truncated body), with exponential
  backoff and jitter. A 429 waits its `Retry-After` (or PostHog's "Expected available in N seconds"),
  and stops the run at once (`RateLimitExceededError`) when that wait is longer than `max_wait_s`.
  400/401/403/404 come back as answers: the client maps them to errors.

Requests say what they are in `request.extensions`: `KIND` (list, retrieve, poll, cancel, activity; for
the counts and the scope named in a 403), `ATTEMPTS` (one for a best-effort cancel) and `FRESH_QUERY_ID`
(a read that may compute: each attempt names its calculation with a new `client_query_id`, which lets
PostHog answer a refused calculation instead of failing with a 500). A 2xx GET body parsed here is left
in `response.extensions[JSON]`, so it is parsed once.

Errors leave these layers built from statuses and paths only and raised `from None`, so no httpx
request (whose headers hold the key) hangs off them.
"""

from __future__ import annotations

import email.utils
import logging
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

from posthog_insights.errors import RateLimitExceededError, TransportError
from posthog_insights.hosts import origin_of
from posthog_insights.pacer import Pacer
from posthog_insights.pagination import QUERY_ID_PARAM

log = logging.getLogger("posthog_insights")

KIND = "posthog_insights.kind"
ATTEMPTS = "posthog_insights.attempts"
FRESH_QUERY_ID = "posthog_insights.fresh_query_id"
JSON = "posthog_insights.json"

_EXPECTED_AVAILABLE_RE = re.compile(r"available in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


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


def throttle_wait(response: httpx.Response) -> float | None:
    """Seconds a 429 asks to wait: `Retry-After` (seconds or an HTTP date), else the detail's hint."""
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
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    detail = str(body.get("detail") or "") if isinstance(body, dict) else ""
    match = _EXPECTED_AVAILABLE_RE.search(detail)
    return float(match[1]) if match else None


class Throttle:
    """The key's standing with PostHog's rate limit, shared by the two layers.

    A 429 whose wait is longer than `max_wait_s` refuses every request until then, unsent: requests
    queued behind it would only meet the same 429, and PostHog counts refused requests against the key's
    other windows, so they would lengthen the wait.
    """

    def __init__(self, pacer: Pacer, max_wait_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacer = pacer
        self.max_wait_s = max_wait_s
        self._clock = clock
        self.refused_until = -math.inf

    def check(self, url: httpx.URL) -> None:
        refused_for = self.refused_until - self._clock()
        if refused_for > self.max_wait_s:
            raise RateLimitExceededError(origin_of(url), wait_s=refused_for, max_wait_s=self.max_wait_s)

    def met_429(self, response: httpx.Response) -> float | None:
        """Take a 429 in: pause every request for its wait (before its slot closes, so that no queued
        request slips in ahead of the pause), or refuse them all when the wait is too long."""
        wait = throttle_wait(response)
        if wait is not None and wait > self.max_wait_s:
            self.refused_until = max(self.refused_until, self._clock() + wait)
        elif wait is not None:
            self.pacer.pause(wait)
        return wait


class PacedTransport(httpx.AsyncBaseTransport):
    """Each attempt waits for the pacer, is counted, and holds its slot until its body is read."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, pacer: Pacer, throttle: Throttle, stats: RequestStats
    ) -> None:
        self.inner = inner
        self.pacer = pacer
        self.throttle = throttle
        self.stats = stats

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self.pacer.slot():
            self.throttle.check(request.url)
            self.stats.by_kind[str(request.extensions.get(KIND, "other"))] += 1
            try:
                response = await self.inner.handle_async_request(request)
                await response.aread()
            except httpx.TransportError:
                self.stats.transport_failures += 1
                raise
            self.stats.by_status[response.status_code] += 1
            if response.status_code == 429:
                self.stats.throttled += 1
                response.extensions["posthog_insights.wait_s"] = self.throttle.met_429(response)
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Retryable(Exception):
    """An attempt failed in a way worth repeating; never leaves this module."""

    def __init__(self, cause: str, *, status: int | None = None, wait_s: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.status = status
        self.wait_s = wait_s


class RetryingTransport(httpx.AsyncBaseTransport):
    """Repeats failed attempts, at most `max_retries` times after the first (see the module docstring)."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        throttle: Throttle,
        stats: RequestStats,
        max_retries: int,
        backoff_s: float,
        backoff_max_s: float,
        timeout_s: float,
        redact: Callable[[str], str] = str,
    ) -> None:
        self.inner = inner
        self.redact = redact
        self.throttle = throttle
        self.stats = stats
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        # Exponential backoff plus up to one base of random jitter (tenacity's own wait strategies).
        self._backoff = wait_exponential(multiplier=backoff_s, max=backoff_max_s) + wait_random(0, backoff_s)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        total = int(request.extensions.get(ATTEMPTS) or self.max_retries + 1)
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
                    return await self._attempt(request, attempt.retry_state.attempt_number)
        except _Retryable as exc:
            failure = exc
        # Raised outside the except block: nothing of the failed attempts is chained to the error.
        if failure is None:
            raise AssertionError("unreachable: tenacity either returns or raises")
        origin = origin_of(request.url)
        if failure.status == 429:
            raise RateLimitExceededError(
                origin, wait_s=failure.wait_s, max_wait_s=self.throttle.max_wait_s, attempts=total
            )
        raise TransportError(
            origin,
            method=request.method,
            path=request.url.path,
            attempts=total,
            last_cause=failure.cause,
            status=failure.status,
        )

    async def _attempt(self, request: httpx.Request, number: int) -> httpx.Response:
        if request.extensions.get(FRESH_QUERY_ID):  # one per attempt: a retry is a new calculation
            url = request.url.copy_set_param(QUERY_ID_PARAM, str(uuid.uuid4()))
            request = httpx.Request(
                request.method, url, headers=request.headers, extensions=request.extensions
            )
        target = request.url.raw_path.decode("ascii", "replace")
        failure: _Retryable | None = None
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TimeoutException as exc:
            failure = _Retryable(f"timeout after {self.timeout_s:g} s ({type(exc).__name__})")
        except httpx.RequestError as exc:
            failure = _Retryable(f"{type(exc).__name__}: {self.redact(str(exc)) or 'connection failed'}")
        # Raised outside the except blocks, so the httpx exception (and its request) is not chained.
        if failure is not None:
            log.debug("%s %s -> %s (attempt %d)", request.method, target, failure.cause, number)
            raise failure
        status = response.status_code
        log.debug("%s %s -> %d (attempt %d)", request.method, target, status, number)
        if status == 429:
            wait = response.extensions.get("posthog_insights.wait_s")
            if wait is not None and wait > self.throttle.max_wait_s:
                raise RateLimitExceededError(
                    origin_of(request.url), wait_s=wait, max_wait_s=self.throttle.max_wait_s
                )
            raise _Retryable("HTTP 429 throttled", status=429, wait_s=wait)
        if status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status}", status=status)
        if request.method == "GET" and 200 <= status < 300 and status != 202:
            response.extensions[JSON] = _json_object(response)
        return response

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.status == 429:
            wait = exc.wait_s
            if wait is None:
                # No hint from PostHog: back off, and hold every other request of the run as well.
                wait = float(self._backoff(retry_state))
                self.throttle.pacer.pause(wait)
            self.stats.waited_s += wait
            return wait
        return float(self._backoff(retry_state))

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        self.stats.retries += 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """A 2xx GET body, which PostHog always sends as a JSON object; anything else was cut short."""
    content = response.content
    status = response.status_code
    if not content.strip():
        raise _Retryable(f"HTTP {status} with an empty body", status=status)
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise _Retryable(
            f"HTTP {status} with a body that is not valid JSON ({len(content)} bytes, truncated?)"
        ) from None
    if not isinstance(body, dict):
        raise _Retryable(f"HTTP {status} with a JSON {type(body).__name__}, not an object")
    return body
