"""`posthog-insights` command line: run, backfill, show, demo, emulator.

Errors are one line naming the setting or HTTP status and what to do; `--debug` shows the traceback.
Exit codes: 0 every insight got an outcome; 1 some could not be fetched (what was fetched is loaded);
2 bad input; 3 the run failed and loaded nothing new.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from posthog_insights.config import BackfillSettings, PostHogInsightsSettings, settings_fields
from posthog_insights.errors import ConfigError, PostHogInsightsError, exception_chain

EXIT_OK, EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_FAILED = 0, 1, 2, 3
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
        help="load a package every this many MB of data (default 64; 0: only while the run waits)",
    )


def _add_settings_arguments(
    parser: argparse.ArgumentParser, spec: type[PostHogInsightsSettings], required: tuple[str, ...] = ()
) -> None:
    """A flag per setting of `spec` that has one (config.py carries each flag and its help)."""
    for field in settings_fields(spec):
        flag = field.metadata["flag"]
        if flag is None or (spec is BackfillSettings and field.metadata["listing"]):
            continue
        options = dict(field.metadata["cli"])
        options.setdefault("default", None)  # not given: dlt's configuration decides
        parser.add_argument(
            flag, dest=field.name, help=field.metadata["help"], required=field.name in required, **options
        )


def _source_args(args: argparse.Namespace, spec: type[PostHogInsightsSettings]) -> dict[str, Any]:
    """Only what was given on the command line; the rest is resolved by dlt's config providers."""
    given = {
        field.name: getattr(args, field.name)
        for field in settings_fields(spec)
        if getattr(args, field.name, None) is not None
    }
    key = os.environ.get(KEY_ENV)
    if key:
        given["personal_api_key"] = key
    return given


def _cmd_run(args: argparse.Namespace) -> int:
    from posthog_insights_cli.loader import load

    return _load(args, load, PostHogInsightsSettings)


def _cmd_backfill(args: argparse.Namespace) -> int:
    from posthog_insights_cli.loader import backfill

    return _load(args, backfill, BackfillSettings)


def _load(args: argparse.Namespace, loader: Callable[..., Any], spec: type[PostHogInsightsSettings]) -> int:
    from posthog_insights_cli.summary import format_summary

    result = loader(
        pipeline_name=args.pipeline_name,
        dataset_name=args.dataset,
        destination=args.destination,
        pipelines_dir=args.pipelines_dir,
        **({} if args.checkpoint_mb is None else {"checkpoint_mb": args.checkpoint_mb}),
        **_source_args(args, spec),
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
    _add_settings_arguments(run, PostHogInsightsSettings)
    _add_load_arguments(run)
    run.set_defaults(handler=_cmd_run)

    backfill = commands.add_parser(
        "backfill",
        help="recompute insights (--insight, or every insight on a --dashboard) over past date windows,"
        " each window kept as its own snapshot",
    )
    # --insight or --dashboard: a backfill with neither is a one-line error from the settings' check
    _add_settings_arguments(backfill, BackfillSettings, required=("project_ids", "date_from", "date_to"))
    _add_load_arguments(backfill)
    backfill.set_defaults(handler=_cmd_backfill)

    show = commands.add_parser(
        "show", help="render an insight's (or a dashboard's) latest snapshot from the warehouse as a PNG"
    )
    show.add_argument("insight", nargs="?", help="insight id or short id")
    show.add_argument("--dashboard", type=int, help="render every insight on this dashboard as one grid")
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
    """DuckDB hitting its memory limit while loading: name the setting that raises it."""
    if not any("Out of Memory Error" in str(current) for current in exception_chain(exc)):
        return None
    return (
        "DuckDB ran out of its memory limit while loading; raise it in dlt's configuration,"
        ' e.g. DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG=\'{"memory_limit": "4GB"}\','
        " and run again: the next run finishes the pending load first"
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
    """The `posthog-insights` executable."""
    return main()


if __name__ == "__main__":
    raise SystemExit(program())
