"""`posthog-insights demo`: emulator -> pipeline -> DuckDB, then a summary and a few analyst queries.

Everything runs locally: the emulator serves a realistic project over HTTP on 127.0.0.1, the real source
loads it under the default `blocking` mode with the default pacer, and the answers are read back through
`pipeline.dataset()` as pandas DataFrames, the way an analyst would.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from posthog_emulator import Emulator, EmulatorConfig
from posthog_insights_cli.analyst import query
from posthog_insights_cli.loader import duckdb_path, load, make_pipeline
from posthog_insights_cli.summary import format_summary

DEMO_PIPELINE = "posthog_insights_demo"
DEMO_KEY = "phx_demo_emulator_key"

_NAME = "COALESCE(NULLIF(i.name, ''), i.derived_name) AS insight"
EXAMPLE_QUERIES: list[tuple[str, str]] = [
    (
        "Each insight's latest outcome, by kind",
        "SELECT i.kind, r.status, COUNT(*) AS insights "
        "FROM insight_results_latest r "
        "JOIN insights i ON i.project_id = r.project_id AND i.id = r.insight_id "
        "GROUP BY i.kind, r.status ORDER BY i.kind, r.status",
    ),
    (
        "Busiest trend series over their latest snapshot",
        f"SELECT {_NAME}, t.series_label, SUM(t.value) AS total, COUNT(*) AS points "
        "FROM trend_points_latest t "
        "JOIN insights i ON i.project_id = t.project_id AND i.id = t.insight_id "
        "WHERE i.kind = 'trends' AND NOT t.is_aggregate "
        "GROUP BY 1, t.series_label ORDER BY total DESC LIMIT 5",
    ),
    (
        "Funnel conversion, first to last step (no breakdown)",
        f"SELECT {_NAME}, MIN(f.step_order) AS first_step, MAX(f.step_order) AS last_step, "
        "ROUND(100.0 * MIN(f.count) / NULLIF(MAX(f.count), 0), 1) AS conversion_pct "
        "FROM funnel_steps_latest f "
        "JOIN insights i ON i.project_id = f.project_id AND i.id = f.insight_id "
        "WHERE f.breakdown_index = 0 GROUP BY 1 ORDER BY conversion_pct DESC LIMIT 5",
    ),
]


def run_demo(insights: int = 300, seed: int = 42, pipelines_dir: str = ".posthog-insights-demo") -> int:
    workdir = Path.cwd()
    for leftover in (workdir / pipelines_dir, Path(duckdb_path(DEMO_PIPELINE))):
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
    limits = ((240, 60.0), (1200, 3600.0))
    config = EmulatorConfig(api_key=DEMO_KEY, projects=(1,), insights=insights, seed=seed, rate_limits=limits)
    with Emulator(config) as emulator:
        print(f"emulator: PostHog Insights API at {emulator.base_url}")
        print(f"          {insights} insights of every kind, PostHog's rate limits (240/min, 1200/h)")
        pipeline = make_pipeline(
            DEMO_PIPELINE, "posthog_insights", "duckdb", str(workdir / pipelines_dir), progress=None
        )
        result = load(
            pipeline=pipeline,
            host=emulator.base_url,
            project_ids=[1],
            personal_api_key=DEMO_KEY,
            refresh="blocking",
        )
    print(format_summary(result))
    print(f"\nDuckDB file: {duckdb_path(DEMO_PIPELINE)}  (dataset posthog_insights)")
    with pd.option_context("display.width", 140, "display.max_columns", 10, "display.max_colwidth", 40):
        for title, sql in EXAMPLE_QUERIES:
            frame = query(sql, pipeline)
            print(f"\n-- {title}\n{sql}\n{frame.to_string(index=False)}")
    return 0 if result.complete else 1
