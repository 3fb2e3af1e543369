"""`posthog-insights` command line: run, backfill, show, demo, emulator.

Errors are one line naming the setting or HTTP status and what to do; `--debug` shows the traceback.
Exit codes: 0 every insight got an outcome; 1 some could not be fetched (what was fetched is loaded);
2 bad input; 3 the run failed and loaded nothing new.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from posthog_insights import settings
from posthog_insights.errors import ConfigError, PostHogInsightsError, exception_chain

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_FAILED = 0, 1, 2, 3
LOADING_COMMANDS = ("run", "backfill")
KEY_ENV = "POSTHOG_PERSONAL_API_KEY"


def _add_destination_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--destination", default="duckdb", help="dlt destination name (default duckdb)")
    parser.add_argument("--dataset", default="posthog_insights", help="dataset (schema) name")
    parser.add_argument("--pipeline-name", default="posthog_insights")
    parser.add_argument("--pipelines-dir", help="where dlt keeps pipeline state (default ~/.dlt/pipelines)")


def _add_load_arguments(parser: argparse.ArgumentParser) -> None:
    _add_destination_arguments(parser)
    parser.add_argument(
        "--checkpoint-mb",
        type=float,
        help="also load a package every this many MB (default: only while the rate limit idles the run)",
    )


def _add_request_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", help=f"PostHog API host (default {settings.DEFAULT_HOST}; EU: https://eu.posthog.com)"
    )
    parser.add_argument("--refresh", choices=settings.REFRESH_MODES, help="refresh mode (default blocking)")
    parser.add_argument("--from-dashboard", type=int, help="results as this dashboard shows them")
    parser.add_argument("--rate-limit", help="client-side windows, e.g. 240/60,1200/3600 (default); off")
    parser.add_argument("--concurrency", type=int)
    parser.add_argument(
        "--max-requests", type=int, help="request budget for this run; the rest goes next run"
    )
    parser.add_argument("--max-wait", type=float, dest="max_wait_s", help="longest 429 wait sat through (s)")
    parser.add_argument("--poll-deadline", type=float, dest="poll_deadline_s", help="async job deadline (s)")
    parser.add_argument("--timeout", type=float, dest="timeout_s", help="per-request timeout (s)")
    parser.add_argument("--max-retries", type=int)
    parser.add_argument(
        "--retry-errors-after",
        type=float,
        dest="retry_errors_after_s",
        help="seconds before an insight that failed to calculate is retried (default 1800; 0: every run)",
    )
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=None,
        help="allow http:// to a host that is not loopback (the key would travel in clear text)",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-id", action="append", dest="project_ids", help="project id; repeat for several"
    )
    _add_request_arguments(parser)
    _add_load_arguments(parser)
    parser.add_argument("--page-size", type=int)
    parser.add_argument(
        "--kind", action="append", dest="kinds", help="only insights of this kind (TRENDS, ...)"
    )
    parser.add_argument("--tag", action="append", dest="tags", help="only insights with this tag")
    parser.add_argument(
        "--dashboard", action="append", dest="dashboards", help="only insights on this dashboard"
    )
    parser.add_argument("--short-id", action="append", dest="short_ids", help="only this insight")
    parser.add_argument("--saved", choices=("true", "false"))
    parser.add_argument(
        "--activity",
        action="store_true",
        default=None,
        dest="include_activity",
        help="also load insight_activity (needs the activity_log:read scope)",
    )


def _source_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only what was given on the command line; the rest is resolved by dlt's config providers."""
    names = (
        "host",
        "project_ids",
        "refresh",
        "page_size",
        "kinds",
        "tags",
        "dashboards",
        "short_ids",
        "saved",
        "from_dashboard",
        "rate_limit",
        "concurrency",
        "max_requests",
        "max_wait_s",
        "poll_deadline_s",
        "timeout_s",
        "max_retries",
        "allow_insecure_http",
        "include_activity",
        "retry_errors_after_s",
    )
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    key = os.environ.get(KEY_ENV)
    if key:
        given["personal_api_key"] = key
    return given


def _cmd_run(args: argparse.Namespace) -> int:
    from posthog_insights_cli.loader import load
    from posthog_insights_cli.summary import format_summary

    result = load(
        pipeline_name=args.pipeline_name,
        dataset_name=args.dataset,
        destination=args.destination,
        pipelines_dir=args.pipelines_dir,
        checkpoint_mb=args.checkpoint_mb,
        **_source_args(args),
    )
    print(format_summary(result), flush=True)
    if not result.complete:
        # The summary (stdout) lists everything; a scheduler's error log gets the reason in one line.
        print(f"posthog-insights: error: {_incomplete_message(result.report)}", file=sys.stderr, flush=True)
    return EXIT_OK if result.complete else EXIT_INCOMPLETE


def _incomplete_message(report: Any) -> str:
    reasons = [*([report.stopped_early] if report.stopped_early else []), *report.unfetched]
    if not reasons:
        return "the run did not finish; re-run it"
    more = f" (and {len(reasons) - 1} more, listed in the summary)" if len(reasons) > 1 else ""
    kept = "" if report.stopped_early else "; what was fetched is loaded, the next run retries the rest"
    return f"{reasons[0]}{more}{kept}"


def _cmd_backfill(args: argparse.Namespace) -> int:
    from posthog_insights_cli.backfill import run_backfill

    return int(run_backfill(args, _source_args(args)))


def _cmd_show(args: argparse.Namespace) -> int:
    from posthog_insights_cli.show import run_show

    return int(run_show(args))


def _cmd_demo(args: argparse.Namespace) -> int:
    from posthog_insights_cli.demo import run_demo

    return run_demo(insights=args.insights, seed=args.seed, pipelines_dir=args.pipelines_dir)


def _cmd_emulator(args: argparse.Namespace) -> int:
    from posthog_emulator.cli import run

    return int(run(args))


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_BAD_INPUT, f"posthog-insights: error: {' '.join(message.split())}; see {self.prog} --help\n"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="posthog-insights", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="load insights and their results into a destination")
    _add_run_arguments(run)
    run.set_defaults(handler=_cmd_run)

    backfill = commands.add_parser(
        "backfill", help="recompute insights over past date windows, each window kept as its own snapshot"
    )
    backfill.add_argument("--project-id", action="append", dest="project_ids", required=True)
    backfill.add_argument("--insight", action="append", dest="insights", required=True, help="id or short id")
    backfill.add_argument("--from", dest="date_from", required=True, help="first day, YYYY-MM-DD")
    backfill.add_argument("--to", dest="date_to", required=True, help="last day, YYYY-MM-DD")
    backfill.add_argument("--window", choices=("day", "week", "month"), default="week")
    _add_request_arguments(backfill)
    _add_load_arguments(backfill)
    backfill.set_defaults(handler=_cmd_backfill)

    show = commands.add_parser("show", help="render an insight's latest snapshot from the warehouse as a PNG")
    show.add_argument("insight", help="insight id or short id")
    show.add_argument("--project-id", type=int, help="needed when several projects hold the id")
    show.add_argument("--output", "-o", help="PNG path (default insight-<id>.png)")
    _add_destination_arguments(show)
    show.set_defaults(handler=_cmd_show)

    demo = commands.add_parser(
        "demo", help="emulator -> pipeline -> DuckDB in the current directory, then a summary"
    )
    demo.add_argument("--insights", type=int, default=300)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--pipelines-dir", default=".posthog-insights-demo")
    demo.set_defaults(handler=_cmd_demo)

    from posthog_emulator.cli import add_arguments

    emulator = commands.add_parser("emulator", help="serve a local PostHog Insights API emulator")
    add_arguments(emulator)
    emulator.set_defaults(handler=_cmd_emulator)
    return parser


def _one_line(exc: BaseException) -> str:
    """The innermost error we own, else the exception's own first line."""
    for current in exception_chain(exc):
        if isinstance(current, PostHogInsightsError):
            return str(current)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''} (rerun with --debug for details)"


def _is_bad_input(exc: BaseException) -> bool:
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    return any(isinstance(c, (ConfigError, ConfigFieldMissingException)) for c in exception_chain(exc))


def _missing_config_message(exc: BaseException) -> str | None:
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    for current in exception_chain(exc):
        if isinstance(current, ConfigFieldMissingException):
            fields = set(current.fields)
            if "personal_api_key" in fields:
                return (
                    f"personal_api_key: missing; set {KEY_ENV} or personal_api_key under "
                    "[sources.posthog_insights] in .dlt/secrets.toml"
                )
            if "project_ids" in fields:
                return (
                    "project_id: missing; pass --project-id ID or set SOURCES__POSTHOG_INSIGHTS__PROJECT_IDS"
                )
            return f"missing setting(s): {', '.join(sorted(fields))}"
    return None


def _duckdb_memory_message(exc: BaseException) -> str | None:
    """DuckDB hitting the loader's memory cap: name the setting that raises it."""
    from posthog_insights_cli.duckdb_target import (
        DEFAULT_DUCKDB_MEMORY_LIMIT,
        DUCKDB_MEMORY_LIMIT_ENV,
        is_out_of_memory,
    )

    if not is_out_of_memory(exc):
        return None
    limit = os.environ.get(DUCKDB_MEMORY_LIMIT_ENV) or (
        f"automatic ({DEFAULT_DUCKDB_MEMORY_LIMIT}, doubled up to half the machine's memory)"
    )
    return (
        f"DuckDB ran out of its {limit} memory limit while loading; set {DUCKDB_MEMORY_LIMIT_ENV} "
        "higher (e.g. 1GB) and run again: the next run finishes the pending load first"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("posthog_insights").setLevel(logging.DEBUG if args.debug else logging.INFO)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("posthog-insights: interrupted; the next run picks up from the last good load", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if args.debug:
            raise
        message = _missing_config_message(exc) or _duckdb_memory_message(exc) or _one_line(exc)
        print(f"posthog-insights: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT if _is_bad_input(exc) else EXIT_FAILED


def program() -> int:
    """The `posthog-insights` executable: `main` in a process of its own. A command that loads runs in a
    process kept small (process_memory.lean_loading_process); `main` called from Python leaves the
    caller's process as it is."""
    from posthog_insights_cli.process_memory import lean_loading_process

    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    loads = command in LOADING_COMMANDS
    with lean_loading_process() if loads else contextlib.nullcontext():
        return main()


if __name__ == "__main__":
    raise SystemExit(program())
