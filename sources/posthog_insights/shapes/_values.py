"""Scalar normalisers and date parsing shared by the builders.

The normalisers are strict on purpose: a value of the wrong type raises, and the caller turns that into
"shape not recognised" for the whole insight instead of loading a half-understood row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ._schemas import TS

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class Unrecognised(Exception):
    """The payload matches no known shape; the message says why."""


def dumps(value: Any) -> str:
    """Compact JSON, key order kept. orjson first; the stdlib for what orjson refuses (ints > 64 bit)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def text(value: Any) -> str | None:
    """A label-like value as text: strings as they are, numbers as `str`, anything else as compact JSON."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return dumps(value)


def opt_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def opt_int(value: Any) -> int | None:
    """An integer count: an integral float (3.0) is accepted; a fractional one is refused, not truncated."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("expected an integer, got bool")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    raise TypeError(f"expected an int64, got {value!r}")


def count_and_value(value: Any) -> tuple[int | None, float | None]:
    """A count that may be fractional (retention corrected for sampling): (rounded half up, exact).

    An integer is exact in both; a float is kept as it is and rounded for the integer column (a NaN or an
    infinity has no integer and raises, as does a bool or a string)."""
    if value is None:
        return None, None
    if isinstance(value, int) and not isinstance(value, bool):
        return opt_int(value), float(value)
    if isinstance(value, float):
        return opt_int(math.floor(value + 0.5)), value
    raise TypeError(f"expected a count, got {type(value).__name__}")


def _as_str(value: Any) -> str | None:
    return value if value is None or type(value) is str else text(value)


def _as_float(value: Any) -> float | None:
    # bool is taken as 0/1, as pyarrow takes it; a big int becomes the nearest double (pyarrow refuses it)
    if value is None or type(value) is float:
        return value
    if isinstance(value, int):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _int_checker(low: int, high: int) -> Callable[[Any], int | None]:
    def check(value: Any) -> int | None:
        if value is None or (type(value) is int and low <= value <= high):
            return value
        raise TypeError(f"expected an integer in [{low}, {high}], got {value!r}")

    return check


_INT32: Final = _int_checker(-(2**31), 2**31 - 1)
_INT64: Final = _int_checker(_INT64_MIN, _INT64_MAX)


def converter(type_: pa.DataType) -> Callable[[Any], Any]:
    """The per-value check behind `plain_column`, by Arrow type."""
    if pa.types.is_string(type_):
        return _as_str
    if pa.types.is_floating(type_):
        return _as_float
    if pa.types.is_int32(type_):
        return _INT32
    if pa.types.is_int64(type_) or pa.types.is_timestamp(type_):
        return _INT64
    raise NotImplementedError(f"no converter for {type_}")  # pragma: no cover - schemas use only these


def plain_column(values: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """Values that `pa.array(values, type)` is sure to accept, checked one by one in Python: strings for a
    string column (anything else as `text`), floats for a float column, in-range ints for an int column.
    Raises on a value that has no such form (a string among numbers)."""
    return [convert(value) for value in values]


def to_array(values: list[Any], type_: pa.DataType, convert: Callable[[Any], Any]) -> pa.Array:
    """`pa.array` at C speed; when pyarrow refuses a value, the one-by-one check decides (and may raise)."""
    try:
        return pa.array(values, type_)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(plain_column(values, convert), type_)


def micros(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def iso_micros(value: Any) -> int | None:
    """One ISO date or datetime as epoch microseconds (no offset means UTC); None when it is not one."""
    if type(value) is not str:
        return None
    candidate = value.strip()
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        return micros(datetime.fromisoformat(candidate))
    except ValueError:
        return None


def parse_dates(strings: pa.Array) -> pa.Array:
    """Parse a string column of ISO dates / datetimes into timestamp[us, UTC]; what does not parse is null.

    Vectorised: the column is dictionary-encoded (PostHog repeats the same days across series and insights),
    the distinct values are cast by Arrow in one go, and only when Arrow refuses some of them (mixed offsets,
    non-dates such as stickiness intervals) are the distinct values parsed one by one.
    """
    if strings.null_count == len(strings):
        return pa.nulls(len(strings), TS)
    encoded = pc.dictionary_encode(strings)
    distinct = encoded.dictionary
    parsed: pa.Array
    try:  # dates and datetimes without an offset, read as UTC
        parsed = pc.cast(pc.cast(distinct, pa.timestamp("us")), TS)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:  # all carry an offset (Z, +02:00)
            parsed = pc.cast(distinct, TS)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            parsed = pa.array([iso_micros(s) for s in distinct.to_pylist()], TS)
    return parsed.take(encoded.indices)
