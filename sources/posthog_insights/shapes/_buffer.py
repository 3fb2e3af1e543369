"""Column-wise buffers: one insight's rows while it is parsed (`Stage`), and all insights' rows until
`take()` (`TableBuffer`).

Three storage classes of column keep the per-point Python work down to a few `list.extend` calls:
- common columns (the snapshot key, `last_refresh`, `kind`) are stored once per insight,
- group columns (a trend series' label, action, breakdown...) once per group,
and both are expanded by Arrow's run-end decoding at `take()`;
- row columns are Python lists while an insight is parsed, converted to Arrow once per insight (this is
  where a wrong type in a payload raises, before anything of the insight is kept), concatenated at `take()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from ._schemas import COMMON_COLUMNS, TIDY_SCHEMAS
from ._values import parse_dates


@dataclass(frozen=True)
class TableSpec:
    name: str
    group_columns: tuple[str, ...]
    row_columns: tuple[str, ...]
    # Row columns a builder may leave short (or untouched): padded with nulls when the insight is finished.
    sparse: frozenset[str] = frozenset()
    # (column, source row column): ISO strings parsed to timestamps, vectorised, at take().
    derived_dates: tuple[tuple[str, str], ...] = ()
    schema: pa.Schema = field(init=False)

    def __post_init__(self) -> None:
        schema = TIDY_SCHEMAS[self.name]
        object.__setattr__(self, "schema", schema)
        named = [*COMMON_COLUMNS, *self.group_columns, *self.row_columns, *(d for d, _ in self.derived_dates)]
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
            row_columns=("point_index", "day", "interval", "label", "value"),
            sparse=frozenset({"day", "interval", "label"}),
            derived_dates=(("date", "day"),),
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
            ),
        ),
        TableSpec(
            "funnel_conversion_bins",
            group_columns=(),
            row_columns=("bin_index", "bin_seconds", "count", "average_conversion_time"),
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


@dataclass(frozen=True)
class Chunk:
    """One insight's finished rows for one table: row columns already Arrow, group values still Python."""

    rows: int
    arrays: dict[str, pa.Array]
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
        """Check lengths, pad sparse columns, convert row columns to Arrow; raises on a wrong type."""
        spec = self.spec
        dense = [name for name in spec.row_columns if name not in spec.sparse]
        rows = len(self.cols[dense[0]])
        for name, values in self.cols.items():
            if len(values) == rows:
                continue
            if name in spec.sparse and len(values) < rows:
                values.extend([None] * (rows - len(values)))
            else:
                raise AssertionError(f"{spec.name}.{name}: {len(values)} values for {rows} rows")
        if spec.group_columns and sum(self.group_lengths) != rows:
            raise AssertionError(f"{spec.name}: groups cover {sum(self.group_lengths)} of {rows} rows")
        if rows == 0:
            return None
        schema = spec.schema
        arrays = {name: pa.array(values, schema.field(name).type) for name, values in self.cols.items()}
        return Chunk(rows, arrays, self.groups, self.group_lengths)


def _expand(values: list[Any], type_: pa.DataType, run_ends: pa.Array | None) -> pa.Array:
    array = pa.array(values, type_)
    if run_ends is None:  # every run has length 1
        return array
    return pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(run_ends, array))


def _run_ends(lengths: list[int]) -> pa.Array | None:
    if all(length == 1 for length in lengths):
        return None
    return pa.array(list(accumulate(lengths)), pa.int64())


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
        self.chunks: dict[str, list[pa.Array]] = {name: [] for name in self.spec.row_columns}
        self.rows = 0

    def append(self, common: tuple[Any, ...], chunk: Chunk) -> None:
        """Keep a finished chunk. Only list operations: it cannot fail halfway."""
        for column, value in zip(self.common.values(), common, strict=True):
            column.append(value)
        self.insight_lengths.append(chunk.rows)
        for name, values in chunk.groups.items():
            self.groups[name].extend(values)
        self.group_lengths.extend(chunk.group_lengths)
        for name, array in chunk.arrays.items():
            self.chunks[name].append(array)
        self.rows += chunk.rows

    def take(self) -> pa.Table | None:
        """The rows as one Arrow table (single chunk per column), or None when empty; then empties."""
        if self.rows == 0:
            return None
        schema = self.spec.schema
        columns: dict[str, pa.Array] = {}
        insight_ends = _run_ends(self.insight_lengths)
        for name, values in self.common.items():
            columns[name] = _expand(values, schema.field(name).type, insight_ends)
        if self.spec.group_columns:
            group_ends = _run_ends(self.group_lengths)
            for name, values in self.groups.items():
                columns[name] = _expand(values, schema.field(name).type, group_ends)
        for name, arrays in self.chunks.items():
            columns[name] = arrays[0] if len(arrays) == 1 else pa.concat_arrays(arrays)
        for name, source in self.spec.derived_dates:
            columns[name] = parse_dates(columns[source])
        table = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
        self._reset()
        return table
