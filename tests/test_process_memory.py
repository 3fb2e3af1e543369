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
