"""Command line: run the emulator in the foreground (for the demo, or a user's own CI).

`add_arguments` and `run` are separate so the product CLI can mount this as `posthog-insights
emulator`; `main` is `python -m posthog_emulator`. On start it prints exactly two lines on stdout,
the base URL and the API key, so a script can read them; then it serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from posthog_emulator.config import FAULT_KINDS, EmulatorConfig, FaultConfig
from posthog_emulator.runner import Emulator


def parse_rate_limits(text: str) -> tuple[tuple[int, float], ...] | None:
    """`240/60,1200/3600` -> ((240, 60.0), (1200, 3600.0)); `off` (or empty) -> None."""
    text = text.strip()
    if text.lower() in ("", "off", "none"):
        return None
    windows = []
    for part in text.split(","):
        limit, sep, seconds = part.strip().partition("/")
        if not sep:
            raise ValueError(f"rate limit {part!r} is not REQUESTS/SECONDS")
        windows.append((int(limit), float(seconds)))
    return tuple(windows)


def parse_faults(text: str, *, seed: int = 1, slow_s: float = 5.0) -> FaultConfig | None:
    """`0.1` (every kind) or `0.1:5xx,drop` (rate and kinds); `0`/`off` -> None."""
    text = text.strip()
    if text.lower() in ("", "off", "none"):
        return None
    rate_text, _, kinds_text = text.partition(":")
    rate = float(rate_text)
    if rate == 0:
        return None
    kinds = tuple(kind.strip() for kind in kinds_text.split(",") if kind.strip()) or FAULT_KINDS
    return FaultConfig(rate=rate, kinds=kinds, seed=seed, slow_s=slow_s)


def _projects(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = EmulatorConfig()
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free port)")
    parser.add_argument("--api-key", default=defaults.api_key, help="the personal API key to accept")
    parser.add_argument("--insights", type=int, default=defaults.insights, help="insights per project")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of all synthetic data")
    parser.add_argument("--projects", type=_projects, default=defaults.projects, help="project ids, e.g. 1,2")
    parser.add_argument("--points", type=int, default=defaults.points, help="points per trend series")
    parser.add_argument(
        "--rate-limit",
        type=parse_rate_limits,
        default=None,
        help="sliding windows per key, e.g. 240/60,1200/3600 (10/5 = at most 10 requests in any 5 s); off",
    )
    parser.add_argument(
        "--other-rate-limit",
        type=parse_rate_limits,
        default=None,
        help="the other endpoints' windows (dashboards, sharing), PostHog's 480/60,4800/3600; off",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every request")
    parser.add_argument(
        "--faults",
        type=parse_faults,
        default=None,
        help="fault rate and kinds, e.g. 0.1 or 0.1:5xx,truncate,drop,slow",
    )
    parser.add_argument(
        "--async-delay", type=float, default=defaults.async_delay_s, help="seconds an async job takes"
    )
    parser.add_argument(
        "--org-concurrency",
        type=int,
        default=defaults.org_concurrency,
        help="synchronous calculations the organisation may run at once (PostHog: 10)",
    )
    parser.add_argument(
        "--background-calcs",
        type=int,
        default=defaults.background_calcs,
        help="of those slots, how many the organisation's own users always hold",
    )
    parser.add_argument(
        "--calc-ms",
        type=float,
        default=defaults.calc_ms,
        help="wall time one synchronous calculation holds its slot, in milliseconds",
    )
    parser.add_argument(
        "--no-stale-invalidation",
        dest="stale_invalidation",
        action="store_false",
        help="PostHog Cloud's stale-cache invalidation flag off: nothing is ever stale",
    )
    parser.add_argument(
        "--fresh-share",
        type=float,
        default=defaults.fresh_share,
        help="share of insights seeded with a fresh cached result",
    )
    parser.add_argument(
        "--stale-share",
        type=float,
        default=defaults.stale_share,
        help="share seeded with a stale one (past their interval's threshold); the rest uncached",
    )
    parser.add_argument(
        "--error-share",
        type=float,
        default=defaults.error_share,
        help="share of insights whose calculations fail",
    )
    parser.add_argument(
        "--other-intervals-share",
        type=float,
        default=defaults.other_intervals_share,
        help="share of time series seeded with an hour, week or month interval instead of day",
    )
    parser.add_argument(
        "--fixed-range-share",
        type=float,
        default=defaults.fixed_range_share,
        help="share of insights seeded with a fixed date range in the past",
    )
    parser.add_argument(
        "--other-kinds-share",
        type=float,
        default=defaults.other_kinds_share,
        help="share of insights seeded as the less common result kinds; 0 = only the classic kinds",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        api_key=args.api_key,
        projects=tuple(args.projects),
        insights=args.insights,
        seed=args.seed,
        points=args.points,
        fresh_share=args.fresh_share,
        stale_share=args.stale_share,
        error_share=args.error_share,
        rate_limits=args.rate_limit,
        other_rate_limits=args.other_rate_limit,
        latency_ms=args.latency_ms,
        faults=args.faults,
        async_delay_s=args.async_delay,
        org_concurrency=args.org_concurrency,
        background_calcs=args.background_calcs,
        calc_ms=args.calc_ms,
        stale_invalidation=args.stale_invalidation,
        other_intervals_share=args.other_intervals_share,
        fixed_range_share=args.fixed_range_share,
        other_kinds_share=args.other_kinds_share,
        port=args.port,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print the base URL and the key first."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signals can only be caught there
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = Emulator(config)
    try:
        try:
            base_url = emulator.start()
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(base_url, flush=True)
        print(config.api_key, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="posthog-emulator", description="A local PostHog Insights API for tests and demos."
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
