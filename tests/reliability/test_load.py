"""10,002 insights in three projects, one run, the emulator enforcing rate limits (2000 requests per
10 s, PostHog's windows scaled down): the run completes, never meets a 429, loses no row, and its
memory does not grow with the project (peak RSS of the CLI subprocess at 1,002 and 10,002 insights).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest

from benchmarks.memory import memory_mib
from posthog_emulator import Emulator
from tests.reliability.support import DATASET, DRIVER, KEY, PYTHON, cli_env, duplicate_keys, run_args

PROJECTS = (1, 2, 3)
RATE = ((2000, 10.0),)
TIDY_TABLES = (
    "trend_points",
    "funnel_steps",
    "funnel_conversion_bins",
    "retention_cells",
    "path_edges",
    "sql_rows",
)


@dataclass
class Measured:
    code: int
    seconds: float
    peak_mb: float  # whole process: its VmHWM (wait4's ru_maxrss counts the forking parent's pages too)
    phase_peak_mb: dict[str, float] = field(default_factory=dict)  # sampled from /proc per phase
    output: str = ""


def measured_run(root: Path, args: list[str]) -> Measured:
    """The CLI (through the phase-logging driver) in a subprocess; its peak RSS overall and per phase."""
    root.mkdir(parents=True, exist_ok=True)
    log, out = root / "phases.log", root / "output.txt"
    env = {**cli_env(root, KEY), "RELIABILITY_PHASE_LOG": str(log)}
    started = time.monotonic()
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [PYTHON, DRIVER, *run_args(root, *args)], cwd=root, env=env, stdout=sink, stderr=sink
        )
    phase_peak: dict[str, float] = {}
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            figures = memory_mib(proc.pid)
            try:
                lines = log.read_text().splitlines() if log.exists() else []
            except OSError:
                return
            if "VmRSS" not in figures:
                return  # exited
            phase = lines[-1].split()[1] if lines else "startup"
            phase_peak[phase] = max(phase_peak.get(phase, 0.0), figures["VmRSS"])
            peak[0] = max(peak[0], figures["VmHWM"])
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, _ = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(proc.returncode, time.monotonic() - started, peak[0], phase_peak, out.read_text())


def _load(tmp_path: Path, emulators: Any, per_project: int) -> tuple[Emulator, Measured]:
    emulator = emulators(
        api_key=KEY,
        projects=PROJECTS,
        insights=per_project,
        seed=17,
        points=30,
        error_share=0.02,
        rate_limits=RATE,
    )
    args = ["--host", emulator.base_url, "--refresh", "blocking", "--rate-limit", "2000/10"]
    for project in PROJECTS:
        args += ["--project-id", str(project)]
    return emulator, measured_run(tmp_path / f"n{per_project}", args)


def _expected(emulator: Emulator) -> dict[tuple[int, int], str]:
    """Each insight's latest status as the emulator's store defines it (read directly: no request, no rate
    limit): "error" for an insight whose calculations fail, "ok" for every other (a blocking run computes
    what is stale or missing; refused calculations are asked for again)."""
    return {
        (project, insight_id): "error"
        if emulator.store.insight(project, insight_id)["_emulator"]["fails"]
        else "ok"
        for project in PROJECTS
        for insight_id in emulator.store.insight_ids(project)
    }


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="samples memory from /proc")
def test_ten_thousand_insights_under_rate_limits(tmp_path: Path, emulators: Any, figures: Any) -> None:
    _, small = _load(tmp_path, emulators, 334)
    assert small.code == 0, small.output[-3000:]
    emulator, big = _load(tmp_path, emulators, 3334)
    assert big.code == 0, big.output[-3000:]
    stats = emulator.stats
    assert stats.throttled == 0, stats.as_dict()  # the client's pacer kept inside the server's windows
    # 2000 requests per 10 s: the run cannot be faster than the limit allows
    assert big.seconds >= 10.0 * (stats.total // 2000)

    db = tmp_path / "n3334" / "warehouse.duckdb"
    with duckdb.connect(str(db), read_only=True) as con:
        con.execute(f"SET search_path = '{DATASET}'")

        def one(sql: str) -> int:
            row = con.execute(sql).fetchone()
            assert row is not None
            return int(row[0])

        insights = one("SELECT COUNT(*) FROM insights")
        rows = con.execute("SELECT project_id, insight_id, status FROM insight_results_latest").fetchall()
        latest = {(p, i): status for p, i, status in rows}
        recorded_tidy = one("SELECT COALESCE(SUM(tidy_rows), 0) FROM insight_results WHERE status = 'ok'")
        loaded_tidy = sum(one(f"SELECT COUNT(*) FROM {t}") for t in TIDY_TABLES)
    expected = _expected(emulator)
    assert insights == len(PROJECTS) * 3334 == 10_002
    assert len(latest) == 10_002
    assert latest == expected, {k: (v, expected.get(k)) for k, v in latest.items() if v != expected.get(k)}
    assert loaded_tidy == recorded_tidy > 400_000  # every number the builders produced reached the warehouse
    assert set(duplicate_keys(db).values()) == {0}

    # Memory: 10x the insights; the source's own phase (extract) stays nearly flat, and the whole
    # process (DuckDB's load included) grows far less than linearly.
    extract_ratio = big.phase_peak_mb["extract"] / small.phase_peak_mb["extract"]
    total_ratio = big.peak_mb / small.peak_mb
    print(
        f"\n1,002 insights: peak {small.peak_mb:.0f} MB (extract {small.phase_peak_mb['extract']:.0f} MB),"
        f" {small.seconds:.1f} s; 10,002 insights: peak {big.peak_mb:.0f} MB (extract"
        f" {big.phase_peak_mb['extract']:.0f} MB), {big.seconds:.1f} s, {stats.total} requests, 0 x 429"
    )
    figures(
        "10,002 insights, 3 projects, 2000 req/10 s enforced",
        trials=1,
        recovered=1,
        rows_lost=(recorded_tidy - loaded_tidy) + (10_002 - insights),
        seconds=round(big.seconds, 1),
        requests=stats.total,
        throttled=stats.throttled,
        peak_mb={"1002": round(small.peak_mb), "10002": round(big.peak_mb)},
        extract_peak_mb={
            "1002": round(small.phase_peak_mb["extract"]),
            "10002": round(big.phase_peak_mb["extract"]),
        },
    )
    assert extract_ratio < 1.6, big.phase_peak_mb
    assert total_ratio < 3.0, (small.peak_mb, big.peak_mb)
    assert big.peak_mb < 1_500
