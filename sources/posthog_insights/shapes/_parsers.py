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
from ._values import Unrecognised, count_and_value, dumps, iso_micros, opt_float, opt_int, text


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


_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1


def _int32(value: Any, what: str) -> int:
    """A group value that must fit the int32 key column (group values are not checked again later)."""
    number = opt_int(value)
    if number is None or not _INT32_MIN <= number <= _INT32_MAX:
        raise Unrecognised(f"{what} is {value!r}, not an int32")
    return number


# --- trends, stickiness, lifecycle, funnel trends ----------------------------------------------------


def _series(result: Any, build: Build, shape: str) -> str:
    """Series `{data, days, labels, ...}` into trend_points. The hot path: per point only `list.extend`."""
    if not isinstance(result, list):
        raise Unrecognised(f"{shape}: result is a {type(result).__name__}, not a list of series")
    stage = build.stage("trend_points")
    cols = stage.cols
    value, day, interval, label = cols["value"], cols["day"], cols["interval"], cols["label"]
    rows = points = aggregates = heatmaps = 0
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
        heatmap = series.get("calendar_heatmap_data")
        if heatmap is not None:
            # display CalendarHeatmap: `data` is empty, the grid is the series' rows
            if data:
                raise Unrecognised(f"{shape}: series {index} has both data and calendar_heatmap_data")
            n = _heatmap_cells(heatmap, cols, rows, f"{shape}: series {index} calendar_heatmap_data")
            stage.group(n, (*described, False))
            rows += n
            heatmaps += 1
            continue
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
    if heatmaps:
        return f"{shape}_calendar_heatmap"
    if aggregates and not points:
        return f"{shape}_aggregate"
    return shape


def _heatmap_cells(heatmap: Any, cols: dict[str, list[Any]], rows: int, where: str) -> int:
    """The cells `{row, column, value}` of a day-of-week x hour grid (`EventsHeatMapStructuredResult`):
    one row each, `row` (ClickHouse toDayOfWeek, 1 = Monday) into `weekday`, `column` into `hour`. At most
    7 x 24 cells, so a plain loop. The margins (`rowAggregations`, `columnAggregations`) are not rows."""
    if not _is_object(heatmap):
        raise Unrecognised(f"{where} is a {type(heatmap).__name__}, not an object")
    grid = heatmap.get("data")
    if not isinstance(grid, list):
        raise Unrecognised(f"{where}: data is a {type(grid).__name__}, not a list of cells")
    weekdays: list[Any] = []
    hours: list[Any] = []
    values: list[Any] = []
    for position, cell in enumerate(grid):
        if not _is_object(cell) or "row" not in cell or "column" not in cell or "value" not in cell:
            raise Unrecognised(f"{where}: cell {position} is not an object with row, column and value")
        weekday, hour = cell["row"], cell["column"]
        # checked here: Arrow would truncate a fractional number into an int32 column of a large insight
        if type(weekday) is not int or type(hour) is not int:
            raise Unrecognised(f"{where}: cell {position} row {weekday!r} / column {hour!r} are not integers")
        weekdays.append(weekday)
        hours.append(hour)
        values.append(cell["value"])
    if values:
        _pad(cols["weekday"], rows)
        cols["weekday"].extend(weekdays)
        _pad(cols["hour"], rows)
        cols["hour"].extend(hours)
        cols["value"].extend(values)
    return len(values)


def _heatmap_result(result: Mapping[str, Any], build: Build) -> str:
    """A CalendarHeatmapQuery's own result: the grid itself, as one series."""
    stage = build.stage("trend_points")
    n = _heatmap_cells(result, stage.cols, 0, "calendar heatmap")
    aggregated = opt_float(result.get("allAggregations"))
    stage.group(n, (0, None, None, None, None, None, None, None, None, aggregated, False))
    return "trends_calendar_heatmap"


_BOX_COLUMNS: Final = (
    ("box_min", "min", "min"),
    ("box_p25", "p25", "q1"),  # q1 / q3: the names of the first version of PostHog's box plot
    ("box_median", "median", "median"),
    ("box_p75", "p75", "q3"),
    ("box_max", "max", "max"),
)


def _is_box_plot(result: Any) -> bool:
    """Boxes `{day, label, min, p25, median, p75, max, mean, series_index, series_label}`, not series: the
    payload decides (a series has `data` and never a `median`)."""
    if not isinstance(result, list) or not result:
        return False
    first = result[0]
    return _is_object(first) and "median" in first and "data" not in first


def _box_plot(result: list[Any], build: Build) -> str:
    """Display BoxPlot: one row per box, grouped by `series_index` (boxes of one series are contiguous in
    PostHog's answer; they are grouped anyway, in the order the series first appear)."""
    series: dict[int, list[Mapping[str, Any]]] = {}
    series_labels: dict[int, str | None] = {}
    for position, box in enumerate(result):
        if not _is_object(box) or "median" not in box or "data" in box:
            raise Unrecognised(f"trends box plot: item {position} is not a box (an object with a median)")
        raw_index = box.get("series_index")
        index = (
            0 if raw_index is None else _int32(raw_index, f"trends box plot: item {position} series_index")
        )
        boxes = series.get(index)
        if boxes is None:
            boxes = series[index] = []
            series_labels[index] = text(box.get("series_label"))
        boxes.append(box)
    stage = build.stage("trend_points")
    cols = stage.cols
    rows = 0
    for index, boxes in series.items():
        cols["value"].extend([box.get("mean") for box in boxes])
        for column, name, old_name in _BOX_COLUMNS:
            _pad(cols[column], rows)
            cols[column].extend([box[name] if name in box else box.get(old_name) for box in boxes])
        _pad(cols["day"], rows)
        cols["day"].extend([box.get("day") for box in boxes])
        _pad(cols["label"], rows)
        cols["label"].extend([box.get("label") for box in boxes])
        stage.group(
            len(boxes), (index, series_labels[index], None, None, None, None, None, None, None, None, False)
        )
        rows += len(boxes)
    return "trends_box_plot"


def trends(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """Trends, stickiness (integer `days`) and lifecycle (`status` per series) share this shape; a trends
    box plot is a list of boxes, a calendar heatmap query's result the grid object."""
    if _is_object(result) and isinstance(result.get("data"), list):
        return _heatmap_result(result, build)
    if _is_box_plot(result):
        return _box_plot(result, build)
    return _series(result, build, "trends")


# --- funnels ---------------------------------------------------------------------------------------


def _steps(steps: list[Any], breakdown_index: int, stage: Stage) -> None:
    cols = stage.cols
    orders: set[int | None] = set()
    for position, step in enumerate(steps):
        if not _is_object(step):
            raise Unrecognised(f"funnel step {position} is a {type(step).__name__}, not an object")
        if "count" not in step:
            raise Unrecognised(f"funnel step {position} has no count")
        order = step.get("order")
        step_order = position if order is None else opt_int(order)
        if step_order in orders:
            raise Unrecognised(f"funnel step {position}: step order {step_order} repeats in its group")
        orders.add(step_order)
        cols["breakdown_index"].append(breakdown_index)
        cols["step_order"].append(step_order)
        cols["name"].append(text(step.get("name")))
        cols["custom_name"].append(text(step.get("custom_name")))
        cols["action_id"].append(text(step.get("action_id")))
        cols["step_type"].append(text(step.get("type")))
        cols["count"].append(opt_int(step["count"]))
        cols["average_conversion_time"].append(opt_float(step.get("average_conversion_time")))
        cols["median_conversion_time"].append(opt_float(step.get("median_conversion_time")))
        cols["breakdown_value"].append(text(step.get("breakdown_value")))
        cols["breakdown"].append(text(step.get("breakdown")))
        cols["compare_label"].append(text(step.get("compare_label")))


def _compare_groups(steps: list[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """A compared funnel's flat list of steps, cut into its periods (runs of one `compare_label`)."""
    groups: list[list[Mapping[str, Any]]] = []
    label: Any = None
    for step in steps:
        step_label = step.get("compare_label")
        if not groups or step_label != label:
            groups.append([])
            label = step_label
        groups[-1].append(step)
    return groups


def _bins(period: Mapping[str, Any], start: int, cols: dict[str, list[Any]], where: str) -> int:
    """One `{bins: [[seconds, count], ...], average_conversion_time}`, numbered on from `start`."""
    bins = period.get("bins")
    if not isinstance(bins, list):
        raise Unrecognised(f"{where}: bins is not a list")
    average = opt_float(period.get("average_conversion_time"))
    label = text(period.get("compare_label"))
    for index, pair in enumerate(bins):
        if not isinstance(pair, list) or len(pair) != 2:
            raise Unrecognised(f"{where}: bin {index} is not a [seconds, count] pair")
        cols["bin_index"].append(start + index)
        cols["bin_seconds"].append(opt_float(pair[0]))
        cols["count"].append(opt_int(pair[1]))
        cols["average_conversion_time"].append(average)
        cols["compare_label"].append(label)
    return len(bins)


def _time_to_convert(result: Mapping[str, Any], build: Build) -> str:
    _bins(result, 0, build.stage("funnel_conversion_bins").cols, "funnel time_to_convert")
    return "funnel_time_to_convert"


def _time_to_convert_compare(result: list[Mapping[str, Any]], build: Build) -> str:
    """A compared time-to-convert funnel: one `{compare_label, bins, average_conversion_time}` per period;
    `bin_index` runs on across the periods (it is the table's key)."""
    cols = build.stage("funnel_conversion_bins").cols
    start = 0
    for period, item in enumerate(result):
        start += _bins(item, start, cols, f"funnel time_to_convert period {period}")
    return "funnel_time_to_convert_compare"


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
    if "bins" in keys and not trend_like and not step_like:
        return _time_to_convert_compare(result, build)
    if trend_like and (not step_like or funnel_viz_type(insight) == "trends"):
        return _series(result, build, "funnel_trends")
    if not step_like and "count" not in keys:
        raise Unrecognised("funnels: objects are neither steps nor trend series")
    stage = build.stage("funnel_steps")
    if "compare_label" not in keys:
        _steps(result, 0, stage)
        return "funnel_steps"
    # compared with the previous period: the steps of both periods in one list
    for index, steps in enumerate(_compare_groups(result)):
        _steps(steps, index, stage)
    return "funnel_steps_compare"


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
        exact: list[float | None] = []
        period_labels: list[str | None] = []
        for period_index, cell in enumerate(values):
            if _is_object(cell):
                if "count" not in cell:
                    raise Unrecognised(f"retention: cohort {cohort_index} value {period_index} has no count")
                count, value = count_and_value(cell["count"])
                period_labels.append(text(cell.get("label")))
            else:
                count, value = count_and_value(cell)
                period_labels.append(None)
            counts.append(count)
            exact.append(value)
        cols["cohort_index"].extend([cohort_index] * n)
        cols["period_index"].extend(range(n))
        cols["cohort_date"].extend([iso_micros(cohort.get("date"))] * n)
        cols["cohort_label"].extend([text(cohort.get("label"))] * n)
        cols["period_label"].extend(period_labels)
        cols["count"].extend(counts)
        cols["value"].extend(exact)
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


def _rows(result: Any, build: Build, response: Mapping[str, Any], shape: str) -> str:
    """Each row as a compact JSON object keyed by column name; values keep their JSON types. A row that is
    already an object (web overview items, persons) stays as it is."""
    if not isinstance(result, list):
        raise Unrecognised(f"{shape}: result is a {type(result).__name__}, not a list of rows")
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
            raise Unrecognised(f"{shape}: row {index} is a {type(row).__name__}, not an array")
        try:
            out.append(orjson.dumps(obj).decode())
        except TypeError:  # what orjson refuses (an int beyond 64 bits), the stdlib writes
            out.append(dumps(obj))
    cols["row_index"].extend(range(len(result)))
    return shape


def sql(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """A HogQL query's rows."""
    return _rows(result, build, response, "sql")


def table(result: Any, build: Build, insight: Mapping[str, Any], response: Mapping[str, Any]) -> str:
    """A saved data table over another source (EventsQuery, ActorsQuery, WebOverviewQuery, HogQuery...):
    its rows exactly as SQL rows."""
    return _rows(result, build, response, "table")


PARSERS: Final[dict[str, Parser]] = {
    "trends": trends,
    "stickiness": trends,
    "lifecycle": trends,
    "funnels": funnels,
    "retention": retention,
    "paths": paths,
    "sql": sql,
    "table": table,
}
