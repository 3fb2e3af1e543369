"""Turns what a run sees into rows, skipping what an earlier run already loaded.

A snapshot is immutable: the same insight with the same `last_refresh` and result has the same rows, so
re-emitting it would only make the destination merge work for nothing. The recorder remembers, in the
source's dlt state (committed atomically with the load package), per insight the last ok snapshot and the
last failure loaded and the last `last_modified_at`, so a re-run with nothing changed yields no rows at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from posthog_insights import settings
from posthog_insights.records import (
    INSIGHTS_SCHEMA,
    RESULTS_SCHEMA,
    Outcome,
    insight_row,
    result_row,
    table,
)
from posthog_insights.report import RunReport
from posthog_insights.shapes import ShapeOutcome, SnapshotRef, TidyRows, insight_kind

TIDY_FLUSH_ROWS = 50_000
RECORD_FLUSH_ROWS = 1_000
# Raw results are the bulk of a batch (a year of daily points is ~70 KB of JSON per insight): a batch is
# also cut at this many bytes of `result_json`, so memory does not grow with the size of the results.
RESULT_FLUSH_BYTES = 8 * 1024 * 1024

Batch = list[tuple[str, pa.Table]]


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


class Recorder:
    def __init__(self, state: MutableMapping[str, Any], report: RunReport) -> None:
        self._state = state
        self._report = report
        self._tidy = TidyRows()
        self._insight_rows: list[dict[str, Any]] = []
        self._result_rows: list[dict[str, Any]] = []
        self._result_bytes = 0
        # Rows of insights still waiting for a retrieve, loaded at the end of the run. A 404 on that
        # retrieve replaces the row (deleted = true) instead of adding a second row with the same key to
        # the load package: dlt's merge keeps an arbitrary one of two rows that share a primary key.
        # Their `modified` stamp is recorded only when the row goes out, so a checkpoint taken meanwhile
        # (checkpoints.py) does not commit a stamp whose row is not in the package yet.
        self._held: dict[tuple[int, int], tuple[dict[str, Any], str]] = {}
        self._buffered: dict[tuple[int, int], int] = {}  # (project, id) -> index in _insight_rows

    def use_state(self, state: MutableMapping[str, Any]) -> None:
        """Carry on in `state`, the dict dlt hands the next load package of the same run (checkpoints.py)."""
        if state is not self._state:
            state.update(self._state)
            self._state = state

    # -- insights metadata -------------------------------------------------------------------------
    def insight(
        self,
        project_id: int,
        item: Mapping[str, Any],
        seen_at: datetime,
        deleted: bool = False,
        hold: bool = False,
    ) -> None:
        """Record an insight's metadata; `hold` keeps the row until the run's last batch (see __init__)."""
        modified = project_state(self._state, project_id)["modified"]
        key = str(item["id"])
        stamp = str(item.get("last_modified_at"))
        if deleted:
            modified.pop(key, None)
            self._report.deleted_flagged += 1
        elif modified.get(key) == stamp:
            return
        elif not hold:
            modified[key] = stamp
        row = insight_row(project_id, item, seen_at, deleted)
        ref = (project_id, int(item["id"]))
        if deleted:
            self._held.pop(ref, None)
            if ref in self._buffered:  # listed earlier in this run and not yet written: replace it
                self._insight_rows[self._buffered[ref]] = row
                return
        if hold:
            self._held[ref] = (row, stamp)
            return
        self._buffered[ref] = len(self._insight_rows)
        self._insight_rows.append(row)

    def deleted_rows(self, project_id: int, rows: Iterable[Mapping[str, Any]], seen_at: datetime) -> None:
        """Insights that vanished from a complete listing: kept, flagged deleted."""
        modified = project_state(self._state, project_id)["modified"]
        for row in rows:
            modified.pop(str(row["id"]), None)
            kept = {name: row.get(name) for name in INSIGHTS_SCHEMA.names}
            kept.update(project_id=project_id, deleted=True, seen_at=seen_at)
            self._insight_rows.append(kept)
            self._report.deleted_flagged += 1

    def known_insight_ids(self, project_id: int) -> set[int]:
        return {int(k) for k in project_state(self._state, project_id)["modified"]}

    # -- outcomes ----------------------------------------------------------------------------------
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
        if outcome.status == settings.STATUS_OK:
            result_json = orjson.dumps(response.get("result"), option=orjson.OPT_NON_STR_KEYS).decode()
            digest = _digest(result_json)
            last_refresh = outcome.last_refresh
            same_snapshot = last_refresh is None or ok_snapshot == last_refresh.isoformat()
            loaded = bool(last_ok) and last_ok[1] == digest and same_snapshot
            # a failure was recorded after this very snapshot: as the run's answer it becomes latest again
            failed_since = bool(last_failure) and last_failure[2] == ok_snapshot
            if loaded and not (final and failed_since):
                self._report.skipped_unchanged += 1
                return
            snapshot = last_refresh or outcome.seen_at
        else:
            digest = _digest(f"{outcome.status}:{outcome.error_message}")
            if last_failure and last_failure[:3] == [outcome.status, digest, ok_snapshot]:
                self._report.skipped_unchanged += 1
                return
            snapshot = outcome.seen_at
        kind = insight_kind(meta)
        shaped: ShapeOutcome | None = None
        if outcome.status == settings.STATUS_OK:
            ref = SnapshotRef(outcome.project_id, outcome.insight_id, snapshot, outcome.variant)
            shaped = self._tidy.add(ref, meta, response)
        self._result_rows.append(result_row(outcome, snapshot, kind, shaped, result_json))
        self._result_bytes += len(result_json or "")
        if outcome.status == settings.STATUS_OK:
            state["ok"][key] = [snapshot.isoformat(), digest]
            if final:
                state["failed"].pop(key, None)
        else:
            stamp = str(meta.get("last_modified_at"))
            state["failed"][key] = [outcome.status, digest, ok_snapshot, outcome.seen_at.isoformat(), stamp]

    def failed_recently(
        self,
        project_id: int,
        insight_id: int,
        variant: str,
        item: Mapping[str, Any],
        now: datetime,
        within_s: float,
    ) -> bool:
        """Whether this insight's last outcome was an error less than `within_s` ago and its definition is
        unchanged since: retrying it at once would most likely fail again and spend a request for nothing."""
        failure = project_state(self._state, project_id)["failed"].get(f"{insight_id}|{variant}")
        if not failure or failure[0] != settings.STATUS_ERROR or within_s <= 0:
            return False
        if failure[4] != str(item.get("last_modified_at")):
            return False
        seen = datetime.fromisoformat(failure[3])
        return (now - seen).total_seconds() < within_s

    # -- batches -----------------------------------------------------------------------------------
    def should_flush(self) -> bool:
        return (
            self._tidy.row_count() >= TIDY_FLUSH_ROWS
            or len(self._result_rows) >= RECORD_FLUSH_ROWS
            or self._result_bytes >= RESULT_FLUSH_BYTES
            or len(self._insight_rows) >= RECORD_FLUSH_ROWS
        )

    def take(self, last: bool = False) -> Batch:
        """Everything accumulated, as (table name, Arrow table); results go before their tidy rows.

        Held insight rows go out with the `last` batch of the run.
        """
        batch: Batch = []
        if last and self._held:
            for (project_id, insight_id), (row, stamp) in self._held.items():
                project_state(self._state, project_id)["modified"][str(insight_id)] = stamp
                self._insight_rows.append(row)
            self._held = {}
        if self._insight_rows:
            batch.append((settings.TABLE_INSIGHTS, table(self._insight_rows, INSIGHTS_SCHEMA)))
            self._insight_rows = []
            self._buffered = {}
        if self._result_rows:
            batch.append((settings.TABLE_RESULTS, table(self._result_rows, RESULTS_SCHEMA)))
            self._result_rows = []
            self._result_bytes = 0
        batch.extend(self._tidy.take().items())
        return batch
