"""SIGKILL at random points of extract, normalize, load and the views, then re-run: the warehouse ends up
equal to a clean run's, with no duplicate, nothing lost, and the state in the destination never ahead
of the data beside it.

The CLI runs in a subprocess (`crash_driver.py`: the installed CLI plus a phase log). Each trial picks a
target phase and a seeded random delay inside it (measured on the clean run), waits for the phase to
start, sleeps, kills; the phase log says which phase the kill really hit. Every third trial also kills
the recovery run. The emulator runs in force_cache mode on a frozen clock, so PostHog's side never
changes between runs and "equal to a clean run" is exact.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from posthog_emulator import Emulator
from tests.reliability.support import (
    DATASET,
    DRIVER,
    KEY,
    PYTHON,
    Snapshot,
    cli_env,
    destination_state,
    diff_warehouses,
    duplicate_keys,
    extra_rows,
    frozen_clock,
    lost_rows,
    read_warehouse,
    run_args,
    source_state,
)

TRIALS = 21
PHASES = ("extract", "normalize", "load", "views")


@dataclass
class Run:
    code: int
    phases: list[tuple[float, str]]
    killed_at: float | None = None
    output: str = ""

    def phase_at(self, moment: float) -> str:
        hit = "startup"
        for at, name in self.phases:
            if at <= moment:
                hit = name
        return hit


@dataclass
class Trial:
    index: int
    target: str
    hits: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    lost: int = 0
    extra: int = 0


def _read_phases(path: Path) -> list[tuple[float, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        at, _, name = line.partition(" ")
        if name:
            out.append((float(at), name))
    return out


def drive(root: Path, args: list[str], *, kill_in: str | None = None, delay: float = 0.0) -> Run:
    """Run the CLI; with `kill_in`, SIGKILL it `delay` seconds after that phase starts."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / f"phases-{time.monotonic_ns()}.log"
    env = {**cli_env(root, KEY), "RELIABILITY_PHASE_LOG": str(log)}
    proc = subprocess.Popen(
        [PYTHON, DRIVER, *run_args(root, *args)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed_at = None
    if kill_in is not None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            names = [name for _, name in _read_phases(log)]
            if kill_in in names or (kill_in == "any" and "imported" in names):
                break
            time.sleep(0.002)
        time.sleep(delay)
        if proc.poll() is None:
            killed_at = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
    output, _ = proc.communicate(timeout=120)
    return Run(proc.returncode, _read_phases(log), killed_at, output)


def state_behind_data(db: Path) -> list[str]:
    """What the destination's own state claims is loaded but is not (must be nothing)."""
    state = destination_state(db)
    if state is None:
        return []
    projects = source_state(state).get("projects", {})
    with duckdb.connect(str(db), read_only=True) as con:
        results = {
            (int(p), int(i), v, s)
            for p, i, v, s in con.execute(
                f"SELECT project_id, insight_id, variant, snapshot FROM {DATASET}.insight_results"
            ).fetchall()
        }
        insights = {
            (int(p), int(i))
            for p, i in con.execute(f"SELECT project_id, id FROM {DATASET}.insights").fetchall()
        }
    missing = []
    for pid, entry in projects.items():
        for key, (status, snapshot, _digest) in entry.get("outcomes", {}).items():
            insight_id, _, variant = key.partition("|")
            ref = (int(pid), int(insight_id), variant, datetime.fromisoformat(snapshot))
            if ref not in results:
                missing.append(f"outcome {ref} ({status})")
        for insight_id in entry.get("modified", {}):
            if (int(pid), int(insight_id)) not in insights:
                missing.append(f"insight {pid}/{insight_id}")
    return missing


@pytest.mark.slow
def test_sigkill_anywhere_then_rerun_equals_a_clean_run(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    emulator = emulators(
        clock=frozen_clock(),
        api_key=KEY,
        projects=(1, 2),
        insights=300,
        seed=21,
        points=30,
        error_share=0.05,
        latency_ms=10.0,
    )
    args = [
        "--host", emulator.base_url, "--project-id", "1", "--project-id", "2",
        "--refresh", "force_cache", "--rate-limit", "off",
    ]  # fmt: skip
    clean_run = drive(tmp_path / "clean", args)
    assert clean_run.code == 0, clean_run.output
    want: Snapshot = read_warehouse(tmp_path / "clean" / "warehouse.duckdb")
    starts = dict((name, at) for at, name in clean_run.phases)
    span = {
        "extract": starts["normalize"] - starts["extract"],
        "normalize": starts["load"] - starts["normalize"],
        "load": starts["views"] - starts["load"],
        "views": starts["done"] - starts["views"],
    }

    def trial(index: int) -> Trial:
        rng = random.Random(1000 + index)
        target = PHASES[index % len(PHASES)]
        result = Trial(index, target)
        root = tmp_path / f"trial-{index:02d}"
        kills = [(target, rng.uniform(0.0, span[target]))]
        if index % 3 == 2:  # and kill the recovery run early too (while it finishes the pending load)
            kills.append(("any", rng.uniform(0.2, 1.2)))
        for kill_in, delay in kills:
            run = drive(root, args, kill_in=kill_in, delay=delay)
            result.hits.append(run.phase_at(run.killed_at) if run.killed_at is not None else "finished")
            db = root / "warehouse.duckdb"
            if db.exists():
                behind = state_behind_data(db)
                if behind:
                    result.problems.append(
                        f"state ahead of data after kill in {result.hits[-1]}: {behind[:5]}"
                    )
        final = drive(root, args)
        if final.code != 0:
            result.problems.append(f"re-run failed ({final.code}): {final.output[-2000:]}")
            return result
        got = read_warehouse(root / "warehouse.duckdb")
        result.problems += diff_warehouses(got, want)
        result.lost = lost_rows(got, want)
        result.extra = extra_rows(got, want)
        dupes = {t: n for t, n in duplicate_keys(root / "warehouse.duckdb").items() if n}
        if dupes:
            result.problems.append(f"duplicate keys: {dupes}")
        return result

    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(trial, range(TRIALS)))

    hits = Counter(hit for t in trials for hit in t.hits)
    report = "\n".join(
        f"trial {t.index:2d} target {t.target:9s} hit {t.hits}: {t.problems or 'ok'}" for t in trials
    )
    print(report, f"\nkills by phase: {dict(hits)}")
    recovered = sum(1 for t in trials if not t.problems)
    figures(
        "SIGKILL during extract/normalize/load/views, then re-run",
        trials=TRIALS,
        recovered=recovered,
        rows_lost=sum(t.lost for t in trials),
        rows_extra=sum(t.extra for t in trials),
        kills=sum(hits.values()) - hits.get("finished", 0),
        kills_by_phase=dict(hits),
    )
    assert all(not t.problems for t in trials), report
    # the kills really were spread over the phases
    for phase in ("extract", "normalize", "load"):
        assert hits[phase] >= 2, (phase, dict(hits))


def _clean_run_then_killed_run(
    tmp_path: Path, emulators: Callable[..., Emulator], kill_at: str
) -> tuple[Path, list[str]]:
    """A clean run into tmp_path/clean, then the same run into tmp_path/crash killed by the driver's
    RELIABILITY_KILL_AT hook at `kill_at`; returns the crashed run's folder and the CLI arguments."""
    emulator = emulators(
        clock=frozen_clock(),
        api_key=KEY,
        insights=60,
        seed=4,
        points=8,
        error_share=0.1,
    )
    args = [
        "--host",
        emulator.base_url,
        "--project-id",
        "1",
        "--refresh",
        "force_cache",
        "--rate-limit",
        "off",
    ]
    assert drive(tmp_path / "clean", args).code == 0
    root = tmp_path / "crash"
    root.mkdir()
    env = {**cli_env(root, KEY), "RELIABILITY_KILL_AT": kill_at}
    killed = subprocess.run(
        [PYTHON, DRIVER, *run_args(root, *args)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL
    return root, args


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kill_at", "fault"),
    [
        # the extracted package (with the new state) is committed, the local state.json not yet saved:
        # the re-run must not extract the same outcomes a second time
        ("after_commit", "SIGKILL after package commit, before state save"),
        # the load step copies each table's file into the staging dataset, then merges; killed after a copy
        # committed but before dlt recorded the job as done, the resumed package copies the file again
        # (dlt truncates staging tables only when a package starts): the merge must still load each row once
        ("after_staging_copy", "SIGKILL after a staging copy, before the job is marked done"),
    ],
)
def test_sigkill_in_a_narrow_window_then_rerun_equals_a_clean_run(
    kill_at: str, fault: str, tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    """The narrowest windows of a run, hit on purpose by the driver's RELIABILITY_KILL_AT hook."""
    root, args = _clean_run_then_killed_run(tmp_path, emulators, kill_at)
    assert drive(root, args).code == 0
    got = read_warehouse(root / "warehouse.duckdb")
    want = read_warehouse(tmp_path / "clean" / "warehouse.duckdb")
    problems = diff_warehouses(got, want)
    dupes = {t: n for t, n in duplicate_keys(root / "warehouse.duckdb").items() if n}
    figures(
        fault,
        trials=1,
        recovered=int(not problems and not dupes),
        rows_lost=lost_rows(got, want),
        duplicates=sum(dupes.values()),
    )
    assert dupes == {}
    assert problems == []


def test_sigkill_between_checkpoints_then_rerun_equals_a_clean_run(
    tmp_path: Path, emulators: Callable[..., Emulator], figures: Callable[..., None]
) -> None:
    """A paced run loads its first package while it waits for the rate window, then dies as the second
    starts: the re-run resumes from the first package's state, and nothing is lost, not even the rows of
    insights whose retrieve had not come yet."""
    clock = frozen_clock()
    config: dict[str, Any] = {"api_key": KEY, "insights": 60, "seed": 4, "points": 8, "error_share": 0.1}
    config.update(fresh_share=0.2, stale_share=0.6)

    def args(emulator: Emulator) -> list[str]:
        # 1 list page + ~45 retrieves, 20 per 2 s: the pacer idles ~1.8 s after the first 20 (a checkpoint)
        host = emulator.base_url
        return [
            *("--host", host, "--project-id", "1", "--refresh", "blocking", "--rate-limit", "20/2"),
            *("--refresh-via", "retrieve"),  # a retrieve each: enough requests for the window to pause
        ]

    assert drive(tmp_path / "clean", args(emulators(clock=clock, **config))).code == 0
    crashed = emulators(clock=clock, **config)  # the same insights, none refreshed by the clean run
    root = tmp_path / "crash"
    root.mkdir()
    killed = subprocess.run(
        [PYTHON, DRIVER, *run_args(root, *args(crashed))],
        cwd=root,
        env={**cli_env(root, KEY), "RELIABILITY_KILL_AT": "second_extract"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first = read_warehouse(root / "warehouse.duckdb")
    assert first.row_counts()["insight_results"] > 0  # the first package is in
    assert drive(root, args(crashed)).code == 0
    # Insights refreshed by the killed run's retrieves are fresh in the next listing: same rows, `list`.
    got = read_warehouse(root / "warehouse.duckdb", ignore={"fetched_via"})
    want = read_warehouse(tmp_path / "clean" / "warehouse.duckdb", ignore={"fetched_via"})
    problems = diff_warehouses(got, want)
    dupes = {t: n for t, n in duplicate_keys(root / "warehouse.duckdb").items() if n}
    figures(
        "SIGKILL between two checkpoints",
        trials=1,
        recovered=int(not problems and not dupes),
        rows_lost=lost_rows(got, want),
        duplicates=sum(dupes.values()),
    )
    assert dupes == {}
    assert problems == []


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="known gap: with the working directory lost after a load cut short (an ephemeral CI runner), the"
    " state restored from the destination predates rows already merged, and outcomes without a result"
    " (cache_miss, error) are recorded again under a new snapshot (their snapshot is the time seen)",
)
def test_sigkill_mid_load_then_lost_working_dir(tmp_path: Path, emulators: Callable[..., Emulator]) -> None:
    root, args = _clean_run_then_killed_run(tmp_path, emulators, "before_complete")
    shutil.rmtree(root / "pipelines")  # a fresh runner: dlt restores the state from the destination
    assert drive(root, args).code == 0
    got = read_warehouse(root / "warehouse.duckdb")
    want = read_warehouse(tmp_path / "clean" / "warehouse.duckdb")
    assert diff_warehouses(got, want) == []
