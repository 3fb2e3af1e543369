"""Keeping the loading process's resident memory down: what it frees goes back to the OS, and what a load
never uses is never loaded.

Measured on the memory benchmark (10,000 insights x 1,000 points, `posthog-insights run`), peak resident
memory: 738 MiB with none of this; 641 with `return_freed_memory`; 599 when DuckDB's allocator also
returns freed pages at once; 557 without pandas; 467 with DuckDB's starting memory limit at 160MB
(duckdb_target) on top, but 513-527 right after `pip install`; 412-451 in either case once the library
pages are handed back before each load (`page_out_library_pages`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib.abc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def _libc_function(name: str) -> Any:
    """A C library function, or None where the C library lacks it (`malloc_trim` on macOS or musl)."""
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    try:
        return getattr(ctypes.CDLL(library, use_errno=True), name, None)
    except OSError:
        return None


_TRIM = _libc_function("malloc_trim")
_MADVISE = _libc_function("madvise")
if _MADVISE is not None:
    _MADVISE.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_MADV_DONTNEED = 4  # Linux; elsewhere the mappings are not found (no /proc/self/smaps)
_PAGE_OUT_LIBRARIES = {"on": False}  # set inside lean_loading_process


def page_out_library_pages() -> int:
    """Unmaps this process's pages of read-only file mappings (shared libraries' code and constants);
    returns how many mappings the kernel took the advice for.

    Right after `pip install`, the kernel maps freshly written libraries in large chunks, so each function
    called maps its neighbours too: at the memory benchmark's peak 140-146 MiB of library pages against 90
    on a machine that had read them back from disk, which took the peak from 470 to 513-527 MiB. Most are
    the extract's (Arrow, parquet, HTTP); the load faults back, from the page cache, the code it runs: 47-69
    MiB at the peak, 412-447 MiB in all. `MADV_DONTNEED` on such a mapping loses nothing: a mapping that
    holds a page of its own (a relocated table) is skipped, and the others hold only the file's own pages.
    (`MADV_PAGEOUT` was tried first: it skips every page another process maps too, such as the benchmark's
    own DuckDB, and changed nothing there.)
    """
    if _MADVISE is None:
        return 0
    try:
        smaps = Path("/proc/self/smaps").read_text()
    except OSError:
        return 0
    advised = 0
    for start, end, anonymous in _read_only_file_mappings(smaps):
        if anonymous == 0 and _MADVISE(start, end - start, _MADV_DONTNEED) == 0:
            advised += 1
    return advised


def _read_only_file_mappings(smaps: str) -> Iterator[tuple[int, int, int]]:
    """(start, end, kB of the mapping's own pages) of each read-only mapping of a regular file."""
    mapping: tuple[int, int] | None = None
    for line in smaps.splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
            readable_only = "w" not in fields[1]
            regular_file = path.startswith("/") and not path.startswith("/dev/") and fields[-1] != "(deleted)"
            start, end = (int(bound, 16) for bound in fields[0].split("-"))
            mapping = (start, end) if readable_only and regular_file else None
        elif mapping is not None and fields and fields[0] == "Anonymous:":
            yield mapping[0], mapping[1], int(fields[1])
            mapping = None


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
    if _PAGE_OUT_LIBRARIES["on"]:
        page_out_library_pages()


@contextmanager
def lean_loading_process() -> Iterator[None]:
    """Within: a process that loads, set up to stay small. Only for a process that is the command's own
    (`posthog-insights`), never for one that imports the package: both settings are process-wide.

    - DuckDB's allocator returns freed pages at once (`DUCKDB_ALLOCATOR_ENV`), unless the user set it.
    - Before each load, the process hands back its library pages (`page_out_library_pages`), which acts on
      every library the process maps.
    - pandas stays out. DuckDB's Python binding imports it (and numpy) on the first statement with a
      parameter, which dlt's state queries all are, only to check the parameters' types: 34-43 MiB
      resident and 0.2 s, and nothing in a load uses it. A library that imports pandas optionally sees
      it as absent meanwhile. If pandas is already imported, nothing changes.
    """
    os.environ.setdefault(DUCKDB_ALLOCATOR_ENV, DUCKDB_ALLOCATOR_PROMPT_PURGE)
    refusal = _NoPandas()
    sys.meta_path.insert(0, refusal)
    _PAGE_OUT_LIBRARIES["on"] = True
    try:
        yield
    finally:
        _PAGE_OUT_LIBRARIES["on"] = False
        sys.meta_path.remove(refusal)


class _NoPandas(importlib.abc.MetaPathFinder):
    """`import pandas` fails as if pandas were not installed, which every optional importer handles. (A
    None in sys.modules would not do: pyarrow reads sys.modules["pandas"] directly.)"""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname.partition(".")[0] == "pandas" and "pandas" not in sys.modules:
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (kept out of this process)", name=fullname
            )
