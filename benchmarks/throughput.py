"""Rows per second through extract, normalize and load into DuckDB, HTTP excluded.

Trend payloads are built in memory first (untimed). Then, timed:
- ours: the source's own Arrow path, `TidyRows.add()` per insight and `take()` every `TIDY_FLUSH_ROWS`
  rows, the Arrow tables yielded by a dlt resource with the source's hints (merge on the snapshot key);
- the baseline: the same rows as Python dicts (converted untimed, so the baseline pays only dlt's
  default path) yielded in lists of 1,000 by a resource with the same hints.
Both go through `pipeline.run` into a fresh DuckDB file; the loaded row count is checked afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt

from benchmarks.http_runs import make_pipeline
from posthog_insights import ledger, tables
from posthog_insights.shapes import TIDY_PRIMARY_KEYS, SnapshotRef, TidyRows
from posthog_insights_cli.loader import MERGE_AS_STAGED

TABLE = "trend_points"
SNAPSHOT = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
_DICT_CHUNK = 1_000
# The source's own batch size (the Recorder flushes its TidyRows at this many rows).
FLUSH_ROWS: int = ledger.TIDY_FLUSH_ROWS

Payload = tuple[dict[str, Any], dict[str, Any]]  # (insight metadata, response with `result`)


@dataclass(frozen=True)
class Throughput:
    rows: int
    seconds: float  # extract + normalize + load
    loaded: int  # rows found in DuckDB afterwards
    phases: dict[str, float]  # seconds per dlt step

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def trend_payloads(rows: int, points: int = 1_000, series: int = 2) -> list[Payload]:
    """Line-trend insights of `series` x `points` points each, `rows` points in all (rounded up)."""
    per_insight = points * series
    insights = max(1, -(-rows // per_insight))
    start = date(2021, 1, 1)
    days = [(start + timedelta(days=i)).isoformat() for i in range(points)]
    labels = [
        f"{d.day}-{d.strftime('%b')}-{d.year}" for d in (start + timedelta(days=i) for i in range(points))
    ]
    query = {
        "kind": "InsightVizNode",
        "source": {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "$pageview"}]},
    }
    out: list[Payload] = []
    for n in range(insights):
        result = []
        for s in range(series):
            data = [(n * 7 + s * 13 + i * 31) % 5_000 for i in range(points)]
            action = {"id": f"event_{s}", "name": f"event_{s}", "order": s, "math": "total"}
            result.append(
                {
                    "action": action,
                    "label": f"event_{s}",
                    "count": sum(data),
                    "data": data,
                    "days": days,
                    "labels": labels,
                }
            )
        out.append(({"id": n + 1, "query": query, "filters": {}}, {"result": result}))
    return out


def _hints(*, ours: bool) -> dict[str, Any]:
    return {
        "name": TABLE,
        # the source's hints for a result table; ours merged as staged, as the CLI's runs do
        "write_disposition": MERGE_AS_STAGED if ours else "merge",
        "primary_key": list(TIDY_PRIMARY_KEYS[TABLE]),
        "merge_key": list(tables.SNAPSHOT_KEY),
        "max_table_nesting": 0,
    }


def _timed_run(pipeline: dlt.Pipeline, resource: Any) -> dict[str, float]:
    """`pipeline.run`, one step at a time so that each step's share is known."""
    phases: dict[str, float] = {}
    started = time.perf_counter()
    pipeline.extract(resource)
    phases["extract"] = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.normalize()
    phases["normalize"] = time.perf_counter() - started
    started = time.perf_counter()
    pipeline.load()
    phases["load"] = time.perf_counter() - started
    return phases


def _loaded(pipeline: dlt.Pipeline) -> int:
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT COUNT(*) FROM {client.make_qualified_table_name(TABLE)}") or [(0,)]
    return int(rows[0][0])


def arrow_path(payloads: list[Payload], workdir: Path) -> Throughput:
    def tidy_tables() -> Iterator[Any]:
        tidy = TidyRows()
        for index, (insight, response) in enumerate(payloads):
            tidy.add(SnapshotRef(1, index + 1, SNAPSHOT), insight, response)
            if tidy.row_count() >= FLUSH_ROWS:
                yield from tidy.take().values()
        yield from tidy.take().values()

    rows = sum(len(s["data"]) for _, response in payloads for s in response["result"])
    pipeline = make_pipeline(workdir, "bench_arrow", ours=True)
    phases = _timed_run(pipeline, dlt.resource(tidy_tables, **_hints(ours=True)))
    return Throughput(rows, sum(phases.values()), _loaded(pipeline), phases)


def dict_rows(payloads: list[Payload]) -> list[dict[str, Any]]:
    """The very rows the Arrow path loads, as Python dicts (built untimed)."""
    tidy = TidyRows()
    for index, (insight, response) in enumerate(payloads):
        tidy.add(SnapshotRef(1, index + 1, SNAPSHOT), insight, response)
    rows: list[dict[str, Any]] = tidy.take()[TABLE].to_pylist()
    return rows


def dict_path(rows: list[dict[str, Any]], workdir: Path) -> Throughput:
    def chunks() -> Iterator[list[dict[str, Any]]]:
        for start in range(0, len(rows), _DICT_CHUNK):
            yield rows[start : start + _DICT_CHUNK]

    pipeline = make_pipeline(workdir, "bench_dicts", ours=False)
    phases = _timed_run(pipeline, dlt.resource(chunks, **_hints(ours=False)))
    return Throughput(len(rows), sum(phases.values()), _loaded(pipeline), phases)
