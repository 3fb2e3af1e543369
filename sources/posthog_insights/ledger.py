"""What has been loaded already, in the source's dlt state, and the rows of what has not.

A snapshot is immutable: the same insight with the same `last_refresh` and result has the same rows, so
emitting it again would only make the destination merge work for nothing. The state (committed atomically
with each load package) keeps per project and insight the last `last_modified_at` loaded, the last ok
snapshot and the last failure, so a re-run with nothing changed yields no rows at all.

Every write to the state happens here, in dlt's main thread (the resources' map steps and transformers);
the network side only reads it, once, when it plans.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson
import pyarrow as pa

from posthog_insights import tables
from posthog_insights.report import RunReport
from posthog_insights.rows import INSIGHTS_SCHEMA, RESULTS_SCHEMA, Outcome, insight_row, result_row, table
from posthog_insights.shapes import ShapeOutcome, SnapshotRef, TidyRows, insight_kind

# Variants of backfill windows (backfill.py spells them); kept here, where their record is written.
WINDOW_MARK: Final = "window="
TIDY_FLUSH_ROWS: Final = 50_000
RECORD_FLUSH_ROWS: Final = 1_000
# Raw results are the bulk of a batch (a year of daily points is ~70 KB of JSON per insight): a batch is
# also cut at this many bytes of `result_json`, so memory does not grow with the size of the results.
RESULT_FLUSH_BYTES: Final = 8 * 1024 * 1024

Tables = dict[str, pa.Table]


def project_state(state: MutableMapping[str, Any], project_id: int) -> MutableMapping[str, Any]:
    projects = state.setdefault("projects", {})
    entry: MutableMapping[str, Any] = projects.setdefault(str(project_id), {})
    entry.setdefault("modified", {})  # insight id -> last_modified_at loaded
    entry.setdefault("ok", {})  # "id|variant" -> [snapshot iso, digest] of the last ok snapshot loaded
    # "id|variant" -> [status, digest, ok snapshot iso it followed, seen_at iso, last_modified_at] of the
    # last failure loaded; kept apart from `ok` so a stale result and a failing refresh of the same insight
    # do not overwrite each other's record on every run
    entry.setdefault("failed", {})
    entry.setdefault("deferred", [])  # insight ids to retrieve first next run
    return entry


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def known_insight_ids(state: Mapping[str, Any], project_id: int) -> set[int]:
    """The insights loaded so far (and not flagged deleted)."""
    entry = state.get("projects", {}).get(str(project_id), {})
    return {int(k) for k in entry.get("modified", {})}


def failed_recently(
    state: Mapping[str, Any],
    project_id: int,
    insight_id: int,
    variant: str,
    item: Mapping[str, Any],
    now: datetime,
    within_s: float,
) -> bool:
    """Whether this insight's last outcome was an error less than `within_s` ago and its definition is
    unchanged since: retrying it at once would most likely fail again and spend a request for nothing."""
    entry = state.get("projects", {}).get(str(project_id), {})
    failure = entry.get("failed", {}).get(f"{insight_id}|{variant}")
    if not failure or failure[0] != tables.STATUS_ERROR or within_s <= 0:
        return False
    if failure[4] != str(item.get("last_modified_at")):
        return False
    seen = datetime.fromisoformat(failure[3])
    return (now - seen).total_seconds() < within_s


class MetadataLedger:
    """Rows of the `insights` table: an insight whose definition changed since it was last loaded."""

    def __init__(self, state: MutableMapping[str, Any], report: RunReport) -> None:
        self._state = state
        self._report = report

    def listed(
        self, project_id: int, items: Iterable[Mapping[str, Any]], seen_at: datetime
    ) -> pa.Table | None:
        modified = project_state(self._state, project_id)["modified"]
        rows = []
        for item in items:
            key, stamp = str(item["id"]), str(item.get("last_modified_at"))
            if modified.get(key) == stamp:
                continue
            modified[key] = stamp
            rows.append(insight_row(project_id, item, seen_at, deleted=False))
        return table(rows, INSIGHTS_SCHEMA) if rows else None

    def vanished(
        self, project_id: int, previous: Iterable[Mapping[str, Any]], seen_at: datetime
    ) -> pa.Table | None:
        """Insights a complete listing no longer shows (deleted in PostHog): kept, flagged deleted."""
        modified = project_state(self._state, project_id)["modified"]
        rows = []
        for row in previous:
            modified.pop(str(row["id"]), None)
            kept = {name: row.get(name) for name in INSIGHTS_SCHEMA.names}
            kept.update(project_id=project_id, deleted=True, seen_at=seen_at)
            rows.append(kept)
            self._report.deleted_flagged += 1
        return table(rows, INSIGHTS_SCHEMA) if rows else None


class ResultLedger:
    """Rows of `insight_results` and the tidy tables, gathered into batches of a useful size."""

    def __init__(self, state: MutableMapping[str, Any], report: RunReport) -> None:
        self._state = state
        self._report = report
        self._tidy = TidyRows()
        self._result_rows: list[dict[str, Any]] = []
        self._result_bytes = 0

    def outcome(self, outcome: Outcome, meta: Mapping[str, Any], final: bool = True) -> None:
        """Record an outcome; `final` is False for a stale result kept as history before its refresh."""
        if final:
            self._report.outcomes[outcome.status] += 1
        state = project_state(self._state, outcome.project_id)
        key = f"{outcome.insight_id}|{outcome.variant}"
        last_ok = state["ok"].get(key)
        last_failure = state["failed"].get(key)
        ok_snapshot = last_ok[0] if last_ok else ""
        response = outcome.response or {}
        result_json: str | None = None
        if outcome.status == tables.STATUS_OK:
            result_json = orjson.dumps(response.get("result"), option=orjson.OPT_NON_STR_KEYS).decode()
            digest = _digest(result_json)
            last_refresh = outcome.last_refresh
            snapshot = last_refresh or outcome.seen_at
            same_snapshot = last_refresh is None or ok_snapshot == last_refresh.isoformat()
            loaded = bool(last_ok) and last_ok[1] == digest and same_snapshot
            # a failure was recorded after this very snapshot: as the run's answer it becomes latest again
            failed_since = bool(last_failure) and last_failure[2] == ok_snapshot
            if loaded and not (final and failed_since):
                self._report.skipped_unchanged += 1
                return
            # history recorded after its own refresh must not take the newer snapshot's place in the state
            newer_known = bool(last_ok) and not final and ok_snapshot > snapshot.isoformat()
        else:
            digest = _digest(f"{outcome.status}:{outcome.error_message}")
            if last_failure and last_failure[:3] == [outcome.status, digest, ok_snapshot]:
                self._report.skipped_unchanged += 1
                return
            snapshot = outcome.seen_at
            newer_known = False
        shaped: ShapeOutcome | None = None
        if outcome.status == tables.STATUS_OK:
            ref = SnapshotRef(outcome.project_id, outcome.insight_id, snapshot, outcome.variant)
            shaped = self._tidy.add(ref, meta, response)
        self._result_rows.append(result_row(outcome, snapshot, insight_kind(meta), shaped, result_json))
        self._result_bytes += len(result_json or "")
        if outcome.status == tables.STATUS_OK:
            if not newer_known:
                state["ok"][key] = [snapshot.isoformat(), digest]
            if WINDOW_MARK in outcome.variant:  # a backfill's window: never asked for again
                state.setdefault("backfilled", {})[key] = True
            if final:
                state["failed"].pop(key, None)
        else:
            stamp = str(meta.get("last_modified_at"))
            state["failed"][key] = [outcome.status, digest, ok_snapshot, outcome.seen_at.isoformat(), stamp]

    def defer(self, deferred: Mapping[int, Sequence[int]]) -> None:
        """What the run leaves for the next: retrieved first then."""
        for project_id, ids in deferred.items():
            project_state(self._state, project_id)["deferred"] = list(ids)

    def full(self) -> bool:
        return (
            self._tidy.row_count() >= TIDY_FLUSH_ROWS
            or len(self._result_rows) >= RECORD_FLUSH_ROWS
            or self._result_bytes >= RESULT_FLUSH_BYTES
        )

    def take(self) -> Tables:
        """Everything gathered, as Arrow tables by table name; the buffers are empty afterwards."""
        batch: Tables = {}
        if self._result_rows:
            batch[tables.RESULTS] = table(self._result_rows, RESULTS_SCHEMA)
            self._result_rows = []
            self._result_bytes = 0
        batch.update(self._tidy.take())
        return batch
