"""Peak memory of `posthog-insights run` in a child process, the emulator in another one.

The child's max RSS is read from `os.wait4` on that very child (the same figure as
`getrusage(RUSAGE_CHILDREN)` in a process with no other children), so neither the emulator nor this
driver counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.emulator import Counters, EmulatorProcess, child_env


@dataclass(frozen=True)
class PeakMemory:
    maxrss_mib: float
    seconds: float
    returncode: int
    counters: Counters
    command: str


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("posthog-insights")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "posthog_insights_cli.main"]


def run_cli_peak(
    emulator: EmulatorProcess, workdir: Path, *, refresh: str, timeout_s: float, rate_limit: str = "off"
) -> PeakMemory:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [
        *_cli(),
        "run",
        "--host",
        emulator.base_url,
        "--project-id",
        "1",
        "--refresh",
        refresh,
        "--rate-limit",
        rate_limit,
        "--pipelines-dir",
        str(workdir / "pipelines"),
        "--pipeline-name",
        "bench_memory",
    ]
    env = child_env()
    env["POSTHOG_PERSONAL_API_KEY"] = emulator.api_key
    before = emulator.stats()
    started = time.perf_counter()
    with (workdir / "cli.log").open("wb") as log:
        # cwd=workdir: the CLI's DuckDB file lands in the current directory
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    status, rusage = 0, None
    while True:
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, rusage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; tell Popen so it does not wait again
    seconds = time.perf_counter() - started
    counters = Counters.between(before, emulator.stats())
    shown = " ".join(a if a != emulator.base_url else "<emulator>" for a in argv[1:])
    return PeakMemory(
        rusage.ru_maxrss / 1024.0, seconds, proc.returncode, counters, f"posthog-insights {shown}"
    )
