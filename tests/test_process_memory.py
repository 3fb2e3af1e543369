"""The loading command's process: DuckDB's allocator told to return freed pages, pandas kept out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from posthog_insights_cli.process_memory import DUCKDB_ALLOCATOR_ENV, DUCKDB_ALLOCATOR_PROMPT_PURGE

# Process-wide settings: checked in a fresh interpreter, never in the test process.
_PROBE = textwrap.dedent(
    """
    import json, os, sys
    from posthog_insights_cli.process_memory import lean_loading_process
    with lean_loading_process():
        import duckdb
        duckdb.connect().execute("SELECT ?", (1,)).fetchall()  # the statement that imports pandas
        inside = {"pandas": sys.modules.get("pandas") is not None, "env": os.environ.get(%r)}
    import pandas  # usable again afterwards
    print(json.dumps({**inside, "after": pandas.__name__}))
    """
)


def _probe(env_value: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != DUCKDB_ALLOCATOR_ENV}
    if env_value is not None:
        env[DUCKDB_ALLOCATOR_ENV] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _PROBE % DUCKDB_ALLOCATOR_ENV],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_a_loading_process_keeps_pandas_out_and_duckdb_returns_freed_pages() -> None:
    assert _probe(None) == {"pandas": False, "env": DUCKDB_ALLOCATOR_PROMPT_PURGE, "after": "pandas"}


def test_an_allocator_setting_the_user_chose_wins() -> None:
    assert _probe("dirty_decay_ms:5000")["env"] == "dirty_decay_ms:5000"


_PAGE_OUT_PROBE = textwrap.dedent(
    """
    import json, mmap, os, re, sys, tempfile
    import duckdb
    from posthog_insights_cli import process_memory

    # A read-only file mapping, like a library's code
    data = tempfile.NamedTemporaryFile()  # unlinked files are not libraries: left alone
    data.write(b"x" * (32 << 20)); data.flush(); os.fsync(data.fileno())
    mapped = mmap.mmap(data.fileno(), 32 << 20, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)

    def file_kib():
        return int(re.search(r"RssFile:\\s+(\\d+)", open("/proc/self/status").read()).group(1))

    def release(lean):
        assert sum(mapped[i] for i in range(0, 32 << 20, 4096)) == 120 * 8192  # every page resident
        before = file_kib()
        if lean:
            with process_memory.lean_loading_process():
                process_memory.return_freed_memory()
        else:
            process_memory.return_freed_memory()
        return before - file_kib()

    connection = duckdb.connect()
    plain, lean = release(False), release(True)
    still = connection.execute("SELECT sum(range) FROM range(1000)").fetchall()[0][0]  # code faults back
    print(json.dumps({"plain": plain, "lean": lean, "still": still, "bytes": mapped[:1].decode()}))
    """
)


def test_a_loading_process_hands_back_its_library_pages_and_keeps_working() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PAGE_OUT_PROBE], capture_output=True, text=True, timeout=120, check=True
    )
    figures = json.loads(out.stdout)
    assert figures["plain"] < 4096, figures  # outside a loading process the pages stay
    assert figures["lean"] > 30_000, figures  # the 32 MiB mapping was handed back
    assert figures["still"] == 499500 and figures["bytes"] == "x", figures  # and nothing was lost
