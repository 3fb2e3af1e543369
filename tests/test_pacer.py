"""The pacer: exact sliding windows, bounded concurrency, shared 429 pauses.

Deterministic tests run on an event loop with virtual time: ``loop.time()`` is a counter and the
selector, instead of blocking for ``timeout``, advances the counter by it. ``asyncio.sleep`` then costs no
real time and every admission time is exact. One real-time test paces a real client against the scripted
server enforcing the same windows.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from starlette.requests import Request

from posthog_insights.client import PostHogClient, RequestStats
from posthog_insights.errors import ConfigError
from posthog_insights.pacer import Pacer, parse_rate_limit
from tests.support.scripted_server import Reply, ScriptedServer

T = TypeVar("T")


class VirtualTime:
    """Runs a coroutine on a fresh event loop whose clock only moves when everything waits on a timer."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = asyncio.new_event_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        real_select = selector.select

        def select(timeout: float | None = None) -> Any:
            if timeout is None:
                raise RuntimeError("deadlock: every task waits and no timer is set")
            if timeout > 0:
                self.now += timeout
            return real_select(0)

        loop.time = self.clock  # type: ignore[method-assign]
        selector.select = select
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()


@pytest.fixture
def vt() -> VirtualTime:
    return VirtualTime()


async def _admissions(pacer: Pacer, n: int, clock: Callable[[], float], hold_s: float = 0.0) -> list[float]:
    """Start ``n`` requests at once; return each one's admission time, in admission order."""
    admitted: list[float] = []

    async def one() -> None:
        async with pacer.slot():
            admitted.append(clock())
            if hold_s:
                await asyncio.sleep(hold_s)

    await asyncio.gather(*(one() for _ in range(n)))
    return admitted


# -- parse_rate_limit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("240/60,1200/3600", ((240, 60.0), (1200, 3600.0))),
        (" 240 / 60 , 1200/3600 ", ((240, 60.0), (1200, 3600.0))),
        ("5/0.5", ((5, 0.5),)),
        ("240/1m,1200/1h", ((240, 60.0), (1200, 3600.0))),
        ("10/30s", ((10, 30.0),)),
        ("off", None),
        ("None", None),
        (" OFF ", None),
    ],
)
def test_parse_rate_limit(text: str, expected: tuple[tuple[int, float], ...] | None) -> None:
    assert parse_rate_limit(text) == expected


@pytest.mark.parametrize(
    "text", ["", "240", "240/", "/60", "0/60", "240/0", "abc", "240/60;1200/3600", "-1/5", "5/1d"]
)
def test_parse_rate_limit_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rate_limit(text)
    assert str(info.value).startswith("rate_limit: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("windows", "concurrency", "setting"),
    [
        (((0, 1.0),), 1, "rate_limit"),
        (((1, 0.0),), 1, "rate_limit"),
        (((1, math.inf),), 1, "rate_limit"),
        (((1.5, 1.0),), 1, "rate_limit"),
        (None, 0, "concurrency"),
    ],
)
def test_pacer_rejects_bad_settings(windows: Any, concurrency: int, setting: str) -> None:
    with pytest.raises(ConfigError) as info:
        Pacer(windows, concurrency)
    assert str(info.value).startswith(f"{setting}: ")


# -- exact windows (virtual time) ------------------------------------------------------------------------


def test_admission_respects_both_windows_exactly(vt: VirtualTime) -> None:
    pacer = Pacer(((3, 1.0), (5, 10.0)), concurrency=20, clock=vt.clock)
    times = vt.run(_admissions(pacer, 9, vt.clock))
    # 3 at once; the 4th when the first leaves the 1 s window; the 6th when the 10 s window frees at t=10,
    # where three entries leave it together; the 9th one second later (1 s window full again).
    assert times == [0.0, 0.0, 0.0, 1.0, 1.0, 10.0, 10.0, 10.0, 11.0]
    assert pacer.waited_s == pytest.approx(11.0)
    assert pacer.admitted == 9


def test_window_admission_is_atomic_and_never_busy_polls(vt: VirtualTime) -> None:
    sleeps: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(seconds)

    pacer = Pacer(((2, 1.0), (3, 5.0)), concurrency=10, clock=vt.clock, sleep=counting_sleep)
    times = vt.run(_admissions(pacer, 6, vt.clock))
    assert times == [0.0, 0.0, 1.0, 5.0, 5.0, 6.0]
    # One sleep per wait, each exactly as long as needed: no polling.
    assert sleeps == [1.0, 4.0, 1.0]


def test_requests_in_flight_keep_their_place_in_the_window(vt: VirtualTime) -> None:
    """A request counts from its completion: the server stamped it somewhere before that."""
    pacer = Pacer(((2, 1.0),), concurrency=10, clock=vt.clock)
    times = vt.run(_admissions(pacer, 3, vt.clock, hold_s=3.0))
    # The first two are in flight until t=3, so the third waits for t=3 + 1 s.
    assert times == [0.0, 0.0, 4.0]


def test_no_window_is_ever_exceeded_as_the_server_sees_it(vt: VirtualTime) -> None:
    """Random latencies: the server stamps each request between admission and completion."""
    windows = ((4, 1.0), (10, 5.0))
    pacer = Pacer(windows, concurrency=6, clock=vt.clock)
    rng = random.Random(7)
    received: list[float] = []

    async def one() -> None:
        async with pacer.slot():
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            received.append(vt.now)  # the server's stamp
            await asyncio.sleep(rng.uniform(0.0, 0.3))

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(60)))

    vt.run(main())
    received.sort()
    for count, period in windows:
        for i, t in enumerate(received):
            inside = sum(1 for r in received[: i + 1] if r > t - period)
            assert inside <= count, (count, period, t)


def _least_time(windows: tuple[tuple[int, float], ...], n: int) -> float:
    """Earliest start of the n-th request under the windows, with zero latency (greedy is optimal)."""
    starts: list[float] = []
    t = 0.0
    for _ in range(n):
        while True:
            ready_at = t
            for count, period in windows:
                inside = sorted(s + period for s in starts if s + period > t)
                if len(inside) >= count:
                    ready_at = max(ready_at, inside[len(inside) - count])
            if ready_at == t:
                break
            t = ready_at
        starts.append(t)
    return starts[-1]


def test_pacing_is_as_fast_as_the_windows_allow(vt: VirtualTime) -> None:
    windows = ((240, 6.0), (1200, 36.0))
    pacer = Pacer(windows, concurrency=8, clock=vt.clock)
    times = vt.run(_admissions(pacer, 1500, vt.clock, hold_s=0.01))
    least = _least_time(windows, 1500)
    assert least == pytest.approx(42.0)  # 240 every 6 s up to 1200, the hour-like window, then 2 x 240
    assert times[-1] <= 1.1 * least


# -- concurrency and pauses ------------------------------------------------------------------------------


def test_concurrency_is_bounded(vt: VirtualTime) -> None:
    pacer = Pacer(None, concurrency=3, clock=vt.clock)
    active = 0
    highest = 0

    async def one() -> None:
        nonlocal active, highest
        async with pacer.slot():
            active += 1
            highest = max(highest, active)
            await asyncio.sleep(1.0)
            active -= 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(10)))

    vt.run(main())
    assert highest == 3
    assert pacer.max_in_flight == 3
    assert vt.now == pytest.approx(4.0)  # ceil(10 / 3) rounds of 1 s


def test_hold_until_pauses_everyone(vt: VirtualTime) -> None:
    pacer = Pacer(None, concurrency=5, clock=vt.clock)

    async def main() -> list[float]:
        pacer.pause(5.0)
        return await _admissions(pacer, 4, vt.clock)

    assert vt.run(main()) == [5.0, 5.0, 5.0, 5.0]
    assert pacer.held_s == pytest.approx(5.0)
    assert pacer.waited_s == 0.0


def test_a_pause_during_a_window_wait_delays_the_waiter(vt: VirtualTime) -> None:
    pacer = Pacer(((1, 1.0),), concurrency=5, clock=vt.clock)

    async def main() -> list[float]:
        async def pause_later() -> None:
            await asyncio.sleep(0.5)
            pacer.pause(2.0)  # a 429 somewhere: nothing starts before t=2.5

        pauser = asyncio.create_task(pause_later())
        times = await _admissions(pacer, 3, vt.clock)
        await pauser
        return times

    assert vt.run(main()) == [0.0, 2.5, 3.5]


def test_an_earlier_hold_does_not_shorten_a_later_one(vt: VirtualTime) -> None:
    pacer = Pacer(None, concurrency=1, clock=vt.clock)
    pacer.hold_until(10.0)
    pacer.hold_until(3.0)
    assert pacer.held_until == 10.0
    assert vt.run(_admissions(pacer, 1, vt.clock)) == [10.0]


def test_quiet_for_is_the_wait_before_the_next_admission_with_nothing_in_flight(vt: VirtualTime) -> None:
    """What a bounded run reads to end a package: loading then costs the run nothing."""
    pacer = Pacer(((2, 1.0), (3, 10.0)), concurrency=5, clock=vt.clock)
    seen: dict[str, float] = {}

    async def main() -> None:
        seen["fresh"] = pacer.quiet_for()
        await _admissions(pacer, 2, vt.clock, hold_s=0.25)  # both done at t=0.25
        seen["1s window full"] = pacer.quiet_for()  # until t=1.25
        async with pacer.slot():  # admitted at t=1.25, the 10 s window's third
            seen["in flight"] = pacer.quiet_for()
        seen["10s window full"] = pacer.quiet_for()  # the first leaves it at t=10.25
        pacer.pause(30.0)
        seen["paused"] = pacer.quiet_for()

    vt.run(main())
    assert seen == {
        "fresh": 0.0,
        "1s window full": pytest.approx(1.0),
        "in flight": 0.0,
        "10s window full": pytest.approx(9.0),
        "paused": pytest.approx(30.0),
    }


def test_pacer_built_outside_a_loop_works_across_fresh_loops() -> None:
    """dlt runs each extract in a new event loop; the windows carry over between them."""
    pacer = Pacer(((2, 0.3),), concurrency=2)
    asyncio.run(_admissions(pacer, 2, time.monotonic))
    start = time.monotonic()
    asyncio.run(_admissions(pacer, 1, time.monotonic))
    assert time.monotonic() - start >= 0.25


# -- real time, against a server enforcing the same windows ---------------------------------------------


def _window_enforcer(windows: tuple[tuple[int, float], ...]) -> Callable[[Request], Awaitable[Reply]]:
    """A handler that throttles like PostHog: a sliding log of accepted requests per key."""
    accepted: list[float] = []

    async def handle(request: Request) -> Reply:
        now = time.monotonic()
        for count, period in windows:
            if sum(1 for t in accepted if t > now - period) >= count:
                return Reply(
                    429,
                    {"Retry-After": "1"},
                    {"type": "throttled_error", "code": "throttled", "detail": "Request was throttled."},
                )
        accepted.append(now)
        return Reply(200, {}, {"id": 1, "result": [], "last_refresh": None})

    return handle


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as scripted:
        yield scripted


def test_real_run_meets_no_429_and_takes_about_the_least_time(server: ScriptedServer) -> None:
    windows = ((5, 0.5), (12, 2.0))
    server.always("/api/projects/1/insights/1/", _window_enforcer(windows))
    pacer = Pacer(windows, concurrency=4)
    stats = RequestStats()
    n = 20

    async def main() -> float:
        async with PostHogClient(server.url, "phx_test", pacer=pacer, stats=stats, backoff_s=0.01) as client:
            start = time.monotonic()
            await asyncio.gather(*(client.get_insight(1, 1, refresh="force_cache") for _ in range(n)))
            return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert stats.throttled == 0
    assert stats.by_status == {200: n}
    assert len(server.requests) == n
    least = _least_time(windows, n)
    assert least == pytest.approx(2.5)
    assert elapsed <= 1.1 * least + 0.2
