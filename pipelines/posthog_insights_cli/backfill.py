"""`posthog-insights backfill`: flags -> `loader.backfill`, then the summary."""

from __future__ import annotations

import argparse
from typing import Any

from posthog_insights_cli.loader import backfill
from posthog_insights_cli.summary import format_summary


def run_backfill(args: argparse.Namespace, source_args: dict[str, Any]) -> int:
    source_args = {
        **source_args,
        "insights": args.insights,
        "date_from": args.date_from,
        "date_to": args.date_to,
        "window": args.window,
    }
    result = backfill(
        pipeline_name=args.pipeline_name,
        dataset_name=args.dataset,
        destination=args.destination,
        pipelines_dir=args.pipelines_dir,
        checkpoint_mb=args.checkpoint_mb,
        **source_args,
    )
    print(format_summary(result), flush=True)
    return 0 if result.complete else 1
