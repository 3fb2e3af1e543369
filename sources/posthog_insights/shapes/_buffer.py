"""Column-wise buffers: one insight's rows while it is parsed (`Stage`), and all insights' rows until
`take()` (`TableBuffer`).

Three storage classes of column keep the per-point Python work down to a few `list.extend` calls:
- common columns (the snapshot key, `last_refresh`, `kind`) are stored once per insight,
- group columns (a trend series' label, action, breakdown...) once per group,
  and both are expanded by Arrow's run-end decoding at `take()`;
- row columns are Python lists while an insight is parsed. When the insight is finished every value is
  checked (this is where a wrong type in a payload raises, before anything of the insight is kept): a large
  insight's columns are converted to Arrow right away (the check is pyarrow's own, at C speed), a small
  insight's are checked in Python and converted at `take()` together with the other small ones.
Nothing can fail in `append()` or `take()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from ._schemas import COMMON_COLUMNS, TIDY_SCHEMAS
from ._values import converter, parse_dates, plain_column, to_array


@dataclass(frozen=True)
class TableSpec:
    name: str
    group_columns: tuple[str, ...]
    row_columns: tuple[str, ...]
    # Row columns a builder may leave short (or untouched): padded with nulls when the insight is finished.
    sparse: frozenset[str] = frozenset()
    # (column, source row column): ISO strings parsed to timestamps, vectorised, at take().
    derived_dates: tuple[tuple[str, str], ...] = ()
    # A column holding each row's position inside its group (a point's index in its series), computed at
    # take() from the group lengths rather than stored per row.
    position_column: str | None = None
    schema: pa.Schema = field(init=False)
    types: dict[str, pa.DataType] = field(init=False)
    converters: dict[str, Callable[[Any], Any]] = field(init=False)
    dense: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        schema = TIDY_SCHEMAS[self.name]
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "types", {f.name: f.type for f in schema})
        object.__setattr__(
            self, "converters", {name: converter(self.types[name]) for name in self.row_columns}
        )
        object.__setattr__(self, "dense", tuple(c for c in self.row_columns if c not in self.sparse))
        named = [*COMMON_COLUMNS, *self.group_columns, *self.row_columns, *(d for d, _ in self.derived_dates)]
        if self.position_column is not None:
            named.append(self.position_column)
        if sorted(named) != sorted(schema.names):  # pragma: no cover - a programming error, caught on import
            raise AssertionError(f"{self.name}: spec columns {named} do not match schema {schema.names}")


SPECS: Final[dict[str, TableSpec]] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "trend_points",
            group_columns=(
                "series_index",
                "series_label",
                "action_id",
                "action_name",
                "math",
                "breakdown_value",
                "compare_label",
                "status",
                "series_count",
                "aggregated_value",
                "is_aggregate",
            ),
            row_columns=(
                "value",
                "day",
                "interval",
                "label",
                "weekday",
                "hour",
                "box_min",
                "box_p25",
                "box_median",
                "box_p75",
                "box_max",
            ),
            # only some series have days, labels, intervals; only heatmaps and box plots have the rest
            sparse=frozenset(
                {
                    "day",
                    "interval",
                    "label",
                    "weekday",
                    "hour",
                    "box_min",
                    "box_p25",
                    "box_median",
                    "box_p75",
                    "box_max",
                }
            ),
            derived_dates=(("date", "day"),),
            position_column="point_index",
        ),
        TableSpec(
            "funnel_steps",
            group_columns=(),
            row_columns=(
                "breakdown_index",
                "step_order",
                "name",
                "custom_name",
                "action_id",
                "step_type",
                "count",
                "average_conversion_time",
                "median_conversion_time",
                "breakdown_value",
                "breakdown",
                "compare_label",
            ),
        ),
        TableSpec(
            "funnel_conversion_bins",
            group_columns=(),
            row_columns=("bin_index", "bin_seconds", "count", "average_conversion_time", "compare_label"),
        ),
        TableSpec(
            "retention_cells",
            group_columns=(),
            row_columns=(
                "cohort_index",
                "period_index",
                "cohort_date",
                "cohort_label",
                "period_label",
                "count",
                "breakdown_value",
                "value",
            ),
        ),
        TableSpec(
            "path_edges",
            group_columns=(),
            row_columns=(
                "source",
                "target",
                "source_step",
                "target_step",
                "source_name",
                "target_name",
                "value",
                "average_conversion_time",
                "edge_index",
            ),
        ),
        TableSpec("sql_rows", group_columns=(), row_columns=("row_index", "row")),
    )
}


# Below this many rows an insight's row columns are checked in Python and converted to Arrow at take(),
# together with the other small insights': pa.array costs a few microseconds per call, which would dominate
# for the many small insights (a number, a 3-step funnel, a week of one series) a project has.
SMALL_INSIGHT_ROWS: Final = 128


@dataclass(frozen=True)
class Chunk:
    """One insight's finished rows for one table: row columns as Arrow arrays (a large insight) or as
    checked Python lists (a small one), or as a number of nulls (a sparse column the insight left untouched:
    most series have no heatmap cells and no boxes); group values as Python lists."""

    rows: int
    columns: dict[str, pa.Array | list[Any] | int]
    groups: dict[str, list[Any]]
    group_lengths: list[int]


class Stage:
    """One insight's rows for one table while its payload is parsed. Builders append to `cols[name]`
    (one value per row) and call `group()` once per run of rows sharing the group columns."""

    __slots__ = ("cols", "group_lengths", "groups", "spec")

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self.cols: dict[str, list[Any]] = {name: [] for name in spec.row_columns}
        self.groups: dict[str, list[Any]] = {name: [] for name in spec.group_columns}
        self.group_lengths: list[int] = []

    def group(self, length: int, values: tuple[Any, ...]) -> None:
        """The next `length` rows share `values` (in `spec.group_columns` order)."""
        if length <= 0:
            return
        for column, value in zip(self.groups.values(), values, strict=True):
            column.append(value)
        self.group_lengths.append(length)

    def finish(self) -> Chunk | None:
        """Check lengths, pad sparse columns, check or convert every value; raises on a wrong type, so that
        nothing can fail later, at take()."""
        spec = self.spec
        rows = len(self.cols[spec.dense[0]])
        for name, values in self.cols.items():
            if len(values) != rows and not (name in spec.sparse and len(values) < rows):
                raise AssertionError(f"{spec.name}.{name}: {len(values)} values for {rows} rows")
        if spec.group_columns and sum(self.group_lengths) != rows:
            raise AssertionError(f"{spec.name}: groups cover {sum(self.group_lengths)} of {rows} rows")
        if rows == 0:
            return None
        small = rows <= SMALL_INSIGHT_ROWS
        columns: dict[str, pa.Array | list[Any] | int] = {}
        for name, values in self.cols.items():
            if len(values) < rows:  # a sparse column
                if not values:  # untouched: `rows` nulls, nothing to check
                    columns[name] = rows
                    continue
                values.extend([None] * (rows - len(values)))
            convert = spec.converters[name]
            if small:
                columns[name] = plain_column(values, convert)
            else:
                columns[name] = to_array(values, spec.types[name], convert)
        return Chunk(rows, columns, self.groups, self.group_lengths)


def _expand(values: list[Any], type_: pa.DataType, rows: int, run_ends: pa.Array | None) -> pa.Array:
    """One value per run -> one value per row."""
    if values.count(None) == len(values):
        return pa.nulls(rows, type_)
    array = pa.array(values, type_)
    if run_ends is None:  # every run has length 1
        return array
    return pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(run_ends, array))


def _run_ends(lengths: list[int]) -> pa.Array | None:
    if all(length == 1 for length in lengths):
        return None
    return pa.array(list(accumulate(lengths)), pa.int64())


def _positions(lengths: list[int], rows: int, run_ends: pa.Array | None) -> pa.Array:
    """Each row's position inside its run: row number minus the run's first row number."""
    if run_ends is None:
        return pa.repeat(pa.scalar(0, pa.int32()), rows)
    row_numbers = pc.cumulative_sum(pa.repeat(pa.scalar(1, pa.int64()), rows))  # 1-based
    firsts = pa.array(list(accumulate(lengths, initial=1))[:-1], pa.int64())  # each run's first row, 1-based
    run_firsts = pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(run_ends, firsts))
    return pc.subtract(row_numbers, run_firsts).cast(pa.int32())


class TableBuffer:
    """All insights' rows for one table since the last `take()`."""

    __slots__ = ("chunks", "common", "group_lengths", "groups", "insight_lengths", "rows", "spec")

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec
        self._reset()

    def _reset(self) -> None:
        self.common: dict[str, list[Any]] = {name: [] for name in COMMON_COLUMNS}
        self.insight_lengths: list[int] = []
        self.groups: dict[str, list[Any]] = {name: [] for name in self.spec.group_columns}
        self.group_lengths: list[int] = []
        # per row column: Arrow arrays of large insights between Python lists gathering small ones, and
        # counts of nulls (runs of insights that left a sparse column untouched)
        self.chunks: dict[str, list[pa.Array | list[Any] | int]] = {
            name: [] for name in self.spec.row_columns
        }
        self.rows = 0

    def append(self, common: tuple[Any, ...], chunk: Chunk) -> None:
        """Keep a finished chunk. Only list operations: it cannot fail halfway."""
        for column, value in zip(self.common.values(), common, strict=True):
            column.append(value)
        self.insight_lengths.append(chunk.rows)
        for name, values in chunk.groups.items():
            self.groups[name].extend(values)
        self.group_lengths.extend(chunk.group_lengths)
        for name, part in chunk.columns.items():
            parts = self.chunks[name]
            if not parts:
                parts.append(part)
            elif type(part) is int:
                if type(parts[-1]) is int:
                    parts[-1] += part
                else:
                    parts.append(part)
            elif isinstance(part, list) and isinstance(parts[-1], list):
                parts[-1].extend(part)
            else:
                parts.append(part)
        self.rows += chunk.rows

    def take(self) -> pa.Table | None:
        """The rows as one Arrow table (single chunk per column), or None when empty; then empties."""
        if self.rows == 0:
            return None
        schema = self.spec.schema
        types = self.spec.types
        columns: dict[str, pa.Array] = {}
        rows = self.rows
        insight_ends = _run_ends(self.insight_lengths)
        for name, values in self.common.items():
            columns[name] = _expand(values, types[name], rows, insight_ends)
        if self.spec.group_columns:
            group_ends = _run_ends(self.group_lengths)
            for name, values in self.groups.items():
                columns[name] = _expand(values, types[name], rows, group_ends)
            if self.spec.position_column is not None:
                columns[self.spec.position_column] = _positions(self.group_lengths, rows, group_ends)
        for name, parts in self.chunks.items():
            type_ = types[name]
            arrays = [
                pa.nulls(part, type_)
                if type(part) is int
                else pa.array(part, type_)
                if isinstance(part, list)
                else part
                for part in parts
            ]
            columns[name] = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
        for name, source in self.spec.derived_dates:
            columns[name] = parse_dates(columns[source])
        table = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
        self._reset()
        return table
