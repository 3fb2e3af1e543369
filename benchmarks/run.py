"""`python -m benchmarks.run [--quick]`: the issue's six measurements, ours beside the baseline.

Prints a table (metric | ours | baseline | ratio / bound | pass/fail), the notes behind each figure and the
machine, and writes the same as markdown to `bench-results/benchmarks.md` (and JSON beside it).

Every emulator is a fresh child process started from the same seed and shares, so ours and the baseline
meet the identical cache state and latency; requests are counted by the emulator itself
(`/_emulator/stats`, before and after each run).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.bounds import Census, census, least_time_s, parse_windows
from benchmarks.emulator import Counters, EmulatorProcess, EmulatorSpec
from benchmarks.http_runs import RunFigures, run_baseline, run_ours
from benchmarks.memory import PeakMemory, run_cli_peak
from benchmarks.table import Row, load_average, machine, render_markdown, render_text
from benchmarks.throughput import FLUSH_ROWS, arrow_path, dict_path, dict_rows, trend_payloads

REPO = Path(__file__).resolve().parent.parent
WALL_RATIO_MAX = 0.2  # ours at most 1/5 of the baseline's wall time
RATE_LIMIT_SLACK = 1.1  # within 1.1x the least time the windows allow
ROWS_PER_S_MIN = 300_000
MEMORY_GROWTH_MAX = 1.15  # peak memory at 10x the insights, against the baseline
INSIGHT_SIZE_MAX = 2.0  # peak memory with insights 10x larger (same points in all): must not multiply
MAX_WAIT_S = 60.0  # longest single 429 wait ours sits through (bounds every run's time)
REFUSAL_SLACK = 1.15  # requests of a run that shares the organisation's slots, over the least it needs


@dataclass(frozen=True)
class Sizes:
    name: str
    org_insights: int  # row 7: a project whose organisation's own users hold some calculation slots
    insights: int  # N, per project (one project)
    latency_ms: float
    rate_limit: str  # the emulator's windows and ours', scaled down from 240/60,1200/3600
    arrow_rows: int
    dict_rows: int
    memory_insights: int
    memory_points: int
    memory_refresh: str = "force_cache"
    memory_timeout_s: float = 900.0
    fresh_share: float = 0.5
    stale_share: float = 0.25
    error_share: float = 0.02  # the emulator's default: some insights fail to compute, every time


FULL = Sizes("full", 280, 2_000, 50.0, "240/6,1200/36", 2_000_000, 200_000, 10_000, 1_000)
QUICK = Sizes("quick", 280, 300, 20.0, "60/3,150/9", 200_000, 20_000, 1_000, 300, memory_timeout_s=300.0)
SMOKE = Sizes("smoke", 40, 60, 5.0, "20/1,50/3", 20_000, 2_000, 200, 20, memory_timeout_s=120.0)


@dataclass
class Suite:
    sizes: Sizes
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)
    started_at: str = ""
    seconds: float = 0.0

    def row(self, key: str) -> Row:
        return next(r for r in self.rows if r.key == key)


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


def _steps(figures: RunFigures) -> str:
    """dlt's steps of a run, summed over its load packages (extract holds every request), and the rest
    (state sync, pipeline set-up)."""
    parts = [f"{name} {seconds:.2f} s" for name, seconds in figures.steps.items()]
    rest = figures.seconds - sum(figures.steps.values())
    return ", ".join([*parts, f"other {rest:.2f} s"])


def _kinds(counters: Counters) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(counters.by_kind.items()) if k != "compute")
    return f"{counters.total} ({kinds})"


# -- 1, 2, 6: blocking runs with latency, ours twice, the baseline once ---------------------------------


def _spec(sizes: Sizes, **changes: Any) -> EmulatorSpec:
    spec = EmulatorSpec(
        insights=sizes.insights,
        latency_ms=sizes.latency_ms,
        fresh_share=sizes.fresh_share,
        stale_share=sizes.stale_share,
        error_share=sizes.error_share,
    )
    return replace(spec, **changes)


def _rerun_rows(suite: Suite, tag: str, label: str, second: RunFigures, pages: int) -> None:
    suite.rows.append(
        Row(
            f"6-rerun-requests{tag}",
            f"6. second run, nothing changed: requests{label}",
            str(second.counters.total),
            "-",
            f"bound ≤ {pages} (ceil(N/100))",
            second.counters.total <= pages,
            {"ours": second.counters.total, "bound": pages},
        )
    )
    suite.rows.append(
        Row(
            f"6-rerun-rows{tag}",
            f"6. second run, nothing changed: rows loaded{label}",
            str(second.rows),
            "-",
            "bound = 0",
            second.rows == 0,
            {"ours": second.rows, "bound": 0},
        )
    )


def _requests_and_wall(suite: Suite, work: Path, log: Log) -> Census:
    sizes = suite.sizes
    n = sizes.insights
    # No calculation errors here: the baseline sends no client_query_id, so PostHog answers a failed
    # calculation with a 500, and dlt's rest_api gives up on the first one.
    with EmulatorProcess(_spec(sizes, error_share=0.0), work / "logs") as emulator:
        counts = census(emulator.base_url, emulator.api_key)
        log(f"census: {counts}")
        first = run_ours(emulator, work / "ours", "ours", max_wait_s=MAX_WAIT_S)
        log(f"ours, blocking, first run: {_s(first.seconds)}, {_kinds(first.counters)}")
        second = run_ours(emulator, work / "ours", "ours", max_wait_s=MAX_WAIT_S)
        log(
            f"ours, blocking, second run: {_s(second.seconds)}, {_kinds(second.counters)}, {second.rows} rows"
        )
    with EmulatorProcess(_spec(sizes, error_share=0.0), work / "logs") as emulator:
        base = run_baseline(emulator, work / "baseline", "baseline")
        log(f"baseline, blocking: {_s(base.seconds)}, {_kinds(base.counters)}")

    bound = counts.blocking_requests
    ours_n, base_n = first.counters.total, base.counters.total
    suite.rows.append(
        Row(
            "1-requests",
            f"1. requests per run, blocking, N={n}",
            str(ours_n),
            str(base_n),
            f"{ours_n / max(base_n, 1):.2f}x; bound ≤ {bound}",
            ours_n <= bound,
            {"ours": ours_n, "baseline": base_n, "bound": bound},
        )
    )
    ratio = first.seconds / base.seconds if base.seconds > 0 else math.inf
    suite.rows.append(
        Row(
            "2-wall",
            f"2. wall time, {sizes.latency_ms:g} ms latency, no rate limit",
            _s(first.seconds),
            _s(base.seconds),
            f"{ratio:.3f}; bound ≤ {WALL_RATIO_MAX:g}",
            ratio <= WALL_RATIO_MAX,
            {"ours": first.seconds, "baseline": base.seconds, "ratio": ratio},
        )
    )
    _rerun_rows(suite, "", "", second, math.ceil(n / 100))
    suite.notes += [
        f"Emulator: N={n} insights in one project, {sizes.latency_ms:g} ms latency per request, "
        f"fresh_share={sizes.fresh_share:g}, stale_share={sizes.stale_share:g}, "
        f"error_share=0 (seed 7). Census of its list: {counts.fresh} fresh, "
        f"{counts.stale} stale, {counts.missing} missing (of which {counts.errors} calculation errors), "
        f"{counts.list_pages} list pages -> a blocking run must make {bound} requests.",
        f"1/2. Ours (posthog_insights_cli.load, refresh=blocking, rate_limit=off, concurrency 4): "
        f"{_kinds(first.counters)}; {first.rows} rows; {_steps(first)}; "
        f"client-side count {first.client_requests.get('requests')}. "
        f"Baseline (rest_api_source, offset paginator limit 100, total_path=count, data selector results, "
        f"dependent GET with refresh=blocking, dlt defaults otherwise): {_kinds(base.counters)}; "
        f"{_steps(base)}; "
        f"{base.rows} rows in "
        f"{len(base.row_counts)} tables; it retrieved {base.insights_retrieved} distinct insights of {n} "
        "(its list has no `order`, and PostHog's default order is unstable, so pages repeat and skip "
        "insights). Each side ran against its own emulator process with the identical spec.",
        f"6. Second run of ours on the same pipeline and emulator: {_kinds(second.counters)}, "
        f"rows {second.row_counts or 'none'}.",
    ]
    return counts


def _rerun_with_errors(suite: Suite, work: Path, log: Log) -> None:
    """6 again where some insights fail to compute every time: backed off, they cost the re-run nothing."""
    sizes = suite.sizes
    with EmulatorProcess(_spec(sizes, latency_ms=0.0), work / "logs") as emulator:
        run_ours(emulator, work / "ours-errors", "ours_errors", max_wait_s=MAX_WAIT_S)
        second = run_ours(emulator, work / "ours-errors", "ours_errors", max_wait_s=MAX_WAIT_S)
    log(f"ours, error_share={sizes.error_share:g}, second run: {_kinds(second.counters)}, {second.rows} rows")
    label = f" (error_share={sizes.error_share:g})"
    _rerun_rows(suite, "-errors", label, second, math.ceil(sizes.insights / 100))
    suite.notes.append(
        f"6{label}: the same spec with insights that fail to compute, 0 ms latency: second run "
        f"{_kinds(second.counters)}, rows {second.row_counts or 'none'}."
    )


# -- 3: under the rate limit ----------------------------------------------------------------------------


def _rate_limited(suite: Suite, work: Path, log: Log, counts: Census, refresh: str, key: str) -> None:
    sizes = suite.sizes
    windows = parse_windows(sizes.rate_limit)
    must = counts.blocking_requests if refresh == "blocking" else counts.list_pages + counts.insights
    latency_s = sizes.latency_ms / 1000.0
    baseline_floor = least_time_s(counts.list_pages + counts.insights, windows) + latency_s
    with EmulatorProcess(
        _spec(sizes, rate_limit=sizes.rate_limit, error_share=0.0), work / "logs"
    ) as emulator:
        # a retrieve per stale insight: this row measures the pacing of many requests (row 8 the list path)
        run = run_ours(
            emulator,
            work / f"ours-{key}",
            f"ours_{key}",
            refresh=refresh,
            rate_limit=sizes.rate_limit,
            max_wait_s=MAX_WAIT_S,
            refresh_via="retrieve",
        )
    # the least time: the windows let the last request go at the earliest, one round trip, and then the
    # load of what came last, which every run pays after its last request (measured in this run)
    bound = least_time_s(must, windows) + latency_s + run.final_load_s
    log(
        f"ours, {refresh}, rate limit {sizes.rate_limit}: {_s(run.seconds)}, {_kinds(run.counters)}, "
        f"{run.counters.throttled} 429s"
    )
    ratio = run.seconds / bound if bound > 0 else math.inf
    suite.rows.append(
        Row(
            key,
            f"3. wall time, {refresh}, rate limit {sizes.rate_limit} (+{sizes.latency_ms:g} ms latency)",
            f"{_s(run.seconds)} ({run.packages} load packages), {run.counters.throttled} x 429",
            f"≥ {_s(baseline_floor)} (floor)",
            f"{ratio:.3f} of least {_s(bound)}; bound ≤ {RATE_LIMIT_SLACK:g}, 0 x 429",
            ratio <= RATE_LIMIT_SLACK and run.counters.throttled == 0 and run.complete,
            {
                "ours": run.seconds,
                "packages": run.packages,
                "bound_s": bound,
                "ratio": ratio,
                "throttled": run.counters.throttled,
            },
        )
    )
    suite.notes.append(
        f"3 ({refresh}). {must} requests must go out (census); the windows {sizes.rate_limit} let the last "
        f"one leave at {least_time_s(must, windows):.2f} s at the earliest, plus one {sizes.latency_ms:g} ms "
        f"round trip and the final package's load ({run.final_load_s:.2f} s, measured) = least time "
        f"{bound:.2f} s. Ours made {_kinds(run.counters)} in {_steps(run)}, "
        f"loading {run.packages} packages while the windows held it back, "
        f"met {run.counters.throttled} 429s, paced {run.client_requests.get('paced_wait_s')} s "
        f"(summed over waits). The baseline was not run here: its {counts.list_pages + counts.insights} "
        "requests cannot finish before "
        f"{baseline_floor:.1f} s (the limits' floor), and at real PostHog limits (1200/hour) it stalls "
        f"after ~1200 insights." + (f" Incomplete: {run.note}" if run.note else "")
    )


# -- 8: an async refresh through the list ------------------------------------------------------------

LIST_REFRESH_REQUESTS_PER_PAGE = 3  # the goal: an async refresh of N insights in 3 x ceil(N/100) requests
LIST_BLOCKING_CALC_MS = 100.0  # each calculation's time in the blocking rows (a list read runs ten in a row)
LIST_BLOCKING_SLACK = 1.1  # blocking through the list may take at most this much longer than by retrieves


def _refresh_run(
    sizes: Sizes, work: Path, key: str, insights: int, via: str, refresh: str
) -> tuple[RunFigures, Census]:
    spec = _spec(sizes, insights=insights, rate_limit=sizes.rate_limit, error_share=0.0)
    if refresh == "blocking":
        spec = replace(spec, calc_ms=LIST_BLOCKING_CALC_MS)
    with EmulatorProcess(spec, work / "logs") as emulator:
        counts = census(emulator.base_url, emulator.api_key)
        run = run_ours(
            emulator,
            work / f"ours-{key}-{via}",
            f"ours_{key}_{via}".replace("-", "_"),
            refresh=refresh,
            rate_limit=sizes.rate_limit,
            refresh_via=via,
            max_wait_s=MAX_WAIT_S,
        )
    return run, counts


def _list_refresh(suite: Suite, work: Path, log: Log) -> None:
    """`async` and `blocking` over N and 5N insights, half of them stale or missing, under the compressed
    rate windows: the list path against the per-insight path, which at 5N is given as its floor."""
    sizes = suite.sizes
    windows = parse_windows(sizes.rate_limit)
    for refresh in ("async", "blocking"):
        for n, key, both in (
            (sizes.insights, f"8-list-{refresh}", True),
            (sizes.insights * 5, f"8-list-{refresh}-5n", False),
        ):
            _list_refresh_row(suite, work, log, windows, refresh, n, key, both)


def _list_refresh_row(
    suite: Suite,
    work: Path,
    log: Log,
    windows: tuple[tuple[int, float], ...],
    refresh: str,
    n: int,
    key: str,
    both: bool,
) -> None:
    sizes = suite.sizes
    pages = max(math.ceil(n / 100), 1)
    ours, counts = _refresh_run(sizes, work, key, n, "list", refresh)
    needing = counts.stale + counts.missing
    if refresh == "async":
        goal = LIST_REFRESH_REQUESTS_PER_PAGE * pages
        per_insight_floor = counts.list_pages + 2 * needing  # a retrieve and a poll each, at least
        what = "a retrieve and a poll each"
    else:
        goal = 2 * pages + math.ceil(needing / 10)  # the listing, a read per ten, a remainder per page
        per_insight_floor = counts.list_pages + needing
        what = "a retrieve each"
    log(f"ours, {refresh} through the list, {n} insights: {_s(ours.seconds)}, {_kinds(ours.counters)}")
    same = True
    fast_enough = True
    if both:
        per_insight, _ = _refresh_run(sizes, work, key, n, "retrieve", refresh)
        log(f"ours, {refresh} by retrieves, {n}: {_s(per_insight.seconds)}, {_kinds(per_insight.counters)}")
        same = ours.row_counts == per_insight.row_counts and per_insight.complete
        baseline = f"{per_insight.counters.total} requests, {_s(per_insight.seconds)} (per insight)"
        base_requests = float(per_insight.counters.total)
        fast_enough = ours.seconds <= LIST_BLOCKING_SLACK * per_insight.seconds
    else:
        base_requests = float(per_insight_floor)
        floor_s = least_time_s(per_insight_floor, windows)
        baseline = f"≥ {per_insight_floor} requests, ≥ {_s(floor_s)} (floor: {what})"
    suite.rows.append(
        Row(
            key,
            f"8. {refresh} refresh through the list, {n:,} insights ({needing:,} stale or missing)",
            f"{ours.counters.total} requests, {_s(ours.seconds)}",
            baseline,
            f"{ours.counters.total / pages:.2f} per page; goal ≤ {goal}"
            + ("" if not both else f", tables equal, time ≤ {LIST_BLOCKING_SLACK:g}x"),
            ours.counters.total <= goal and ours.complete and same and fast_enough,
            {"ours": float(ours.counters.total), "baseline": base_requests, "seconds": ours.seconds},
        )
    )
    calc = f", each calculation {LIST_BLOCKING_CALC_MS:g} ms" if refresh == "blocking" else ""
    suite.notes.append(
        f"8 ({refresh}, {n:,}). The emulator's windows {sizes.rate_limit}, no failing insights{calc}. Through"
        f" the list: {_kinds(ours.counters)} in {_steps(ours)}; the goal is {goal} requests."
        + (
            f" By retrieves: {_kinds(per_insight.counters)} in {_steps(per_insight)};"
            f" rows loaded equal: {same}."
            if both
            else " The per-insight path was not run at this size: its floor is computed from the census."
        )
        + (f" Incomplete: {ours.note}" if ours.note else "")
    )


# -- 7: sharing the organisation's calculation slots ---------------------------------------------------


def _organisation_limit(suite: Suite, work: Path, log: Log) -> None:
    """PostHog runs 10 calculations at once per organisation; here its own users hold 4 of them and each
    calculation takes 150 ms. Ours (defaults) against the baseline, which names no calculation
    (no client_query_id), so PostHog answers every refusal with a 500."""
    sizes = suite.sizes
    spec = EmulatorSpec(
        insights=sizes.org_insights, error_share=0.0, org_concurrency=10, background_calcs=4, calc_ms=150.0
    )
    with EmulatorProcess(spec, work / "logs") as emulator:
        counts = census(emulator.base_url, emulator.api_key)
        # a retrieve per stale insight, as the least count is (the list path's reads: row 8)
        ours = run_ours(
            emulator, work / "ours-org", "ours_org", rate_limit="240/60,1200/3600", refresh_via="retrieve"
        )
    with EmulatorProcess(spec, work / "logs") as emulator:
        base = run_baseline(emulator, work / "baseline-org", "baseline_org")
    least = counts.blocking_requests
    ratio = ours.counters.total / max(least, 1)
    log(f"ours, organisation 4/10 busy: {_kinds(ours.counters)}, {ours.counters.refused} refused")
    errors_500 = base.counters.by_status.get("500", 0)
    log(f"baseline, organisation 4/10 busy: {_kinds(base.counters)}, {errors_500} x 500")
    suite.rows.append(
        Row(
            "7-organisation",
            f"7. requests, blocking, N={sizes.org_insights}, 4 of the organisation's 10 slots busy",
            f"{ours.counters.total} ({ours.counters.refused} refused)",
            f"{base.counters.total} ({errors_500} x 500)",
            f"{ratio:.3f} of least {least}; bound ≤ {REFUSAL_SLACK:g}, every insight ok",
            ratio <= REFUSAL_SLACK and ours.complete,
            {"ours": ours.counters.total, "baseline": base.counters.total, "least": least, "ratio": ratio},
        )
    )
    suite.notes.append(
        f"7. Emulator with --org-concurrency 10 --background-calcs 4 --calc-ms 150, N={sizes.org_insights}: "
        f"{counts.list_pages} list pages + {counts.stale} stale + {counts.missing} missing = {least} requests"
        f" at least. Ours (defaults: concurrency 4, a fresh client_query_id on every read that may compute,"
        f" the calculation limit adapting to refusals): {_kinds(ours.counters)} in {_s(ours.seconds)}, "
        f"{ours.counters.refused} refused, outcomes {dict(ours.client_requests)}. Baseline (dlt rest_api, "
        f"GET per insight with refresh=blocking, no client_query_id): {_kinds(base.counters)} in "
        f"{_s(base.seconds)}, by status {base.counters.by_status}"
        + (f", {base.note}" if base.note else "")
        + "."
    )


# -- 4: rows per second, no HTTP ------------------------------------------------------------------------


def _throughput(suite: Suite, work: Path, log: Log) -> None:
    sizes = suite.sizes
    payloads = trend_payloads(sizes.arrow_rows)
    arrow = arrow_path(payloads, work / "arrow")
    del payloads
    log(f"arrow path: {arrow.rows} rows, {_s(arrow.seconds)}, {arrow.rows_per_s:,.0f} rows/s {arrow.phases}")
    rows = dict_rows(trend_payloads(sizes.dict_rows))
    dicts = dict_path(rows, work / "dicts")
    del rows
    log(f"dict path: {dicts.rows} rows, {_s(dicts.seconds)}, {dicts.rows_per_s:,.0f} rows/s {dicts.phases}")
    ratio = arrow.rows_per_s / dicts.rows_per_s if dicts.rows_per_s > 0 else math.inf
    suite.rows.append(
        Row(
            "4-throughput",
            f"4. rows/s, extract+normalize+load into DuckDB ({arrow.rows:,} / {dicts.rows:,} trend points)",
            f"{arrow.rows_per_s:,.0f}",
            f"{dicts.rows_per_s:,.0f}",
            f"{ratio:.1f}x; bound ≥ {ROWS_PER_S_MIN:,}",
            arrow.rows_per_s >= ROWS_PER_S_MIN and arrow.loaded == arrow.rows,
            {"ours": arrow.rows_per_s, "baseline": dicts.rows_per_s, "ratio": ratio},
        )
    )

    def phases(p: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f} s" for k, v in p.items())

    suite.notes.append(
        f"4. Payloads built in memory (2 series x 1,000 points per line-trend insight), untimed. Ours: "
        f"TidyRows.add per insight, take() every {FLUSH_ROWS:,} rows, Arrow tables yielded by a dlt resource "
        f"with the source's hints (delete-insert on the snapshot key) into the CLI's DuckDB settings: "
        f"{phases(arrow.phases)}; {arrow.loaded:,} rows in "
        f"DuckDB. Baseline: the same rows as Python dicts (converted untimed), yielded in lists of 1,000, "
        f"same hints: {phases(dicts.phases)}; {dicts.loaded:,} rows in DuckDB."
    )


# -- 5: peak memory -------------------------------------------------------------------------------------


def _peak(suite: Suite, work: Path, log: Log, insights: int, points: int) -> PeakMemory:
    sizes = suite.sizes
    with EmulatorProcess(EmulatorSpec(insights=insights, points=points), work / "logs") as emulator:
        peak = run_cli_peak(
            emulator,
            work / f"memory-{insights}x{points}",
            refresh=sizes.memory_refresh,
            timeout_s=sizes.memory_timeout_s,
        )
    log(
        f"memory, {insights} x {points}: anonymous {peak.anon_mib:.0f} MiB (VmHWM {peak.maxrss_mib:.0f}), "
        f"{_s(peak.seconds)}, {_kinds(peak.counters)}, exit {peak.returncode}"
    )
    return peak


def _memory(suite: Suite, work: Path, log: Log) -> None:
    """Memory judged by how it grows: the run's anonymous resident memory at N insights against N/10,
    and with each insight ten times as large (the same points in all) against the same N/10."""
    sizes = suite.sizes
    n, points = sizes.memory_insights, sizes.memory_points
    base = _peak(suite, work, log, n // 10, points)
    big = _peak(suite, work, log, n, points)
    wide = _peak(suite, work, log, n // 100 or 1, points * 10)
    growth = big.anon_mib / max(base.anon_mib, 1.0)
    widening = wide.anon_mib / max(base.anon_mib, 1.0)
    ok = base.returncode == big.returncode == wide.returncode == 0
    suite.rows.append(
        Row(
            "5-memory",
            f"5. peak anonymous memory, {n:,} vs {n // 10:,} insights x {points:,} points",
            f"{big.anon_mib:.0f} MiB",
            f"{base.anon_mib:.0f} MiB",
            f"{growth:.2f}x; bound ≤ {MEMORY_GROWTH_MAX:g}x",
            growth <= MEMORY_GROWTH_MAX and ok,
            {"ours": big.anon_mib, "baseline": base.anon_mib, "ratio": growth, "seconds": big.seconds},
        )
    )
    suite.rows.append(
        Row(
            "5-memory-insight-size",
            f"5. peak anonymous memory, {n // 100 or 1:,} insights x {points * 10:,} points each",
            f"{wide.anon_mib:.0f} MiB",
            f"{base.anon_mib:.0f} MiB",
            f"{widening:.2f}x; bound < {INSIGHT_SIZE_MAX:g}x",
            widening < INSIGHT_SIZE_MAX and ok,
            {"ours": wide.anon_mib, "baseline": base.anon_mib, "ratio": widening},
        )
    )
    suite.notes.append(
        f"5. `{big.command}` ({sizes.memory_refresh}) in a child process, the emulator in another; the figure"
        " is the child's anonymous resident memory (RssAnon, sampled every 20 ms), so the pages of shared"
        " libraries and the page cache are not counted. Whole resident set (VmHWM) beside it:"
        f" {base.maxrss_mib:.0f}, {big.maxrss_mib:.0f} and {wide.maxrss_mib:.0f} MiB."
        f" Seconds: {base.seconds:.1f}, {big.seconds:.1f}, {wide.seconds:.1f}. "
        f"The CLI's output is in {work}/memory-*/cli.log while the work folder exists."
    )


# -- the suite ------------------------------------------------------------------------------------------


def run_suite(sizes: Sizes, work: Path, log: Log = _stderr) -> Suite:
    suite = Suite(
        sizes, machine=machine(), started_at=datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    suite.machine["load average at start"] = load_average()
    started = time.perf_counter()
    counts = _requests_and_wall(suite, work, log)
    _rate_limited(suite, work, log, counts, "blocking", "3-ratelimit")
    _rate_limited(suite, work, log, counts, "force_blocking", "3-ratelimit-force")
    _rerun_with_errors(suite, work, log)
    _organisation_limit(suite, work, log)
    _list_refresh(suite, work, log)
    _throughput(suite, work, log)
    _memory(suite, work, log)
    order = [
        "1-requests",
        "2-wall",
        "3-ratelimit",
        "3-ratelimit-force",
        "4-throughput",
        "5-memory",
        "5-memory-insight-size",
        "6-rerun-requests",
        "6-rerun-rows",
        "6-rerun-requests-errors",
        "6-rerun-rows-errors",
        "7-organisation",
        "8-list-async",
        "8-list-async-5n",
        "8-list-blocking",
        "8-list-blocking-5n",
    ]
    suite.rows.sort(key=lambda r: order.index(r.key) if r.key in order else len(order))
    suite.seconds = time.perf_counter() - started
    suite.machine["load average at end"] = load_average()
    return suite


def render(suite: Suite, markdown: bool) -> str:
    table = render_markdown(suite.rows) if markdown else render_text(suite.rows)
    head = f"Benchmarks ({suite.sizes.name}), {suite.started_at}, {suite.seconds:.0f} s in all"
    flag = " --quick" if suite.sizes.name == "quick" else ""
    head += f"; reproduce with `python -m benchmarks.run{flag}`"
    machine_lines = [f"- {k}: {v}" for k, v in suite.machine.items()]
    note_lines = [f"- {note}" for note in suite.notes]
    if markdown:
        return "\n".join(
            [
                f"## {head}",
                "",
                table,
                "",
                "### Notes",
                "",
                *note_lines,
                "",
                "### Machine",
                "",
                *machine_lines,
                "",
            ]
        )
    return "\n".join([head, "", table, "", "Notes:", *note_lines, "", "Machine:", *machine_lines])


def write_results(suite: Suite, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "benchmarks.md"
    path.write_text(render(suite, markdown=True))
    data = {
        "sizes": asdict(suite.sizes),
        "started_at": suite.started_at,
        "seconds": suite.seconds,
        "machine": suite.machine,
        "rows": [{**asdict(r), "verdict": r.verdict} for r in suite.rows],
        "notes": suite.notes,
    }
    (out_dir / "benchmarks.json").write_text(json.dumps(data, indent=2))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (about a minute); bounds still shown"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench-results", help="where benchmarks.md goes")
    parser.add_argument("--workdir", type=Path, help="keep pipelines, DuckDB files and logs here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any bound fails")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        suite = run_suite(sizes, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="posthog-bench-") as tmp:
            suite = run_suite(sizes, Path(tmp))
    print(render(suite, markdown=False), flush=True)
    path = write_results(suite, args.out)
    print(f"\nwritten: {path}", flush=True)
    failed = [r.key for r in suite.rows if r.passed is False]
    return 1 if args.strict and failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
