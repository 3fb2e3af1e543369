"""Seeded, per-attempt fault injection: what a flaky network and load balancer do to a client.

Each API request draws once from a RNG seeded by `FaultConfig.seed`, so a run is reproducible for a
given request order, and a retry of a failed request draws again (and usually succeeds), exactly as
a transient fault behaves. The draw happens per attempt, never per insight.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from posthog_emulator.config import FaultConfig

# What a 5xx fault answers: load balancers answer 502/503 with HTML, Django's own 500 is PostHog JSON.
_FIVE_XX: tuple[tuple[int, str, bytes], ...] = (
    (
        502,
        "text/html",
        b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>",
    ),
    (
        503,
        "text/html",
        b"<html><head><title>503 Service Unavailable</title></head>"
        b"<body>503 Service Temporarily Unavailable</body></html>",
    ),
    (
        500,
        "application/json",
        b'{"type":"server_error","code":"error","detail":"A server error occurred.","attr":null}',
    ),
)


@dataclass(frozen=True)
class Fault:
    """One drawn fault: its kind, and for `5xx` the status, content type and body to send."""

    kind: str
    status: int = 0
    content_type: str = ""
    body: bytes = b""


class FaultInjector:
    """Draws at most one fault per request attempt, thread-safely."""

    def __init__(self, config: FaultConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()

    @property
    def slow_s(self) -> float:
        return self._config.slow_s

    def draw(self) -> Fault | None:
        with self._lock:
            if self._rng.random() >= self._config.rate:
                return None
            kind = self._config.kinds[self._rng.randrange(len(self._config.kinds))]
            if kind != "5xx":
                return Fault(kind)
            status, content_type, body = _FIVE_XX[self._rng.randrange(len(_FIVE_XX))]
            return Fault(kind, status, content_type, body)
