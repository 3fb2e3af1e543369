"""Rate limits: two sliding windows per key with DRF's semantics, 429 bodies and Retry-After."""

from __future__ import annotations

import re
from typing import Any

import httpx

from posthog_emulator.throttle import SlidingWindowThrottle

LIST = "/api/projects/1/insights/"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_429_body_and_retry_after(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(rate_limits=((5, 10.0), (50, 3600.0)))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        codes = [http.get(f"{LIST}1/").status_code for _ in range(5)]
        assert codes == [200] * 5
        throttled = http.get(LIST)  # list and retrieve share the windows
        assert throttled.status_code == 429
        body = throttled.json()
        assert set(body) == {"type", "code", "detail", "attr"}
        assert body["type"] == "throttled_error" and body["code"] == "throttled" and body["attr"] is None
        wait = int(throttled.headers["Retry-After"])
        assert 1 <= wait <= 10
        match = re.fullmatch(
            r"Request was throttled\. Expected available in (\d+) seconds?\.", body["detail"]
        )
        assert match and int(match.group(1)) == wait
        assert emulator.stats.throttled == 1 and emulator.stats.status(429) == 1
        emulator.advance_clock(wait)
        assert http.get(f"{LIST}1/").status_code == 200


def test_windows_slide_and_throttled_requests_do_not_count(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(rate_limits=((3, 60.0),))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        for _ in range(3):
            assert http.get(f"{LIST}1/").status_code == 200
            emulator.advance_clock(10)
        # t=30: the window holds requests at t=0, 10, 20; refusals at t=30..59 are not recorded
        for _ in range(5):
            assert http.get(f"{LIST}1/").status_code == 429
        first_wait = int(http.get(f"{LIST}1/").headers["Retry-After"])
        assert first_wait == 30
        emulator.advance_clock(30)  # t=60: the request at t=0 leaves the window
        assert http.get(f"{LIST}1/").status_code == 200
        assert http.get(f"{LIST}1/").status_code == 429
        emulator.advance_clock(10)  # t=70: the one at t=10 leaves
        assert http.get(f"{LIST}1/").status_code == 200


def test_wrong_key_and_other_endpoints_are_not_throttled(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(rate_limits=((2, 60.0),))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        assert http.get(f"{LIST}1/", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert http.get(f"{LIST}1/").status_code == 200
        assert http.get(f"{LIST}1/").status_code == 200
        assert http.get(f"{LIST}1/").status_code == 429
        assert http.get(f"{LIST}1/sharing/").status_code == 200  # the sharing viewset's own limits
        assert http.get("/_emulator/health").status_code == 200


# docs/posthog-api.md, Rate limits: one bucket for every action of the insights viewset, and the
# query-status poll and cancel are throttled with the same classes.
ONE_BUCKET = [
    ("GET", LIST),
    ("GET", f"{LIST}1/"),
    ("GET", f"{LIST}activity/"),
    ("GET", f"{LIST}1/activity/"),
    ("GET", "/api/environments/1/query/some-query/"),
    ("DELETE", "/api/environments/1/query/some-query/"),
    ("GET", "/api/projects/1/query/some-query/"),
    ("POST", f"{LIST}cancel/"),
]


def test_polls_cancels_and_activity_share_the_insights_bucket(
    start_emulator: Any, auth: dict[str, str]
) -> None:
    emulator = start_emulator(rate_limits=((len(ONE_BUCKET), 60.0),))
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        for method, path in ONE_BUCKET:
            body = {"client_query_id": "x"} if method == "POST" else None
            response = http.request(method, path, json=body)
            assert response.status_code != 429, (method, path)
        for method, path in ONE_BUCKET:  # the bucket is full: every one of them is refused now
            response = http.request(method, path, json={"client_query_id": "x"} if method == "POST" else None)
            assert response.status_code == 429, (method, path)
            assert response.json()["code"] == "throttled" and int(response.headers["Retry-After"]) >= 1
        assert emulator.stats.throttled == len(ONE_BUCKET)
        emulator.advance_clock(60)
        assert http.get("/api/environments/1/query/some-query/").status_code == 404


def test_drf_semantics_a_window_that_allows_records_even_if_another_refuses() -> None:
    clock = FakeClock()
    throttle = SlidingWindowThrottle(((2, 60.0), (5, 3600.0)), clock)
    assert throttle.check("k") is None
    assert throttle.check("k") is None
    assert throttle.check("k") == 60  # refused by the minute window, recorded by the hour window
    assert throttle.check("k") == 60
    assert throttle.check("k") == 60
    clock.now += 61
    assert throttle.check("k") == 3539  # the hour window now holds 5 (2 allowed + 3 refused by the minute)
    assert throttle.check("other") is None  # per key


def test_retry_after_is_rounded_up_and_at_least_one() -> None:
    clock = FakeClock()
    throttle = SlidingWindowThrottle(((1, 10.0),), clock)
    assert throttle.check("k") is None
    clock.now += 9.2
    assert throttle.check("k") == 1
    clock.now += 0.3
    assert throttle.check("k") == 1
    clock.now += 0.5
    assert throttle.check("k") is None


def test_no_limits_by_default(client: httpx.Client, emu: Any) -> None:
    for _ in range(50):
        assert client.get(f"{LIST}1/").status_code == 200
    assert emu.throttle is None
