"""Fixtures of the reliability suite: emulators on a frozen clock, and the figures of the README table."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from posthog_emulator import Emulator
from tests.reliability.support import start_emulator


@pytest.fixture
def emulators() -> Iterator[Callable[..., Emulator]]:
    """Start emulators (`clock=` and EmulatorConfig fields as keywords); all stopped at the end."""
    started: list[Emulator] = []

    def start(**config: Any) -> Emulator:
        emulator = start_emulator(**config)
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def figures() -> Callable[..., None]:
    """Record one line of the README's Reliability table when RELIABILITY_FIGURES names a file."""

    def record(fault: str, trials: int, recovered: int, rows_lost: int, **extra: Any) -> None:
        path = os.environ.get("RELIABILITY_FIGURES")
        if not path:
            return
        line = {"fault": fault, "trials": trials, "recovered": recovered, "rows_lost": rows_lost, **extra}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, default=str) + "\n")

    return record
