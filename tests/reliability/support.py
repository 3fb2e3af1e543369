"""Shared tools of the reliability suite: deterministic emulators, the real CLI in a subprocess, a
request-counting HTTP server, and a table-by-table comparison of two warehouses.

Determinism: an emulator computes `last_refresh` from its clock, so two emulators on a frozen clock
(the same instant) with the same seed serve byte-identical data, and a blocking compute gives the same
result and `last_refresh` whenever it happens. Comparing a faulted run with a clean run is then exact,
not "modulo timestamps": only the columns that record *when this client looked* (`seen_at`, dlt's load
ids) are left out, and the snapshot of an outcome that has no result (its snapshot is the time it was
seen, by design).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import orjson

from posthog_emulator import Emulator, EmulatorConfig

DATASET = "posthog_insights"
BIN = Path(sys.executable).parent
CLI = str(BIN / "posthog-insights")
PYTHON = sys.executable
DRIVER = str(Path(__file__).with_name("crash_driver.py"))

# Columns that say when this client looked, not what PostHog holds: they differ between any two runs.
TIMING_COLUMNS = frozenset({"seen_at", "_dlt_load_id", "_dlt_id"})
# How a row was obtained (from the list, a retrieve or a poll; served from cache or computed now). When a
# response is lost after the server computed it (truncated, dropped, timed out), the retry reads the
# result the lost response put in the cache: same numbers, same last_refresh, but `is_cached` is true.
PROVENANCE_COLUMNS = frozenset({"is_cached", "fetched_via", "query_id"})


def frozen_clock(at: float | None = None) -> Callable[[], float]:
    """A clock stopped at `at` (default: now, to the second) for `Emulator(config, clock=...)`."""
    instant = float(int(time.time())) if at is None else at
    return lambda: instant


def start_emulator(clock: Callable[[], float] | None = None, **config: Any) -> Emulator:
    emulator = Emulator(EmulatorConfig(**config), clock=clock)
    emulator.start()
    return emulator


# -- the real CLI in a subprocess --------------------------------------------------------------------


def cli_env(root: Path, key: str | None, *, db_name: str = "warehouse.duckdb") -> dict[str, str]:
    """A clean environment: nothing inherited that configures dlt or the source; no telemetry."""
    prefixes = ("POSTHOG_", "SOURCES__", "DESTINATION__", "RUNTIME__", "NORMALIZE__", "LOAD__", "EXTRACT__")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    env["DESTINATION__DUCKDB__CREDENTIALS"] = str(root / db_name)
    env["PYTHONUNBUFFERED"] = "1"
    if key is not None:
        env["POSTHOG_PERSONAL_API_KEY"] = key
    return env


def run_args(root: Path, *args: str, debug: bool = False) -> list[str]:
    """`posthog-insights [--debug] run ARGS --pipelines-dir ROOT/pipelines`."""
    return [*(["--debug"] if debug else []), "run", *args, "--pipelines-dir", str(root / "pipelines")]


def run_cli(
    root: Path,
    *args: str,
    key: str | None,
    debug: bool = False,
    timeout: float = 180.0,
    db_name: str = "warehouse.duckdb",
) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [CLI, *run_args(root, *args, debug=debug)],
        cwd=root,
        env=cli_env(root, key, db_name=db_name),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("posthog-insights: error:")]


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO) ")


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """A non-zero exit, exactly one `posthog-insights: error:` line containing every needle, no traceback,
    and nothing else on stderr but the run's own progress log lines (no warnings, no stray output)."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "Traceback" not in output, output
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    noise = [
        line for line in proc.stderr.splitlines() if line and line != lines[0] and not _LOG_LINE.match(line)
    ]
    assert noise == [], noise
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- a server that counts (and records) every request ------------------------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]

    @property
    def params(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.query, keep_blank_values=True).items()}


Answer = tuple[int, Mapping[str, str], bytes]


def json_answer(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, orjson.dumps(body)


def insight_page(ids: Iterable[int], next_url: str | None, count: int | None = None) -> dict[str, Any]:
    """A list page of minimal insights without a cached result (the source records a cache miss)."""
    items = [
        {
            "id": i,
            "short_id": f"s{i:07d}",
            "name": f"insight {i}",
            "query": {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery", "series": []}},
            "result": None,
            "last_refresh": None,
            "last_modified_at": "2024-01-01T00:00:00Z",
        }
        for i in ids
    ]
    return {"count": count or len(items), "next": next_url, "previous": None, "results": items}


class CountingServer:
    """A stdlib HTTP/1.1 server that records every request and answers with `handler(seen)`.

    Bind to 0.0.0.0 and pass `advertise` to reach it through a non-loopback address.
    """

    def __init__(
        self,
        handler: Callable[[Seen], Answer] | None = None,
        *,
        bind: str = "127.0.0.1",
        advertise: str = "127.0.0.1",
    ) -> None:
        self.requests: list[Seen] = []
        self.handler = handler or (lambda seen: json_answer({"detail": "Not found."}, 404))
        self.advertise = advertise
        server = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}
                )
                with lock:
                    server.requests.append(seen)
                status, headers, body = server.handler(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer((bind, 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.advertise}:{self.port}"

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback (the route a packet to a public IP would take)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1; UDP connect sends nothing
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- warehouse comparison ----------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Every table's and view's rows (timing columns left out), as sorted lists, plus key counts."""

    tables: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def row_counts(self) -> dict[str, int]:
        return {name: len(rows) for name, rows in self.tables.items()}


def _sort_key(row: tuple[Any, ...]) -> str:
    return repr(row)


def read_warehouse(path: Path, ignore: Iterable[str] = ()) -> Snapshot:
    """Read every table and view of the dataset except dlt's own, leaving out TIMING_COLUMNS and `ignore`.

    The snapshot of an outcome without a result (cache_miss, pending, error) is the time it was seen:
    it is kept as a flag (present or not), not as a value.
    """
    skipped = TIMING_COLUMNS | set(ignore)
    snapshot = Snapshot()
    with duckdb.connect(str(path), read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1",
                [DATASET],
            ).fetchall()
            if not r[0].startswith("_dlt")
        ]
        for name in names:
            cols = [
                r[0]
                for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND"
                    " table_name = ? ORDER BY ordinal_position",
                    [DATASET, name],
                ).fetchall()
                if r[0] not in skipped
            ]
            select = []
            for col in cols:
                if col == "snapshot" and name.startswith("insight_results"):
                    select.append("CASE WHEN status = 'ok' THEN snapshot END AS snapshot")
                else:
                    select.append(f'"{col}"')
            rows = con.execute(f'SELECT {", ".join(select)} FROM {DATASET}."{name}"').fetchall()
            snapshot.tables[name] = sorted(rows, key=_sort_key)
            snapshot.columns[name] = cols
    return snapshot


def diff_warehouses(got: Snapshot, want: Snapshot, limit: int = 5) -> list[str]:
    """Human-readable differences (empty when equal): missing/extra tables, rows lost, rows extra."""
    problems: list[str] = []
    for name in sorted(set(got.tables) | set(want.tables)):
        if name not in got.tables:
            problems.append(f"{name}: missing ({len(want.tables[name])} rows expected)")
            continue
        if name not in want.tables:
            problems.append(f"{name}: unexpected table ({len(got.tables[name])} rows)")
            continue
        if got.columns[name] != want.columns[name]:
            problems.append(f"{name}: columns {got.columns[name]} != {want.columns[name]}")
            continue
        g, w = Counter(got.tables[name]), Counter(want.tables[name])
        lost, extra = w - g, g - w
        if lost or extra:
            problems.append(
                f"{name}: {sum(lost.values())} rows lost, {sum(extra.values())} extra;"
                f" lost e.g. {list(lost)[:limit]}; extra e.g. {list(extra)[:limit]}"
            )
    return problems


def lost_rows(got: Snapshot, want: Snapshot) -> int:
    """Rows of `want` missing from `got` (base tables only, not the `_latest` views)."""
    total = 0
    for name, rows in want.tables.items():
        if not name.endswith("_latest"):
            total += sum((Counter(rows) - Counter(got.tables.get(name, []))).values())
    return total


def extra_rows(got: Snapshot, want: Snapshot) -> int:
    """Rows of `got` that `want` does not have (duplicates included), base tables only."""
    return lost_rows(want, got)


def duplicate_keys(path: Path) -> dict[str, int]:
    """Per table, how many rows share a primary key with another row (must be 0 everywhere)."""
    from posthog_insights.tables import PRIMARY_KEYS

    dupes: dict[str, int] = {}
    with duckdb.connect(str(path), read_only=True) as con:
        existing = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATASET]
            ).fetchall()
        }
        for table, key in PRIMARY_KEYS.items():
            if table not in existing:
                continue
            cols = ", ".join(f'"{c}"' for c in key)
            (n,) = con.execute(
                f'SELECT COALESCE(SUM(c - 1), 0) FROM (SELECT COUNT(*) c FROM {DATASET}."{table}"'
                f" GROUP BY {cols})"
            ).fetchone() or (0,)
            dupes[table] = int(n)
    return dupes


def destination_state(path: Path) -> dict[str, Any] | None:
    """The pipeline state dlt would restore from the destination (None when there is none).

    Like dlt's own `get_stored_state`: the newest state row whose load package completed (its load id is
    in `_dlt_loads` with status 0). A state row of a package cut short counts for nothing.
    """
    from dlt.common.versioned_state import decompress_state

    if not path.exists():
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        try:
            row = con.execute(
                f"SELECT s.state FROM {DATASET}._dlt_pipeline_state s JOIN {DATASET}._dlt_loads l"
                " ON l.load_id = s._dlt_load_id WHERE l.status = 0 ORDER BY l.load_id DESC LIMIT 1"
            ).fetchone()
        except duckdb.CatalogException:
            return None
    return None if row is None else dict(decompress_state(row[0]))


def source_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """The source's own state inside a pipeline state."""
    return dict(state.get("sources", {}).get("posthog_insights", {}))


# -- in-process loads ------------------------------------------------------------------------------


KEY = "phx_reliability_key_0123456789"


def load_into(root: Path, emulator: Emulator | None, **source_args: Any) -> Any:
    """One in-process run of the source (real HTTP to the emulator, or to `host=`) into
    `root/warehouse.duckdb`."""
    import dlt
    from dlt.common.runtime.collector import LogCollector

    from posthog_insights_cli.loader import load

    root.mkdir(parents=True, exist_ok=True)
    pipeline = dlt.pipeline(
        pipeline_name="reliability",
        destination=dlt.destinations.duckdb(str(root / "warehouse.duckdb")),
        dataset_name=DATASET,
        pipelines_dir=str(root / "pipelines"),
        progress=LogCollector(dump_system_stats=False, log_period=3600),
    )
    args: dict[str, Any] = {"rate_limit": "off", "retry_backoff_s": 0.02, "personal_api_key": KEY}
    if emulator is not None:
        args.update(
            host=emulator.base_url,
            project_ids=list(emulator.config.projects),
            personal_api_key=emulator.config.api_key,
        )
    args.update(source_args)
    return load(pipeline=pipeline, **args)
