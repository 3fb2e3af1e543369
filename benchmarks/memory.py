"""Peak memory of `posthog-insights run` in a child process, the emulator in another one.

The peak is the child's `VmHWM` (high-water mark of its resident set) read from /proc while it runs. Not
`ru_maxrss` from `wait4`: Linux carries the forking parent's resident set into the child's `ru_maxrss`
across `exec`, so a benchmark process holding 2 GB reported every child at 2 GB (measured: a child
`python -c pass` of a parent holding 1.5 GB reports 1,510 MiB). `VmHWM` belongs to the image after `exec`.
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


def memory_mib(pid: int) -> dict[str, float]:
    """A running process's `Vm*` figures from /proc (`VmRSS` now, `VmHWM` its peak since `exec`), in
    MiB; empty once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    figures: dict[str, float] = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Vm") and value.strip().endswith("kB"):
            figures[name] = int(value.split()[0]) / 1024.0
    return figures


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
    status, peak_mib = 0, 0.0
    while True:
        peak_mib = max(peak_mib, memory_mib(proc.pid).get("VmHWM", 0.0))  # gone once reaped
        pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, _ = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; tell Popen so it does not wait again
    seconds = time.perf_counter() - started
    counters = Counters.between(before, emulator.stats())
    shown = " ".join(a if a != emulator.base_url else "<emulator>" for a in argv[1:])
    return PeakMemory(peak_mib, seconds, proc.returncode, counters, f"posthog-insights {shown}")
