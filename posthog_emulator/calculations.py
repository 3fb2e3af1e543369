"""The organisation's concurrency limit on synchronous calculations (`posthog/clickhouse/client/limit.py`).

PostHog lets an organisation run at most 10 synchronous calculations at once, shared with its own
users (the UI, dashboards, other API clients). A calculation beyond the limit is refused at once:
nothing is queued or retried server-side, and the insight serializer turns the refusal into a 200
with an error `query_status` (or a 500 without `client_query_id`, see the store).

`Slots` counts the slots; `Calculator.slot()` holds one for a calculation's duration. The wait is an
`asyncio.sleep` on the server's event loop, outside the store's lock, so concurrent requests really
contend for slots while every other request is served normally. Async jobs (background
calculations) take no slot here: a simplification, PostHog's workers have limits of their own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from posthog_emulator.stats import Stats


class Slots:
    """`limit` slots per organisation, `background` of them permanently held by its own users."""

    def __init__(self, limit: int, background: int = 0) -> None:
        if limit < 1:
            raise ValueError("the limit must be >= 1")
        self.limit = limit
        self._background = 0
        self._in_use = 0
        self._lock = threading.Lock()
        self.set_background(background)

    @property
    def background(self) -> int:
        return self._background

    @property
    def in_use(self) -> int:
        """Slots held by this emulator's own calculations (background ones not counted)."""
        return self._in_use

    @property
    def free(self) -> int:
        with self._lock:
            return max(0, self.limit - self._background - self._in_use)

    def set_background(self, count: int) -> None:
        """Change how many slots the organisation's other users hold; running calculations keep theirs."""
        if not 0 <= count <= self.limit:
            raise ValueError(f"background calculations must be within [0, {self.limit}]")
        with self._lock:
            self._background = count

    def try_acquire(self) -> int | None:
        """Take a slot: our slots in use afterwards, or None when the organisation is at its limit."""
        with self._lock:
            if self._in_use + self._background >= self.limit:
                return None
            self._in_use += 1
            return self._in_use

    def release(self) -> None:
        with self._lock:
            if self._in_use <= 0:
                raise RuntimeError("release without acquire")
            self._in_use -= 1


class Calculator:
    """Runs synchronous calculations in the organisation's slots and counts them in the stats."""

    def __init__(self, slots: Slots, calc_s: float, stats: Stats) -> None:
        self.slots = slots
        self.calc_s = calc_s
        self.stats = stats

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[bool]:
        """Yield True once a slot has been held for one calculation's duration (the body commits the
        result, then the slot is freed), or False at once when the limit refuses the calculation."""
        taken = self.slots.try_acquire()
        if taken is None:
            self.stats.calculation_refused()
            yield False
            return
        self.stats.slots_taken(taken)
        try:
            if self.calc_s > 0:
                await asyncio.sleep(self.calc_s)
            yield True
        finally:
            self.slots.release()
