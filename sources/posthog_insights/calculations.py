"""How many synchronous calculations a run asks PostHog for at once: what the organisation has free.

PostHog runs at most a fixed number of synchronous calculations per organisation at once (10 on PostHog
Cloud), shared with the organisation's own users: the UI, dashboards, other API clients. A calculation
beyond that is refused at once with `concurrency_limit_exceeded`; nothing is queued server-side. A client
cannot see the other users' load, so it learns it from the refusals, as TCP learns a path's capacity:

* a refusal cuts our limit to the calculations of ours that the server is running right now (those got
  a slot; the refused one did not), never below one, and the refused calculation waits for one of ours to
  finish (or, with none of ours running, backs off) before it asks again;
* after a quiet spell with no refusal the limit grows again by one at a time, up to the ceiling, because
  the other users' load comes and goes; a probe that is refused doubles the spell before the next one,
  so a saturated organisation costs a few refused requests per run, not one per calculation.

A refused request still counts against the key's rate limit, which is why probing is rare.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from posthog_insights.errors import ConfigError

CONCURRENCY_ERROR = "concurrency_limit_exceeded"
FIRST_PROBE_AFTER_S = 5.0
LONGEST_PROBE_AFTER_S = 300.0
# With none of our calculations running, a refusal means other users hold every slot: wait this long
# before asking again, doubling up to the longest.
FIRST_BACKOFF_S = 0.5
LONGEST_BACKOFF_S = 30.0


def refused(response: Any) -> bool:
    """Whether a retrieve (or list item) is PostHog's answer to a calculation it had no slot for."""
    if not isinstance(response, dict):
        return False
    status = response.get("query_status")
    if not isinstance(status, dict):
        return False
    return bool(status.get("error")) and status.get("error_message") == CONCURRENCY_ERROR


class OrganisationBusy(Exception):
    """The organisation refused every calculation of ours for the whole deadline: try in a later run."""


class CalculationSlots:
    """An adaptive limit on our synchronous calculations in flight (see the module docstring).

    Use `async with slots.calculation() as slot:` around one request that may compute, and call
    `slot.refused()` when its answer is a refusal; then ask again (`calculation()` waits as needed, and
    raises `OrganisationBusy` once every calculation has been refused for `deadline_s`).
    `clock` is injectable for tests. Like the pacer, the asyncio primitives are made lazily in the running
    loop, so one object may serve several event loops one after another.
    """

    def __init__(
        self,
        ceiling: int,
        *,
        deadline_s: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
        first_backoff_s: float = FIRST_BACKOFF_S,
        longest_backoff_s: float = LONGEST_BACKOFF_S,
    ) -> None:
        if isinstance(ceiling, bool) or not isinstance(ceiling, int) or ceiling < 1:
            raise ConfigError("concurrency", f"must be a whole number >= 1, got {ceiling!r}")
        self.ceiling = ceiling
        self.limit = ceiling
        self.deadline_s = deadline_s
        self._clock = clock
        self._running = 0  # calculations of ours in flight
        self._probe_after_s = FIRST_PROBE_AFTER_S
        self._probing = False  # the limit was last raised by a probe, not yet confirmed or refused
        self._quiet_since = clock()
        self._first_backoff_s = first_backoff_s
        self._longest_backoff_s = longest_backoff_s
        self._backoff_s = first_backoff_s
        self._not_before = -math.inf  # with none of ours running, the next ask waits until then
        self._refusing_since: float | None = None  # refused ever since, with no success in between
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Condition | None = None
        #: Refusals met in all.
        self.refusals = 0
        #: Lowest limit the run came down to.
        self.lowest_limit = ceiling

    def __repr__(self) -> str:
        return f"CalculationSlots(limit={self.limit}, ceiling={self.ceiling}, refusals={self.refusals})"

    def refusing_for(self) -> float:
        """Seconds the organisation has refused every calculation of ours (0 after a success)."""
        return 0.0 if self._refusing_since is None else self._clock() - self._refusing_since

    def _condition(self) -> asyncio.Condition:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._changed is None:
            self._loop, self._changed, self._running = loop, asyncio.Condition(), 0
        return self._changed

    @asynccontextmanager
    async def calculation(self) -> AsyncIterator[_Slot]:
        changed = self._condition()
        async with changed:
            while True:
                await changed.wait_for(lambda: self._running < self.limit)
                left = self.deadline_s - self.refusing_for()
                if left <= 0:
                    raise OrganisationBusy
                delay = min(self._not_before - self._clock(), left)
                if delay <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=delay)
            self._running += 1
        slot = _Slot()
        try:
            yield slot
        finally:
            async with changed:
                self._running -= 1
                if slot.was_refused:
                    self._on_refusal(self._running, slot.refused_calculations)
                else:
                    self._on_success()
                changed.notify_all()

    def _on_refusal(self, others_running: int, calculations: int) -> None:
        self.refusals += calculations
        self.limit = max(1, min(self.limit, others_running))
        self.lowest_limit = min(self.lowest_limit, self.limit)
        now = self._clock()
        self._quiet_since = now
        if self._refusing_since is None:
            self._refusing_since = now
        if self._probing:
            self._probe_after_s = min(self._probe_after_s * 2, LONGEST_PROBE_AFTER_S)
            self._probing = False
        if others_running == 0:  # other users hold every slot: back off, one ask at a time
            self._not_before = max(self._not_before, now + self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, self._longest_backoff_s)

    def _on_success(self) -> None:
        self._backoff_s = self._first_backoff_s
        self._refusing_since = None
        now = self._clock()
        if self.limit < self.ceiling and now - self._quiet_since >= self._probe_after_s:
            self.limit += 1
            self._probing = True
            self._quiet_since = now


class _Slot:
    __slots__ = ("refused_calculations", "was_refused")

    def __init__(self) -> None:
        self.was_refused = False
        self.refused_calculations = 0

    def refused(self, calculations: int = 1) -> None:
        """The request's calculations were refused (a list read may have several refused at once)."""
        self.was_refused = True
        self.refused_calculations += calculations
