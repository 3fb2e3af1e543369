"""Keeping the loading process's resident memory down: what it frees goes back to the OS, and what a load
never uses is never loaded.

Measured on the memory benchmark (10,000 insights x 1,000 points, `posthog-insights run`), peak resident
memory: 738 MiB with none of this; 641 with `return_freed_memory`; 599 when DuckDB's allocator also
returns freed pages at once; 557 without pandas; 467 with DuckDB's starting memory limit at 160MB
(duckdb_target) on top.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib.abc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

# DuckDB allocates with its own, statically linked jemalloc, which keeps freed pages for 10 s before it
# returns them to the OS. A load frees and allocates hundreds of MB a second (each 2,048-row vector of raw
# result JSON is tens of MB outside DuckDB's memory limit), so the kept pages stacked up: a load's peak
# was its memory limit plus 150-250 MiB, different on every run. Returned at once: the limit plus ~50,
# the same every run, for ~20% more load time. Read when DuckDB is first imported; a value the user set
# wins.
DUCKDB_ALLOCATOR_ENV = "DUCKDB_JE_MALLOC_CONF"
DUCKDB_ALLOCATOR_PROMPT_PURGE = "dirty_decay_ms:0,muzzy_decay_ms:0"


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the C library has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def return_freed_memory() -> None:
    """Before a package's load: what its extract freed goes back to the OS.

    Arrow's memory pool (mimalloc) and glibc's malloc keep freed pages for reuse, but the load's big
    allocations are DuckDB's, which draws on neither: whatever the extract freed would only add to the
    run's peak (641 against 738 MiB; 684 with Arrow's pool alone), for ~30 ms per package.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)


@contextmanager
def lean_loading_process() -> Iterator[None]:
    """Within: a process that loads, set up to stay small. Only for a process that is the command's own
    (`posthog-insights`), never for one that imports the package: both settings are process-wide.

    - DuckDB's allocator returns freed pages at once (`DUCKDB_ALLOCATOR_ENV`), unless the user set it.
    - pandas stays out. DuckDB's Python binding imports it (and numpy) on the first statement with a
      parameter, which dlt's state queries all are, only to check the parameters' types: 34-43 MiB
      resident and 0.2 s, and nothing in a load uses it. A library that imports pandas optionally sees
      it as absent meanwhile. If pandas is already imported, nothing changes.
    """
    os.environ.setdefault(DUCKDB_ALLOCATOR_ENV, DUCKDB_ALLOCATOR_PROMPT_PURGE)
    refusal = _NoPandas()
    sys.meta_path.insert(0, refusal)
    try:
        yield
    finally:
        sys.meta_path.remove(refusal)


class _NoPandas(importlib.abc.MetaPathFinder):
    """`import pandas` fails as if pandas were not installed, which every optional importer handles. (A
    None in sys.modules would not do: pyarrow reads sys.modules["pandas"] directly.)"""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.partition(".")[0] == "pandas" and "pandas" not in sys.modules:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (kept out of this process)", name=fullname
            )
