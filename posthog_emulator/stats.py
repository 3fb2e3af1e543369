"""Introspection counters: what the client under test actually did to the server.

Tests of a client assert on these ("a force_cache run spent only list requests", "no 429 was
provoked", "never more than 8 requests in flight", "the key never travelled in a URL", "the blocking
page ran 3 calculations and never more than 4 at once"). Requests are counted as they finish,
calculations as they end; the server thread writes, test threads read snapshots, so every access
holds one lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

KINDS: tuple[str, ...] = ("list", "retrieve", "compute", "poll", "cancel", "dashboards", "dashboard", "other")


@dataclass(frozen=True)
class StatsSnapshot:
    """A consistent copy of the counters at one instant.

    `by_kind` counts requests by endpoint kind (list, retrieve, poll, cancel, dashboards: GETs of the
    dashboards list, dashboard: GETs of one dashboard, other); `compute` is
    counted *in addition* for every request that ran a synchronous calculation (a retrieve that
    computed, a legacy compute endpoint). `throttled` is the number of 429 answers. `key_in_query`
    counts requests that carried the API key in the query string (a client must never do that).

    Synchronous calculations (the organisation's concurrency slots): `calculations` counts those
    that produced a result (one per computed list item, retrieve or legacy compute),
    `calculation_errors` those that ran and failed, `concurrency_refused` the calculations the limit
    refused (`concurrency_limit_exceeded` answers, and their 500s without client_query_id), and
    `max_slots_in_use` the most of this emulator's own slots held at once (the organisation's
    background calculations not included).
    Item access (`snapshot["total"]`) works too, for callers that prefer a dict.
    """

    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    max_in_flight: int = 0
    in_flight: int = 0
    key_in_query: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    calculations: int = 0
    calculation_errors: int = 0
    concurrency_refused: int = 0
    max_slots_in_use: int = 0

    def kind(self, name: str) -> int:
        return self.by_kind.get(name, 0)

    def status(self, code: int) -> int:
        return self.by_status.get(code, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_kind": dict(self.by_kind),
            "by_status": {str(code): count for code, count in sorted(self.by_status.items())},
            "throttled": self.throttled,
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "key_in_query": self.key_in_query,
            "faults": dict(self.faults),
            "calculations": self.calculations,
            "calculation_errors": self.calculation_errors,
            "concurrency_refused": self.concurrency_refused,
            "max_slots_in_use": self.max_slots_in_use,
        }

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]


class Stats:
    """Thread-safe request counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_locked()

    def _reset_locked(self) -> None:
        self._total = 0
        self._by_kind: Counter[str] = Counter({kind: 0 for kind in KINDS})
        self._by_status: Counter[int] = Counter()
        self._throttled = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._key_in_query = 0
        self._faults: Counter[str] = Counter()
        self._calculations = 0
        self._calculation_errors = 0
        self._refused = 0
        self._max_slots = 0

    def begin(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def end(self, kind: str, status: int, *, computed: bool, key_in_query: bool, fault: str | None) -> None:
        with self._lock:
            self._in_flight -= 1
            self._total += 1
            self._by_kind[kind] += 1
            if computed:
                self._by_kind["compute"] += 1
            self._by_status[status] += 1
            if status == 429:
                self._throttled += 1
            if key_in_query:
                self._key_in_query += 1
            if fault is not None:
                self._faults[fault] += 1

    def slots_taken(self, in_use: int) -> None:
        """A calculation took a slot; `in_use` is our slots held now, that one included."""
        with self._lock:
            self._max_slots = max(self._max_slots, in_use)

    def calculation_refused(self) -> None:
        with self._lock:
            self._refused += 1

    def calculation_ended(self, *, ok: bool) -> None:
        with self._lock:
            if ok:
                self._calculations += 1
            else:
                self._calculation_errors += 1

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                total=self._total,
                by_kind=dict(self._by_kind),
                by_status=dict(self._by_status),
                throttled=self._throttled,
                max_in_flight=self._max_in_flight,
                in_flight=self._in_flight,
                key_in_query=self._key_in_query,
                faults=dict(self._faults),
                calculations=self._calculations,
                calculation_errors=self._calculation_errors,
                concurrency_refused=self._refused,
                max_slots_in_use=self._max_slots,
            )

    def reset(self) -> None:
        """Zero every counter; requests in flight stay counted as in flight."""
        with self._lock:
            in_flight = self._in_flight
            self._reset_locked()
            self._in_flight = self._max_in_flight = in_flight
