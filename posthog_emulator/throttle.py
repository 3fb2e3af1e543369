"""Sliding-window rate limits per API key, with Django REST framework's exact semantics.

PostHog throttles the insight endpoints with DRF's `SimpleRateThrottle` subclasses (a burst window
and a sustained window). DRF checks *every* throttle of a view: each window that allows the request
records it, each window that refuses it does not, and the response waits for the longest refusal.
So a request refused by the minute window still counts against the hour window. A client pacer
that mirrors PostHog must therefore be tested against these semantics, not a simplified token
bucket.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable


class SlidingWindowThrottle:
    """Several `(limit, seconds)` sliding windows per key, all checked on each request."""

    def __init__(self, windows: tuple[tuple[int, float], ...], clock: Callable[[], float]) -> None:
        self._windows = tuple((int(limit), float(seconds)) for limit, seconds in windows)
        self._clock = clock
        self._history: dict[str, list[deque[float]]] = {}
        self._lock = threading.Lock()

    @property
    def windows(self) -> tuple[tuple[int, float], ...]:
        return self._windows

    def check(self, key: str) -> int | None:
        """Record one request for `key`; return None if allowed, else the wait in whole seconds.

        The wait is DRF's: the time until the oldest request of a full window leaves it, rounded up
        (DRF's `Throttled` exception and its `Retry-After` header both use `math.ceil`).
        """
        now = self._clock()
        waits: list[float] = []
        with self._lock:
            histories = self._history.get(key)
            if histories is None:
                histories = [deque() for _ in self._windows]
                self._history[key] = histories
            for (limit, seconds), history in zip(self._windows, histories, strict=True):
                while history and history[0] <= now - seconds:
                    history.popleft()
                if len(history) >= limit:
                    waits.append(seconds - (now - history[0]))
                else:
                    history.append(now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def reset(self) -> None:
        with self._lock:
            self._history.clear()
