"""Checks a warehouse's tidy rows value by value against the raw result JSON they came from.

Written independently of `posthog_insights.shapes`: it reads PostHog's shapes the plain way (series ->
data, steps -> count, cohorts -> values, links -> value, rows -> columns) and compares every number.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tests.conftest import Warehouse
from tests.reliability.support import duplicate_keys


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def _rows(wh: Warehouse, table: str, key: tuple[Any, ...], columns: str, order: str) -> list[tuple[Any, ...]]:
    return wh.sql(
        f"SELECT {columns} FROM {table} WHERE project_id = ? AND insight_id = ? AND snapshot = ? "
        f"AND variant = ? ORDER BY {order}",
        *key,
    )


def check_trends(wh: Warehouse, key: tuple[Any, ...], result: list[Any]) -> int:
    expected: list[tuple[int, int, float]] = []
    for s, series in enumerate(result):
        data = series.get("data") or []
        if data:
            expected += [(s, p, v) for p, v in enumerate(data)]
        elif series.get("aggregated_value") is not None:
            expected.append((s, 0, series["aggregated_value"]))
    got = _rows(wh, "trend_points", key, "series_index, point_index, value", "series_index, point_index")
    assert [(s, p) for s, p, _ in got] == [(s, p) for s, p, _ in expected], key
    assert all(_close(g[2], e[2]) for g, e in zip(got, expected, strict=True)), key
    return len(expected)


def check_funnel(wh: Warehouse, key: tuple[Any, ...], result: Any) -> int:
    if isinstance(result, dict):
        bins = result["bins"]
        got = _rows(wh, "funnel_conversion_bins", key, "bin_seconds, count", "bin_index")
        assert [(float(s), int(c)) for s, c in got] == [(float(s), int(c)) for s, c in bins], key
        return len(bins)
    if result and isinstance(result[0], dict) and "data" in result[0]:
        return check_trends(wh, key, result)
    groups = result if result and isinstance(result[0], list) else [result]
    expected = [(b, step["order"], step["count"]) for b, steps in enumerate(groups) for step in steps]
    got = _rows(wh, "funnel_steps", key, "breakdown_index, step_order, count", "breakdown_index, step_order")
    assert sorted(got) == sorted(expected), key
    return len(expected)


def check_retention(wh: Warehouse, key: tuple[Any, ...], result: list[Any]) -> int:
    expected = [(c, p, v["count"]) for c, cohort in enumerate(result) for p, v in enumerate(cohort["values"])]
    got = _rows(wh, "retention_cells", key, "cohort_index, period_index, count", "cohort_index, period_index")
    assert got == expected, key
    return len(expected)


def check_paths(wh: Warehouse, key: tuple[Any, ...], result: list[Any]) -> int:
    expected = sorted((link["source"], link["target"], float(link["value"])) for link in result)
    got = sorted(
        (s, t, float(v)) for s, t, v in _rows(wh, "path_edges", key, "source, target, value", "source")
    )
    assert got == expected, key
    return len(expected)


def check_sql(wh: Warehouse, key: tuple[Any, ...], result: list[Any], columns: list[str]) -> int:
    got = _rows(wh, "sql_rows", key, "row_index, row", "row_index")
    assert [r[0] for r in got] == list(range(len(result))), key
    for (_, row), values in zip(got, result, strict=True):
        assert json.loads(row) == dict(zip(columns, values, strict=False)), key
    return len(result)


def assert_unique_keys(wh: Warehouse) -> None:
    """No two rows share a primary key: staging data is declared de-duplicated, so nothing else checks."""
    assert {table: n for table, n in duplicate_keys(wh.path).items() if n} == {}


def check_all_ok_snapshots(wh: Warehouse) -> dict[str, int]:
    """Every ok snapshot's tidy rows equal its payload, each row once; returns checked rows per kind."""
    assert_unique_keys(wh)
    checked: dict[str, int] = {}
    rows = wh.sql(
        "SELECT project_id, insight_id, snapshot, variant, kind, result_json, columns_json, tidy_rows "
        "FROM insight_results WHERE status = 'ok'"
    )
    assert rows, "no ok snapshot to check"
    for project_id, insight_id, snapshot, variant, kind, result_json, columns_json, tidy_rows in rows:
        key = (project_id, insight_id, snapshot, variant)
        result = json.loads(result_json)
        if kind in ("trends", "stickiness", "lifecycle"):
            n = check_trends(wh, key, result)
        elif kind == "funnels":
            n = check_funnel(wh, key, result)
        elif kind == "retention":
            n = check_retention(wh, key, result)
        elif kind == "paths":
            n = check_paths(wh, key, result)
        elif kind == "sql":
            n = check_sql(wh, key, result, json.loads(columns_json))
        else:
            raise AssertionError(f"unexpected kind {kind!r} for {key}")
        assert n == tidy_rows, (key, n, tidy_rows)
        checked[kind] = checked.get(kind, 0) + n
    return checked
