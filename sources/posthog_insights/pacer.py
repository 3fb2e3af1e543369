"""Client-side pacing: PostHog's sliding rate windows, bounded concurrency and a shared 429 pause.

PostHog throttles the insights endpoints per personal API key with two sliding windows (240 requests a
minute and 1200 an hour). A run that keeps inside both never meets a 429, and a run that waits exactly as
long as the windows demand is as fast as the limits allow. ``Pacer`` does both:

* ``async with pacer.slot():`` waits until a concurrency slot is free, any 429 pause is over, and *every*
  window has room, then admits the request into all windows at once (one shared log of requests, so
  admission is atomic across windows: a request is never counted in one window while it waits for another).
* When a window is full it computes the exact instant the next entry leaves it and sleeps until then: no
  polling, no fixed safety buffer.
* Each request is logged when it is admitted and re-stamped when its slot closes (the response arrived).
  The server stamps a request when it receives it, which is somewhere between those two instants, so a
  window computed from completion times is never shorter than the server's, whatever the latency. While a
  request is in flight it counts as "still in the window"; if only in-flight requests block a window the
  pacer waits for one of them to finish and recomputes. The cost is one round trip per window period.
* ``hold_until(t)`` / ``pause(seconds)`` stop every new admission until ``t``: a 429's ``Retry-After``
  applies to the whole key, not only to the request that got it.

Asyncio primitives are created lazily, inside the running loop, and re-created when the loop changes (dlt
runs each extract in a fresh event loop), so a ``Pacer`` may be built anywhere and shared by the runs of
one process; its request log (and therefore the windows) carries over between loops. A ``Pacer`` is not
thread-safe: use it from one event loop at a time.

Why hand-written and not a library (both were evaluated):

* ``limits`` (moving-window strategy): one ``hit`` per limit item, so two windows mean two hits that are
  not atomic (the first can be consumed while the second refuses, counting a request that was never sent);
  ``RateLimitItem`` amounts are whole multiples of a granularity (no 5 per 0.5 s for tests); it reads the
  wall clock itself (no injectable clock, so no deterministic tests, and NTP steps move the windows); and
  it has no "wait until free" at all: the caller computes the wait from ``get_window_stats``.
* ``pyrate-limiter`` (v4): several rates in one bucket are checked together, but timestamps are integer
  milliseconds, a blocking async acquire sleeps the computed delay plus a fixed ``buffer_ms`` (50 ms by
  default) and then re-stamps the item with the *planned* time rather than the clock's, it spawns a
  background leak task/thread per bucket (awkward with one event loop per dlt extract), and it would
  still need our own concurrency bound, completion re-stamping and the shared 429 pause around it.

What is left after those wrappers is a log, a count and a sort: about forty lines that a library would
not make shorter or safer, and one dependency less.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from posthog_insights.errors import ConfigError

Windows = tuple[tuple[int, float], ...]

# PostHog's limits for the insights endpoints, per personal API key: (requests, seconds) sliding windows.
DEFAULT_RATE_LIMITS: Windows = ((240, 60.0), (1200, 3600.0))
DEFAULT_CONCURRENCY = 4
_OFF_WORDS = frozenset({"off", "none"})
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_WINDOW_RE = re.compile(r"^(\d+)\s*/\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|min|m|h)?$")


def parse_rate_limit(text: str) -> Windows | None:
    """Parse ``"240/60,1200/3600"`` into ``((240, 60.0), (1200, 3600.0))``; ``"off"``/``"none"`` -> None.

    Each window is ``REQUESTS/SECONDS``; the seconds may be fractional and may carry a unit ``s``, ``m``
    (or ``min``) or ``h`` (``240/1m,1200/1h``). Anything else raises ``ConfigError("rate_limit: ...")``.
    """
    if not isinstance(text, str):
        raise ConfigError(
            "rate_limit", f"expected text like '240/60,1200/3600' or 'off', got {type(text).__name__}"
        )
    cleaned = text.strip().lower()
    if cleaned in _OFF_WORDS:
        return None
    if not cleaned:
        raise ConfigError("rate_limit", "empty; use e.g. '240/60,1200/3600' (requests/seconds) or 'off'")
    windows: list[tuple[int, float]] = []
    for part in cleaned.split(","):
        match = _WINDOW_RE.match(part.strip())
        if match is None:
            shown = part.strip()[:40]
            raise ConfigError(
                "rate_limit",
                f"cannot read {shown!r}; use REQUESTS/SECONDS windows separated by commas, e.g."
                " '240/60,1200/3600', or 'off'",
            )
        count, seconds, unit = int(match[1]), float(match[2]), match[3] or ""
        windows.append((count, seconds * _UNIT_SECONDS[unit]))
    return _validate_windows(windows)


def _validate_windows(windows: Sequence[tuple[int, float]] | None) -> Windows:
    if windows is None:
        return ()
    out: list[tuple[int, float]] = []
    for window in windows:
        try:
            count, period = window
        except (TypeError, ValueError):
            raise ConfigError("rate_limit", f"each window is (requests, seconds), got {window!r}") from None
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError("rate_limit", f"requests per window must be a whole number >= 1, got {count!r}")
        if isinstance(period, bool) or not isinstance(period, int | float):
            raise ConfigError("rate_limit", f"window length must be a number of seconds, got {period!r}")
        period = float(period)
        if not math.isfinite(period) or period <= 0:
            raise ConfigError(
                "rate_limit", f"window length must be a positive number of seconds, got {period}"
            )
        out.append((count, period))
    return tuple(out)


class _Entry:
    """One admitted request: its admission time, re-stamped with its completion time when done."""

    __slots__ = ("done", "t")

    def __init__(self, t: float) -> None:
        self.t = t
        self.done = False


class Pacer:
    """Admits requests so that every sliding window and the concurrency bound hold (see module doc).

    ``windows``: ``(requests, seconds)`` pairs, all enforced at once; ``None`` or ``()`` turns rate pacing
    off (self-hosted PostHog) while keeping the concurrency bound and 429 pauses. ``clock`` and ``sleep``
    are injectable for deterministic tests; ``clock`` must be monotonic.
    """

    def __init__(
        self,
        windows: Sequence[tuple[int, float]] | None = DEFAULT_RATE_LIMITS,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError("concurrency", f"must be a whole number >= 1, got {concurrency!r}")
        self.windows: Windows = _validate_windows(windows)
        self.concurrency = concurrency
        self._clock = clock
        self._sleep = sleep
        self._longest = max((period for _, period in self.windows), default=0.0)
        self._log: deque[_Entry] = deque()
        self._hold_until = -math.inf
        #: Seconds admissions spent waiting for room in the windows (summed over the admission queue,
        #: so concurrent waiters are not counted twice).
        self.waited_s = 0.0
        #: Seconds admissions spent held by a 429 pause (``hold_until`` / ``pause``).
        self.held_s = 0.0
        #: Requests admitted so far.
        self.admitted = 0
        #: Highest number of requests in flight at once.
        self.max_in_flight = 0
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._gate: asyncio.Lock | None = None
        self._changed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return (
            f"Pacer(windows={self.windows!r}, concurrency={self.concurrency}, admitted={self.admitted},"
            f" waited_s={self.waited_s:.3f})"
        )

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def held_until(self) -> float:
        """Clock time before which nothing is admitted (``-inf`` when not held)."""
        return self._hold_until

    def hold_until(self, t: float) -> None:
        """Admit nothing before clock time ``t`` (a later hold wins; an earlier one is ignored)."""
        if t > self._hold_until:
            self._hold_until = t
            self._notify()

    def pause(self, seconds: float) -> None:
        """Admit nothing for the next ``seconds`` (e.g. a 429's ``Retry-After``), for every caller."""
        if seconds > 0:
            self.hold_until(self._clock() + seconds)

    def quiet_for(self) -> float:
        """Seconds before any request can be admitted, counted only when none is in flight (else 0).

        With nothing in flight, nothing happens on the wire until then: time a caller can spend on other
        work (loading what the run has so far) without slowing the run.
        """
        if self._in_flight:
            return 0.0
        now = self._clock()
        quiet = self._hold_until - now
        if self.windows:
            quiet = max(quiet, self._delay(now) or 0.0)
        return max(quiet, 0.0)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a concurrency slot, the end of any pause and room in every window; then go."""
        semaphore = self._primitives()[0]
        async with semaphore:
            entry = await self._admit()
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                yield
            finally:
                self._in_flight -= 1
                if entry is not None:
                    entry.t = max(entry.t, self._clock())
                    entry.done = True
                self._notify()

    # -- internals ---------------------------------------------------------------------------------

    def _primitives(self) -> tuple[asyncio.Semaphore, asyncio.Lock, asyncio.Event]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._semaphore is None or self._gate is None or self._changed is None:
            # A new event loop (dlt: one per extract). Requests of the old loop can no longer finish;
            # count them as finished now, which is never earlier than when the server saw them.
            now = self._clock()
            for entry in self._log:
                if not entry.done:
                    entry.t = max(entry.t, now)
                    entry.done = True
            self._in_flight = 0
            self._loop = loop
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self._gate = asyncio.Lock()
            self._changed = asyncio.Event()
        return self._semaphore, self._gate, self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    async def _admit(self) -> _Entry | None:
        _, gate, changed = self._primitives()
        # One admission decision at a time, first come first served; the others queue on the gate.
        async with gate:
            while True:
                changed.clear()
                now = self._clock()
                if now < self._hold_until:
                    self.held_s += await self._timed_sleep(self._hold_until - now)
                    continue
                if not self.windows:
                    self.admitted += 1
                    return None
                delay = self._delay(now)
                if delay is None:
                    # Only in-flight requests fill a window: wait for one to finish (or a pause).
                    start = self._clock()
                    await changed.wait()
                    self.waited_s += self._clock() - start
                    continue
                if delay > 0:
                    self.waited_s += await self._timed_sleep(delay)
                    continue
                entry = _Entry(now)
                self._log.append(entry)
                self.admitted += 1
                return entry

    async def _timed_sleep(self, seconds: float) -> float:
        start = self._clock()
        await self._sleep(seconds)
        return max(0.0, self._clock() - start)

    def _delay(self, now: float) -> float | None:
        """0 if every window has room at ``now``; else seconds until the last one does; None if unknown.

        An entry is inside a window of length ``p`` while ``t + p > now`` (the server forgets a request
        once ``now - t >= p``), or while it is still in flight.
        """
        log = self._log
        while log and log[0].done and log[0].t + self._longest <= now:
            log.popleft()
        delay = 0.0
        for count, period in self.windows:
            if len(log) < count:
                continue
            expiries: list[float] = []
            in_flight = 0
            for entry in log:
                if not entry.done:
                    in_flight += 1
                elif entry.t + period > now:
                    expiries.append(entry.t + period)
            excess = in_flight + len(expiries) - count + 1
            if excess <= 0:
                continue
            if excess > len(expiries):
                return None
            expiries.sort()
            delay = max(delay, expiries[excess - 1] - now)
        return delay
