"""Checks a warehouse's tidy rows value by value against the raw result JSON they came from.

Written independently of `posthog_insights.shapes`: it reads PostHog's shapes the plain way (series ->
data, heatmap series -> grid cells, boxes -> one row each, steps -> count, bins -> [seconds, count],
cohorts -> values, links -> value, rows -> columns) and compares every number.
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


def _same(got: tuple[Any, ...], expected: tuple[Any, ...]) -> bool:
    """Equal field by field; numbers compared as floats, within rounding."""
    if len(got) != len(expected):
        return False
    for g, e in zip(got, expected, strict=True):
        if isinstance(g, (int, float)) and isinstance(e, (int, float)) and not isinstance(e, bool):
            if not _close(g, e):
                return False
        elif g != e:
            return False
    return True


def _columns_of(wh: Warehouse, table: str) -> set[str]:
    rows = wh.sql(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'posthog_insights' AND table_name = ?",
        table,
    )
    return {r[0] for r in rows}


def _rows(wh: Warehouse, table: str, key: tuple[Any, ...], columns: str, order: str) -> list[tuple[Any, ...]]:
    """The insight's rows; a listed column the warehouse does not have (dlt adds a column only once some
    row has a value in it) reads as NULL."""
    present = _columns_of(wh, table)
    select = ", ".join(c if c in present else f"NULL AS {c}" for c in (c.strip() for c in columns.split(",")))
    return wh.sql(
        f"SELECT {select} FROM {table} WHERE project_id = ? AND insight_id = ? AND snapshot = ? "
        f"AND variant = ? ORDER BY {order}",
        *key,
    )


# (series_index, point_index, value, weekday, hour, box_min, box_p25, box_median, box_p75, box_max)
_TREND_COLUMNS = (
    "series_index, point_index, value, weekday, hour, box_min, box_p25, box_median, box_p75, box_max"
)
_NO_BOX = (None, None, None, None, None)


def _cells(s: int, grid: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s, p, c["value"], c["row"], c["column"], *_NO_BOX) for p, c in enumerate(grid["data"])]


def _boxes(result: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    seen: dict[int, int] = {}
    out = []
    for box in result:
        s = box.get("series_index") or 0
        p = seen.get(s, 0)
        seen[s] = p + 1
        p25 = box["p25"] if "p25" in box else box.get("q1")
        p75 = box["p75"] if "p75" in box else box.get("q3")
        out.append((s, p, box["mean"], None, None, box["min"], p25, box["median"], p75, box["max"]))
    return out


def _trend_expectations(result: Any) -> list[tuple[Any, ...]]:
    if isinstance(result, dict):  # a CalendarHeatmapQuery: the grid itself
        return _cells(0, result)
    if result and isinstance(result[0], dict) and "median" in result[0]:  # display BoxPlot
        return _boxes(result)
    expected: list[tuple[Any, ...]] = []
    for s, series in enumerate(result):
        data = series.get("data") or []
        if series.get("calendar_heatmap_data"):
            expected += _cells(s, series["calendar_heatmap_data"])
        elif data:
            expected += [(s, p, v, None, None, *_NO_BOX) for p, v in enumerate(data)]
        elif series.get("aggregated_value") is not None:
            expected.append((s, 0, series["aggregated_value"], None, None, *_NO_BOX))
    return expected


def check_trends(wh: Warehouse, key: tuple[Any, ...], result: Any) -> int:
    expected = sorted(_trend_expectations(result), key=lambda r: (r[0], r[1]))
    got = _rows(wh, "trend_points", key, _TREND_COLUMNS, "series_index, point_index")
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in expected], key
    for g, e in zip(got, expected, strict=True):
        assert _same(g, e), (key, g, e)
    return len(expected)


def _step_groups(result: list[Any]) -> list[list[dict[str, Any]]]:
    """Lists of steps (a breakdown), or one flat list, cut where `compare_label` changes (a comparison)."""
    if result and isinstance(result[0], list):
        return result
    groups: list[list[dict[str, Any]]] = []
    for step in result:
        if not groups or step.get("compare_label") != groups[-1][-1].get("compare_label"):
            groups.append([])
        groups[-1].append(step)
    return groups


def check_funnel(wh: Warehouse, key: tuple[Any, ...], result: Any) -> int:
    periods = None
    if isinstance(result, dict):
        periods = [result]
    elif result and isinstance(result[0], dict) and "bins" in result[0]:
        periods = result
    if periods is not None:
        expected_bins = [
            (float(seconds), int(count), period.get("compare_label"))
            for period in periods
            for seconds, count in period["bins"]
        ]
        got = _rows(wh, "funnel_conversion_bins", key, "bin_seconds, count, compare_label", "bin_index")
        assert [(float(s), int(c), label) for s, c, label in got] == expected_bins, key
        return len(expected_bins)
    if result and isinstance(result[0], dict) and "data" in result[0]:
        return check_trends(wh, key, result)
    expected = [
        (b, step["order"], step["count"], step.get("compare_label"))
        for b, steps in enumerate(_step_groups(result))
        for step in steps
    ]
    got = _rows(
        wh,
        "funnel_steps",
        key,
        "breakdown_index, step_order, count, compare_label",
        "breakdown_index, step_order",
    )
    assert got == sorted(expected, key=lambda r: (r[0], r[1])), key
    return len(expected)


def check_retention(wh: Warehouse, key: tuple[Any, ...], result: list[Any]) -> int:
    expected = [
        (c, p, math.floor(float(v["count"]) + 0.5), float(v["count"]))
        for c, cohort in enumerate(result)
        for p, v in enumerate(cohort["values"])
    ]
    got = _rows(
        wh, "retention_cells", key, "cohort_index, period_index, count, value", "cohort_index, period_index"
    )
    assert [g[:3] for g in got] == [e[:3] for e in expected], key
    # `value` is the exact count; a warehouse loaded before it existed has it as NULL
    assert all(g[3] is None or _close(g[3], e[3]) for g, e in zip(got, expected, strict=True)), key
    return len(expected)


def check_paths(wh: Warehouse, key: tuple[Any, ...], result: list[Any]) -> int:
    expected = sorted((link["source"], link["target"], float(link["value"])) for link in result)
    got = sorted(
        (s, t, float(v)) for s, t, v in _rows(wh, "path_edges", key, "source, target, value", "source")
    )
    assert got == expected, key
    return len(expected)


def check_sql(wh: Warehouse, key: tuple[Any, ...], result: list[Any], columns: list[str] | None) -> int:
    """SQL rows and data-table rows: an array keyed by the column names, an object as it is."""
    got = _rows(wh, "sql_rows", key, "row_index, row", "row_index")
    assert [r[0] for r in got] == list(range(len(result))), key
    for (_, row), values in zip(got, result, strict=True):
        if isinstance(values, dict):
            assert json.loads(row) == values, key
        else:
            names = columns or [f"c{i}" for i in range(len(values))]
            assert json.loads(row) == dict(zip(names, values, strict=False)), key
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
        elif kind in ("sql", "table"):
            n = check_sql(wh, key, result, json.loads(columns_json) if columns_json else None)
        else:
            raise AssertionError(f"unexpected kind {kind!r} for {key}")
        assert n == tidy_rows, (key, n, tidy_rows)
        checked[kind] = checked.get(kind, 0) + n
    return checked
