"""The personal API key goes only in the Authorization header, only to the configured origin, and is
written nowhere: not in logs (--debug included), stdout, stderr, tracebacks, dlt's state, traces,
schemas and load packages, nor in the warehouse. A recognisable canary key is searched for in every
byte the runs leave behind, decompressed where it is compressed (gzip, parquet, DuckDB, dlt's state).
"""

from __future__ import annotations

import base64
import gzip
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from posthog_emulator import Emulator, FaultConfig
from tests.reliability.support import (
    CLI,
    Answer,
    CountingServer,
    Seen,
    cli_env,
    closed_port,
    frozen_clock,
    insight_page,
    json_answer,
    run_args,
)

CANARY_TAIL = uuid.uuid4().hex
CANARY = f"phx_CANARY_{CANARY_TAIL}"


def _needles(secret: str) -> list[bytes]:
    """The key as text, hex and base64 (every alignment), and its random part alone (a cut-off key)."""
    raw = secret.encode()
    found = [raw, raw.hex().encode(), CANARY_TAIL[:12].encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw)
        found.append(encoded[4 if pad else 0 : -4])  # drop the characters the padding bytes affect
    return found


NEEDLES = _needles(CANARY)


def _leaks(blob: bytes) -> list[bytes]:
    return [needle for needle in NEEDLES if needle in blob]


def _all_files(root: Path) -> Iterator[Path]:
    yield from (path for path in sorted(root.rglob("*")) if path.is_file())


def _file_leaks(path: Path) -> list[str]:
    """Raw bytes, plus the decompressed content of gzip and parquet files."""
    data = path.read_bytes()
    found = [f"{path}: {n!r}" for n in _leaks(data)]
    if data[:2] == b"\x1f\x8b":
        found += [f"{path} (gunzipped): {n!r}" for n in _leaks(gzip.decompress(data))]
    if data[:4] == b"PAR1":
        text = str(pq.read_table(path).to_pylist()).encode()
        found += [f"{path} (parquet): {n!r}" for n in _leaks(text)]
    return found


def _duckdb_leaks(path: Path) -> list[str]:
    """Every column of every table, as text (DuckDB compresses strings on disk), and dlt's state."""
    from dlt.common.versioned_state import decompress_state

    found: list[str] = []
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
        assert tables
        for schema, name in tables:
            rows = con.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()
            found += [f"{schema}.{name}: {n!r}" for n in _leaks(repr(rows).encode())]
            if name == "_dlt_pipeline_state":
                for (state,) in con.execute(f'SELECT state FROM "{schema}"."{name}"').fetchall():
                    text = repr(decompress_state(state)).encode()
                    found += [f"{schema}.{name} (decompressed): {n!r}" for n in _leaks(text)]
    return found


def _run(root: Path, *args: str, key_env: str, debug: bool = False, dlt_debug: bool = False) -> str:
    env = cli_env(root, None)
    env[key_env] = CANARY
    if dlt_debug:
        env["RUNTIME__LOG_LEVEL"] = "DEBUG"
    root.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [CLI, *run_args(root, *args, debug=debug)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


@pytest.fixture
def emulator(emulators: Callable[..., Emulator]) -> Emulator:
    return emulators(
        clock=frozen_clock(),
        api_key=CANARY,
        projects=(1, 2),
        insights=60,
        seed=13,
        error_share=0.1,
        forbidden_projects=(7,),
        async_delay_s=3600.0,  # never completes on the frozen clock: pending, then cancelled
        faults=FaultConfig(rate=0.2, kinds=("5xx", "truncate", "drop"), seed=3),
    )


def test_the_key_is_written_nowhere(
    tmp_path: Path, emulator: Emulator, emulators: Callable[..., Emulator]
) -> None:
    host = ["--host", emulator.base_url, "--rate-limit", "off", "--max-retries", "8"]
    outputs = [
        # every path: list, retrieve, faults and retries, debug logs (ours and dlt's), a 403 project
        _run(
            tmp_path / "main",
            *host, "--project-id", "1", "--project-id", "2", "--project-id", "7", "--refresh", "blocking",
            key_env="POSTHOG_PERSONAL_API_KEY", debug=True, dlt_debug=True,
        ),
        # async: polls that never finish, cancellations; the key given through dlt's own config
        _run(
            tmp_path / "main",
            *host, "--project-id", "1", "--refresh", "force_async", "--poll-deadline", "0.5",
            "--refresh-via", "retrieve",  # polls and cancels of single jobs, where the key must not show
            key_env="SOURCES__POSTHOG_INSIGHTS__PERSONAL_API_KEY",
        ),
        # a key the server rejects (401), with the traceback
        _run(
            tmp_path / "rejected",
            "--host", emulators(api_key="phx_another_key").base_url, "--project-id", "1",
            key_env="POSTHOG_PERSONAL_API_KEY", debug=True,
        ),
        # a host that does not answer, with the traceback
        _run(
            tmp_path / "unreachable",
            "--host", f"http://127.0.0.1:{closed_port()}", "--project-id", "1", "--max-retries", "1",
            key_env="POSTHOG_PERSONAL_API_KEY", debug=True,
        ),
    ]  # fmt: skip
    assert "exit 1" in outputs[0] and "HTTP 403" in outputs[0]  # the run itself did the work
    assert "Traceback" in outputs[2] and "HTTP 401" in outputs[2]
    stats = emulator.stats
    assert stats.faults and stats.kind("retrieve") > 0 and stats.kind("poll") > 0 and stats.kind("cancel") > 0
    assert stats.key_in_query == 0

    leaks = [f"output of run {i}: {n!r}" for i, out in enumerate(outputs) for n in _leaks(out.encode())]
    files = list(_all_files(tmp_path))
    assert any(f.name == "state.json" for f in files) and any(f.suffix == ".parquet" for f in files)
    assert any(f.name == "trace.pickle" for f in files)
    for path in files:
        leaks += _file_leaks(path)
    leaks += _duckdb_leaks(tmp_path / "main" / "warehouse.duckdb")
    assert leaks == []


def test_the_key_travels_only_in_the_authorization_header_to_the_configured_origin(tmp_path: Path) -> None:
    with CountingServer(lambda seen: json_answer({"detail": "Not found."}, 404)) as elsewhere:

        def answer(seen: Seen) -> Answer:
            if seen.path.endswith("/insights/") and seen.params.get("offset", "0") == "0":
                following = f"{seen.headers['host']}{seen.path}?limit=2&offset=2&order=id"
                return json_answer(insight_page([1, 2], f"http://{following}", 5))
            if seen.path.endswith("/insights/"):  # page 2 points to another origin: not followed
                return json_answer(insight_page([3, 4], f"{elsewhere.url}{seen.path}?offset=4", 5))
            return json_answer({"id": 1, "result": None, "query_status": None})

        with CountingServer(answer) as server:
            out = _run(
                tmp_path, "--host", server.url, "--project-id", "1", "--rate-limit", "off",
                key_env="POSTHOG_PERSONAL_API_KEY", debug=True,
            )  # fmt: skip
    assert "points to" in out
    assert elsewhere.requests == []
    assert len(server.requests) >= 3
    for seen in server.requests:
        assert seen.headers["authorization"] == f"Bearer {CANARY}"
        others = {k: v for k, v in seen.headers.items() if k != "authorization"}
        assert not _leaks(f"{seen.method} {seen.path}?{seen.query} {others}".encode()), seen
    assert not _leaks(out.encode())
