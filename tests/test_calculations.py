"""CalculationSlots against a stand-in for the organisation's slots: a counter, no HTTP (the adaptive
limit is pure logic; the run against the emulator's real limit is in tests/test_concurrency_limit.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from posthog_insights.calculations import CalculationSlots, OrganisationBusy, refused
from posthog_insights.errors import ConfigError


@dataclass
class Organisation:
    """`free` slots for us (the rest are taken by its own users); a calculation takes `seconds`."""

    free: int
    seconds: float = 0.01
    running: int = 0
    most_running: int = 0
    refusals: int = 0
    done: int = 0
    log: list[str] = field(default_factory=list)

    async def calculate(self) -> bool:
        await asyncio.sleep(0.001)  # the way to the server: requests sent together arrive together
        if self.running >= self.free:
            self.refusals += 1
            return False
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        await asyncio.sleep(self.seconds)
        self.running -= 1
        self.done += 1
        return True


async def _run_all(slots: CalculationSlots, org: Organisation, n: int) -> None:
    async def one() -> None:
        while True:
            async with slots.calculation() as slot:
                if await org.calculate():
                    return
                slot.refused()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), timeout=20)


def test_the_limit_falls_to_what_the_organisation_has_free_after_one_burst() -> None:
    org = Organisation(free=3)
    slots = CalculationSlots(8)
    asyncio.run(_run_all(slots, org, 60))
    assert org.done == 60
    assert slots.limit == 3 and slots.lowest_limit == 3
    assert org.refusals == slots.refusals == 5  # the first wave's excess, and never again
    assert org.most_running == 3


def test_a_limit_above_what_is_free_is_never_probed_before_the_quiet_spell() -> None:
    org = Organisation(free=10)
    slots = CalculationSlots(4)
    asyncio.run(_run_all(slots, org, 40))
    assert org.refusals == 0 and slots.limit == 4 and org.most_running == 4


def test_an_organisation_full_of_other_users_work_is_waited_out_one_ask_at_a_time() -> None:
    async def main() -> tuple[Organisation, CalculationSlots, float]:
        org = Organisation(free=0)
        slots = CalculationSlots(4, first_backoff_s=0.02, longest_backoff_s=0.08)

        async def free_later() -> None:
            while org.refusals < 5:
                await asyncio.sleep(0.001)
            org.free = 2  # the other users' calculations finish

        started = time.monotonic()
        await asyncio.gather(free_later(), _run_all(slots, org, 6))
        return org, slots, time.monotonic() - started

    org, slots, seconds = asyncio.run(main())
    assert org.done == 6 and slots.limit == 1
    # the first wave (4) and then one ask per back-off (0.02, 0.04 s...), not one per waiting calculation
    assert org.refusals <= 4 + 3
    assert seconds >= 0.02


def test_after_a_quiet_spell_the_limit_grows_again_and_a_refused_probe_doubles_the_spell() -> None:
    now = [0.0]
    slots = CalculationSlots(6, clock=lambda: now[0])

    async def main() -> None:
        org = Organisation(free=2)
        await _run_all(slots, org, 10)
        assert slots.limit == 2 and slots.refusals == 4
        now[0] += 4.0  # the first spell is 5 s
        org.free = 3
        await _run_all(slots, org, 1)
        assert slots.limit == 2
        now[0] += 1.0
        await _run_all(slots, org, 1)
        assert slots.limit == 3  # one step at a time
        now[0] += 5.0
        await _run_all(slots, org, 8)  # the probe to 4 is refused: back to 3, next probe after 10 s
        assert slots.limit == 3 and slots.refusals == 5
        now[0] += 9.0
        await _run_all(slots, org, 3)
        assert slots.limit == 3
        now[0] += 1.0
        await _run_all(slots, org, 1)
        assert slots.limit == 4

    asyncio.run(main())


def test_one_object_serves_successive_event_loops() -> None:
    slots = CalculationSlots(2)
    for _ in range(2):
        asyncio.run(_run_all(slots, Organisation(free=2), 5))
    assert slots.refusals == 0


def test_what_counts_as_a_refusal() -> None:
    status = {"error": True, "error_message": "concurrency_limit_exceeded", "id": "q"}
    assert refused({"result": None, "query_status": status})
    assert not refused({"result": None, "query_status": {**status, "error_message": "Query timed out"}})
    assert not refused({"result": [1], "query_status": None})
    assert not refused(None)


@pytest.mark.parametrize("ceiling", [0, -1, True, 1.5])
def test_the_ceiling_is_checked(ceiling: object) -> None:
    with pytest.raises(ConfigError, match=r"^concurrency: "):
        CalculationSlots(ceiling)  # type: ignore[arg-type]


def test_an_organisation_that_stays_full_is_given_up_at_the_deadline() -> None:
    async def main() -> tuple[int, Organisation]:
        org = Organisation(free=0)
        slots = CalculationSlots(4, deadline_s=0.2, first_backoff_s=0.05, longest_backoff_s=10.0)
        gave_up = 0

        async def one() -> None:
            nonlocal gave_up
            try:
                while True:
                    async with slots.calculation() as slot:
                        if await org.calculate():
                            return
                        slot.refused()
            except OrganisationBusy:
                gave_up += 1

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(20))), timeout=5)
        return gave_up, org

    started = time.monotonic()
    gave_up, org = asyncio.run(main())
    assert gave_up == 20 and org.refusals <= 4 + 3
    assert time.monotonic() - started < 1.0  # not one back-off per waiting calculation
