"""One builder per result shape. Each reads a `result` and appends to the stages of its tables.

Builders raise `Unrecognised` when the payload is not the shape they build, and any other exception on a
value of the wrong type; the caller then drops everything the insight staged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import orjson

from ._buffer import SPECS, Stage
from ._kind import funnel_viz_type
from ._values import Unrecognised, dumps, iso_micros, opt_float, opt_int, text


class Build:
    """The stages of one insight, one per table it touches."""

    __slots__ = ("stages",)

    def __init__(self) -> None:
        self.stages: dict[str, Stage] = {}

    def stage(self, table: str) -> Stage:
        stage = self.stages.get(table)
        if stage is None:
            stage = self.stages[table] = Stage(SPECS[table])
        return stage


Parser = Callable[[Any, Build, Mapping[str, Any], Mapping[str, Any]], str]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_object(value: Any) -> bool:
    """A JSON object: a dict (checked first, the ABC check is slow) or another Mapping."""
    return type(value) is dict or isinstance(value, Mapping)


def _fit(values: list[Any], n: int) -> list[Any]:
    """`values` cut or null-padded to `n` items (days / labels that do not match `data` in length)."""
    if len(values) == n:
        return values
    if len(values) > n:
        return values[:n]
    return values + [None] * (n - len(values))


def _pad(column: list[Any], rows: int) -> None:
    """Bring a sparse column up to `rows` values before appending the next series' values to it."""
    if len(column) < rows:
        column.extend([None] * (rows - len(column)))


# --- trends, stickiness, lifecycle, funnel trends ----------------------------------------------------


def _series(result: Any, build: Build, shape: str) -> str:
    """Series `{data, days, labels, ...}` into trend_points. The hot path: per point only `list.extend`."""
    if not isinstance(result, list):
        raise Unrecognised(f"{shape}: result is a {type(result).__name__}, not a list of series")
    stage = build.stage("trend_points")
    cols = stage.cols
    value, day, interval, label = cols["value"], cols["day"], cols["interval"], cols["label"]
    rows = points = aggregates = 0
    for index, series in enumerate(result):
        if not _is_object(series):
            raise Unrecognised(f"{shape}: series {index} is a {type(series).__name__}, not an object")
        data = series.get("data")
        if data is None:
            data = []
        elif not isinstance(data, list):
            raise Unrecognised(f"{shape}: series {index} data is a {type(data).__name__}")
        aggregated = opt_float(series.get("aggregated_value"))
        action = _mapping(series.get("action"))
        described = (
            index,
            text(series.get("label")),
            text(action.get("id")),
            text(action.get("name")),
            text(action.get("math")),
            text(series.get("breakdown_value")),
            text(series.get("compare_label")),
            text(series.get("status")),
            opt_float(series.get("count")),
            aggregated,
        )
        n = len(data)
        if n:
            value.extend(data)
            days = series.get("days")
            if isinstance(days, list) and days:
                days = _fit(days, n)
                if type(days[0]) is int and all(type(d) is int or d is None for d in days):
                    # stickiness: intervals 1..N
                    _pad(interval, rows)
                    interval.extend(days)
                    _pad(day, rows)
                    day.extend([None if d is None else str(d) for d in days])
                else:
                    _pad(day, rows)
                    day.extend(days)
            labels = series.get("labels")
            if isinstance(labels, list) and labels:
                _pad(label, rows)
                label.extend(_fit(labels, n))
            stage.group(n, (*described, False))
            rows += n
            points += n
        elif aggregated is not None:
            # shown as a single number (BoldNumber, pie, table): one row
            value.append(aggregated)
            stage.group(1, (*described, True))
            rows += 1
            aggregates += 1
    if aggregates and not points:
        return f"{shape}_aggregate"
    return shape


def trends(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """Trends, stickiness (integer `days`) and lifecycle (`status` per series) share this shape."""
    return _series(result, build, "trends")


# --- funnels ---------------------------------------------------------------------------------------


def _steps(steps: list[Any], breakdown_index: int, stage: Stage) -> None:
    cols = stage.cols
    for position, step in enumerate(steps):
        if not _is_object(step):
            raise Unrecognised(f"funnel step {position} is a {type(step).__name__}, not an object")
        if "count" not in step:
            raise Unrecognised(f"funnel step {position} has no count")
        order = step.get("order")
        cols["breakdown_index"].append(breakdown_index)
        cols["step_order"].append(position if order is None else opt_int(order))
        cols["name"].append(text(step.get("name")))
        cols["custom_name"].append(text(step.get("custom_name")))
        cols["action_id"].append(text(step.get("action_id")))
        cols["step_type"].append(text(step.get("type")))
        cols["count"].append(opt_int(step["count"]))
        cols["average_conversion_time"].append(opt_float(step.get("average_conversion_time")))
        cols["median_conversion_time"].append(opt_float(step.get("median_conversion_time")))
        cols["breakdown_value"].append(text(step.get("breakdown_value")))
        cols["breakdown"].append(text(step.get("breakdown")))


def _time_to_convert(result: Mapping[str, Any], build: Build) -> str:
    bins = result.get("bins")
    if not isinstance(bins, list):
        raise Unrecognised("funnel time_to_convert: bins is not a list")
    average = opt_float(result.get("average_conversion_time"))
    cols = build.stage("funnel_conversion_bins").cols
    for index, pair in enumerate(bins):
        if not isinstance(pair, list) or len(pair) != 2:
            raise Unrecognised(f"funnel time_to_convert: bin {index} is not a [seconds, count] pair")
        cols["bin_index"].append(index)
        cols["bin_seconds"].append(opt_float(pair[0]))
        cols["count"].append(opt_int(pair[1]))
        cols["average_conversion_time"].append(average)
    return "funnel_time_to_convert"


_TREND_KEYS: Final = frozenset({"data", "days"})
_STEP_KEYS: Final = frozenset({"order", "action_id"})


def funnels(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """The payload's shape decides; the viz type only breaks a tie (objects with both kinds of keys)."""
    if isinstance(result, Mapping):
        if "bins" in result:
            return _time_to_convert(result, build)
        raise Unrecognised("funnels: result is an object without bins")
    if not isinstance(result, list):
        raise Unrecognised(f"funnels: result is a {type(result).__name__}")
    if all(isinstance(item, list) for item in result):
        stage = build.stage("funnel_steps")
        for index, steps in enumerate(result):
            _steps(steps, index, stage)
        return "funnel_steps_breakdown"
    if not all(isinstance(item, Mapping) for item in result):
        raise Unrecognised("funnels: result mixes lists, objects or scalars")
    keys = set().union(*(item.keys() for item in result))
    trend_like, step_like = bool(keys & _TREND_KEYS), bool(keys & _STEP_KEYS)
    if trend_like and (not step_like or funnel_viz_type(insight) == "trends"):
        return _series(result, build, "funnel_trends")
    if not step_like and "count" not in keys:
        raise Unrecognised("funnels: objects are neither steps nor trend series")
    _steps(result, 0, build.stage("funnel_steps"))
    return "funnel_steps"


# --- retention, paths, sql -------------------------------------------------------------------------


def retention(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    if not isinstance(result, list):
        raise Unrecognised(f"retention: result is a {type(result).__name__}, not a list of cohorts")
    cols = build.stage("retention_cells").cols
    for cohort_index, cohort in enumerate(result):
        if not _is_object(cohort) or not isinstance(cohort.get("values"), list):
            raise Unrecognised(f"retention: cohort {cohort_index} is not an object with values")
        values: list[Any] = cohort["values"]
        n = len(values)
        counts: list[int | None] = []
        period_labels: list[str | None] = []
        for period_index, cell in enumerate(values):
            if _is_object(cell):
                if "count" not in cell:
                    raise Unrecognised(f"retention: cohort {cohort_index} value {period_index} has no count")
                counts.append(opt_int(cell["count"]))
                period_labels.append(text(cell.get("label")))
            else:
                counts.append(opt_int(cell))
                period_labels.append(None)
        cols["cohort_index"].extend([cohort_index] * n)
        cols["period_index"].extend(range(n))
        cols["cohort_date"].extend([iso_micros(cohort.get("date"))] * n)
        cols["cohort_label"].extend([text(cohort.get("label"))] * n)
        cols["period_label"].extend(period_labels)
        cols["count"].extend(counts)
        cols["breakdown_value"].extend([text(cohort.get("breakdown_value"))] * n)
    return "retention"


_STEP_PREFIX: Final = re.compile(r"(\d{1,9})_(.*)", re.DOTALL)


def _node(name: Any, index: int, end: str) -> tuple[str, int | None, str]:
    if type(name) is not str:
        raise Unrecognised(f"paths: link {index} {end} is a {type(name).__name__}, not a string")
    match = _STEP_PREFIX.fullmatch(name)
    if match is None:
        return name, None, name
    return name, int(match[1]), match[2]


def paths(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    if not isinstance(result, list):
        raise Unrecognised(f"paths: result is a {type(result).__name__}, not a list of links")
    cols = build.stage("path_edges").cols
    for index, link in enumerate(result):
        if not _is_object(link):
            raise Unrecognised(f"paths: link {index} is a {type(link).__name__}, not an object")
        source, source_step, source_name = _node(link.get("source"), index, "source")
        target, target_step, target_name = _node(link.get("target"), index, "target")
        cols["source"].append(source)
        cols["target"].append(target)
        cols["source_step"].append(source_step)
        cols["target_step"].append(target_step)
        cols["source_name"].append(source_name)
        cols["target_name"].append(target_name)
        cols["value"].append(opt_float(link.get("value")))
        cols["average_conversion_time"].append(opt_float(link.get("average_conversion_time")))
        cols["edge_index"].append(index)
    return "paths"


def _column_names(response: Mapping[str, Any]) -> list[str]:
    """From `columns`, else the names in `types` ([name, type] pairs); repeated names get a `_<i>` suffix."""
    names: list[str] = []
    columns = response.get("columns")
    types = response.get("types")
    if isinstance(columns, list) and columns:
        names = [text(c) or f"c{i}" for i, c in enumerate(columns)]
    elif isinstance(types, list) and types:
        for i, item in enumerate(types):
            raw = item[0] if isinstance(item, (list, tuple)) and item else _mapping(item).get("name")
            names.append(text(raw) or f"c{i}")
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            names[i] = f"{name}_{i}"
        seen.add(names[i])
    return names


def sql(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """Each row as a compact JSON object keyed by column name; values keep their JSON types."""
    if not isinstance(result, list):
        raise Unrecognised(f"sql: result is a {type(result).__name__}, not a list of rows")
    names = _column_names(response)
    cols = build.stage("sql_rows").cols
    out = cols["row"]
    width = len(names)
    for index, row in enumerate(result):
        if type(row) is list:
            if len(row) > width:
                names = names + [f"c{i}" for i in range(width, len(row))]
                width = len(names)
            # a row shorter than the columns keeps the values it has
            obj: Any = dict(zip(names, row, strict=False))
        elif _is_object(row):
            obj = row
        else:
            raise Unrecognised(f"sql: row {index} is a {type(row).__name__}, not an array")
        try:
            out.append(orjson.dumps(obj).decode())
        except TypeError:  # what orjson refuses (an int beyond 64 bits), the stdlib writes
            out.append(dumps(obj))
    cols["row_index"].extend(range(len(result)))
    return "sql"


PARSERS: Final[dict[str, Parser]] = {
    "trends": trends,
    "stickiness": trends,
    "lifecycle": trends,
    "funnels": funnels,
    "retention": retention,
    "paths": paths,
    "sql": sql,
}
