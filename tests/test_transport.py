"""The retry and pacing layers (transport.py) over httpx.MockTransport: what is repeated, how long a 429
is waited for, what is counted. Dropped connections, timeouts and refused connections, where the socket is
the point, are in test_client.py against a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from posthog_insights.client import PostHogClient
from posthog_insights.errors import RateLimitExceededError, TransportError
from posthog_insights.pacer import Pacer
from posthog_insights.transport import RequestStats

ORIGIN = "https://us.posthog.com"
INSIGHT = "/api/projects/1/insights/7/"
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


class Script:
    """Answers each request with the next scripted response (the last one repeats); records requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[float, httpx.Request]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((time.monotonic(), request))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer


def client(script: Script, **overrides: Any) -> PostHogClient:
    options: dict[str, Any] = {
        "pacer": Pacer(None, concurrency=4),
        "max_retries": 3,
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
        "transport": httpx.MockTransport(script),
    }
    options.update(overrides)
    return PostHogClient(ORIGIN, "phx_k", **options)


def get(c: PostHogClient, refresh: str = "blocking", times: int = 1) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        async with c:
            return [await c.get_insight(1, 7, refresh=refresh) for _ in range(times)]

    return asyncio.run(main())


def throttled(retry_after: str | None, detail: str = "Request was throttled.") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = {"type": "throttled_error", "code": "throttled", "detail": detail, "attr": None}
    return httpx.Response(429, headers=headers, json=body)


OK = httpx.Response(200, json={"id": 7})


def test_a_5xx_is_repeated_and_every_attempt_counted() -> None:
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"), OK)
    stats = RequestStats()
    assert get(client(script, stats=stats)) == [{"id": 7}]
    assert stats.by_status == {502: 1, 200: 1} and stats.retries == 1
    assert stats.as_dict()["by_kind"] == {"retrieve": 2}


@pytest.mark.parametrize("body", [b'{"id": 7, "result": [1, 2', b"", b"[1, 2]"])
def test_a_2xx_body_that_is_not_a_json_object_is_repeated(body: bytes) -> None:
    script = Script(httpx.Response(200, content=body), OK)
    assert get(client(script)) == [{"id": 7}] and len(script.requests) == 2


def test_a_timeout_raised_under_the_layers_is_repeated() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    stats = RequestStats()
    assert get(client(Script(timeout, OK), stats=stats)) == [{"id": 7}]
    assert stats.transport_failures == 1 and stats.retries == 1


def test_retries_run_out_as_one_transport_error() -> None:
    script = Script(httpx.Response(503, text="unavailable"))
    with pytest.raises(TransportError) as info:
        get(client(script, max_retries=2))
    assert len(script.requests) == 3
    assert info.value.attempts == 3 and info.value.status == 503 and "after 3 attempts" in str(info.value)


def test_each_attempt_of_a_read_that_may_compute_names_a_new_calculation() -> None:
    script = Script(httpx.Response(500), OK, OK)
    get(client(script))
    get(client(script), refresh="force_cache")
    ids = [request.url.params.get("client_query_id") for _, request in script.requests]
    assert ids[0] and ids[1] and ids[0] != ids[1] and ids[2] is None


def test_a_429_waits_its_retry_after_and_pauses_the_whole_run() -> None:
    script = Script(throttled("1"), OK)
    stats = RequestStats()
    pacer = Pacer(None, concurrency=4)
    assert get(client(script, stats=stats, pacer=pacer)) == [{"id": 7}]
    (first, _), (second, _) = script.requests
    assert second - first >= 0.95
    assert stats.throttled == 1 and stats.waited_s == pytest.approx(1.0)
    assert pacer.held_until > 0  # the pause is the pacer's: every request of the run waits


def test_a_429_without_retry_after_waits_the_detail_hint() -> None:
    script = Script(throttled(None, "Request was throttled. Expected available in 1 second."), OK)
    stats = RequestStats()
    get(client(script, stats=stats))
    assert script.requests[1][0] - script.requests[0][0] >= 0.95 and stats.waited_s == pytest.approx(1.0)


def test_a_429_longer_than_max_wait_stops_at_once_and_refuses_what_follows_unsent() -> None:
    script = Script(throttled("1800", "Expected available in 1800 seconds."), OK)
    c = client(script, max_wait_s=60)

    async def main() -> list[BaseException]:
        async with c:
            results = await asyncio.gather(
                *(c.get_insight(1, 7, refresh="blocking") for _ in range(3)), return_exceptions=True
            )
        return [r for r in results if isinstance(r, BaseException)]

    started = time.monotonic()
    errors = asyncio.run(main())
    assert time.monotonic() - started < 1.0
    assert len(errors) == 3 and all(isinstance(e, RateLimitExceededError) for e in errors)
    assert len(script.requests) <= 1 + 3  # what was already on its way; nothing after the refusal
    first = errors[0]
    assert isinstance(first, RateLimitExceededError) and first.max_wait_s == 60 and "max_wait_s" in str(first)


def test_a_429_without_any_hint_backs_off_and_a_persistent_one_stops_the_run() -> None:
    script = Script(throttled(None))
    stats = RequestStats()
    with pytest.raises(RateLimitExceededError) as info:
        get(client(script, stats=stats, max_retries=2))
    assert info.value.attempts == 3 and len(script.requests) == 3
    assert stats.throttled == 3 and stats.retries == 2


def test_a_best_effort_cancel_is_one_attempt_whatever_it_meets() -> None:
    script = Script(httpx.Response(204), httpx.Response(503), httpx.Response(404, json={"detail": "gone"}))
    stats = RequestStats()
    c = client(script, stats=stats)

    async def main() -> None:
        async with c:
            for _ in range(3):
                await c.cancel_query(1, "q-9")

    asyncio.run(main())
    assert [request.method for _, request in script.requests] == ["DELETE"] * 3
    assert stats.cancel_failures == 2 and stats.count("cancel") == 3


def test_the_pacer_admits_every_attempt() -> None:
    pacer = Pacer(((3, 0.5),), concurrency=4)
    script = Script(httpx.Response(502), OK)
    get(client(script, pacer=pacer), times=3)  # four attempts under a window of three per 0.5 s
    times = [t for t, _ in script.requests]
    assert len(times) == 4 and times[3] - times[0] >= 0.45
    assert pacer.admitted == 4


def test_stats_as_dict() -> None:
    stats = RequestStats()
    stats.by_kind.update({"list": 2, "retrieve": 3})
    stats.by_status.update({200: 4, 429: 1})
    stats.throttled = 1
    assert stats.as_dict() == {
        "requests": 5,
        "by_kind": {"list": 2, "retrieve": 3},
        "by_status": {"200": 4, "429": 1},
        "throttled": 1,
        "retries": 0,
        "waited_s": 0.0,
        "transport_failures": 0,
        "cancel_failures": 0,
    }
    assert stats.count("list") == 2 and stats.count() == 5
