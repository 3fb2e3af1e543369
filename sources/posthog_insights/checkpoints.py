"""Checkpoints: one run loaded as several load packages, so what a long run fetched lands as it goes.

Under PostHog's limits a large project takes hours (1,200 requests an hour); loaded as one package at the
end, a run killed in its last minute would lose all of it, and the destination would take every result in
one transaction (DuckDB held ~380 MiB more for 700 MB of raw results). So the loader runs the source
several times over one harvest: each `pipeline.run` extracts the batches up to the next checkpoint, commits
the dlt state with them and loads them, then the harvest carries on where it paused.

A checkpoint falls between two batches, where the recorder's buffers are empty and the dlt state records
exactly what has been emitted, so every package is a consistent place for the next run to resume from.
Two triggers:

* volume: `max_bytes` of Arrow data since the last checkpoint (bounds the load's transaction and memory);
* idle: the harvest reports `Idle` (nothing in flight, the pacer holds the next request `min_idle_s` or
  more): the package loads in time the run would have spent waiting for the rate limit anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from posthog_insights.errors import ConfigError
from posthog_insights.harvest import Harvest, Idle, iterate_sync
from posthog_insights.recorder import Batch

DEFAULT_CHECKPOINT_MB: float | None = None
# Below this a pause is not worth a load package: loading one takes ~0.5 s of fixed work.
DEFAULT_MIN_IDLE_S = 1.0


class Checkpoints:
    """Shared by the sources of one run: the first `segment` starts the harvest, later ones resume it.

    `max_mb=None` (or 0) and `min_idle_s=None` turn the triggers off: the run is then one package.
    """

    def __init__(
        self, max_mb: float | None = DEFAULT_CHECKPOINT_MB, min_idle_s: float | None = DEFAULT_MIN_IDLE_S
    ) -> None:
        if max_mb is not None and (isinstance(max_mb, bool) or not max_mb >= 0):
            raise ConfigError("checkpoint_mb", f"must be a number of MB >= 0, got {max_mb!r}")
        self.max_bytes = int(max_mb * 1024 * 1024) if max_mb else None
        self.min_idle_s = min_idle_s
        self.packages = 0  # segments started so far
        self.finished = False
        self._harvest: Harvest | None = None
        self._items: Iterator[Batch | Idle] | None = None

    def segment(
        self, make_harvest: Callable[[MutableMapping[str, Any]], Harvest], state: MutableMapping[str, Any]
    ) -> Iterator[Batch]:
        """The batches up to the next checkpoint; `finished` once the harvest has no more."""
        if self._harvest is None or self._items is None:
            self._harvest = make_harvest(state)
            self._harvest.idle_checkpoint_s = self.min_idle_s
            self._items = iterate_sync(self._harvest.batches())
        else:
            self._harvest.use_state(state)
        self.packages += 1
        size = 0
        for item in self._items:
            if isinstance(item, Idle):
                if size:
                    return
                continue
            yield item
            size += sum(table.nbytes for _, table in item)
            if self.max_bytes is not None and size >= self.max_bytes:
                return
        self.finished = True

    def close(self) -> None:
        """Stop the harvest's event loop (a run that failed between checkpoints); idempotent."""
        items, self._items = self._items, None
        if items is not None and hasattr(items, "close"):
            items.close()
