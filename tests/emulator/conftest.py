"""Fixtures for the emulator's own tests: real servers on 127.0.0.1, real HTTP through httpx.

A module-scoped emulator serves the read-mostly tests; tests that change state take a fresh insight
from `pool` (each insight is used by one test only) or start their own emulator with `start_emulator`.
Test modules import nothing from here (no package, no name clashes with other test folders): they
use the fixtures, and `emu.api_key` / the `auth` fixture for credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator, EmulatorConfig

KEY = "phx_test_key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BASE_CONFIG = EmulatorConfig(
    api_key=KEY,
    projects=(1, 2),
    insights=350,
    seed=7,
    points=12,
    error_share=0.04,
    forbidden_projects=(3,),
    async_delay_s=0.5,
)


# Kinds without an interval (the doc's staleness table: the `None` row).
NO_INTERVAL_KINDS = frozenset({"PATHS", "JSON"})


class Pool:
    """Hands out each healthy insight of a kind/variant once, so state-changing tests never collide.

    By default only daily insights over a relative range: their staleness thresholds are the doc's
    `day` column (6 h, lazily 12 h), which the refresh-table tests rely on.
    """

    def __init__(self, emulator: Emulator, project_id: int = 1) -> None:
        self.emulator = emulator
        self.project_id = project_id
        self.used: set[int] = set()

    def take(
        self,
        kind: str | None = None,
        variant: str | None = None,
        *,
        interval: str | None = "day",
        fixed_range: bool | None = False,
    ) -> int:
        store = self.emulator.store
        kinds = (
            [kind] if kind else ["TRENDS", "FUNNELS", "RETENTION", "PATHS", "STICKINESS", "LIFECYCLE", "SQL"]
        )
        for candidate_kind in kinds:
            wanted = None if candidate_kind in NO_INTERVAL_KINDS else interval
            found = store.find(
                self.project_id, candidate_kind, variant, interval=wanted, fixed_range=fixed_range
            )
            for insight_id in found:
                if insight_id in self.used:
                    continue
                if store.insight(self.project_id, insight_id)["_emulator"]["fails"] is not None:
                    continue
                self.used.add(insight_id)
                return insight_id
        raise LookupError(f"no unused insight of kind={kind} variant={variant}")


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(BASE_CONFIG) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def pool(emu: Emulator) -> Pool:
    return Pool(emu)


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)


@pytest.fixture
def client(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, headers=AUTH, timeout=10.0) as http:
        yield http


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    """Start emulators with config overrides; all are stopped at teardown."""
    started: list[Emulator] = []

    def start(**overrides: Any) -> Emulator:
        config = EmulatorConfig(**{**BASE_CONFIG.__dict__, "insights": 60, "error_share": 0.0, **overrides})
        emulator = Emulator(config)
        emulator.start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()
