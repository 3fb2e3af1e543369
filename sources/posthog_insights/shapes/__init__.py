"""Pure, fast builders: PostHog insight result payloads -> tidy Arrow tables.

One row per number PostHog shows (the README's "Tables"): trend points (also calendar heatmap cells and box
plot boxes), funnel steps and time-to-convert bins, retention cells, path edges, SQL rows (also the rows of
data tables over events, persons, web analytics...). No I/O and no dlt here; the source calls
`TidyRows.add()` per insight and yields `TidyRows.take()` in large batches. Rows are built column-wise
(Python lists extended a series at a time, Arrow arrays per insight, run-end decoding and vectorised date
parsing at `take()`), so that building stays far faster than loading.
"""

from __future__ import annotations

from ._kind import insight_kind
from ._schemas import TIDY_PRIMARY_KEYS, TIDY_SCHEMAS
from ._tidy import ShapeOutcome, SnapshotRef, TidyRows

__all__ = [
    "TIDY_PRIMARY_KEYS",
    "TIDY_SCHEMAS",
    "ShapeOutcome",
    "SnapshotRef",
    "TidyRows",
    "insight_kind",
]
