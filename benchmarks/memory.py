"""Peak memory of `posthog-insights run` in a child process, the emulator in another one.

The figure is the child's anonymous resident memory (`RssAnon` in /proc/PID/status), sampled every 20 ms
while it runs: the memory the run itself holds. Shared library pages (file-backed, clean, shared with
every other process that maps them) are left out, as is the page cache; both depend on the machine and on
what else runs, not on the run. `VmHWM` (the whole resident set's peak) is kept beside it for reference.
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
    anon_mib: float  # peak of the sampled RssAnon
    maxrss_mib: float  # VmHWM
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
        if name.startswith(("Vm", "Rss")) and value.strip().endswith("kB"):
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
    status, peak_mib, anon_mib = 0, 0.0, 0.0
    while True:
        figures = memory_mib(proc.pid)  # gone once reaped
        peak_mib = max(peak_mib, figures.get("VmHWM", 0.0))
        anon_mib = max(anon_mib, figures.get("RssAnon", 0.0))
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
    return PeakMemory(anon_mib, peak_mib, seconds, proc.returncode, counters, f"posthog-insights {shown}")
