"""Reading what a chart needs from the warehouse: insights, their latest rows, dashboards.

Only the warehouse is read, never PostHog. Tidy rows come from the `_latest` views (each insight's newest
ok snapshot, the plain retrieve, `variant = ''`), one query per table for all the insights drawn at once,
so a dashboard of thirty insights costs a handful of queries. Views exist only for tables that hold rows,
so the relations present are looked up first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Final

import pandas as pd

from posthog_insights.errors import ConfigError
from posthog_insights_cli.analyst import query
from posthog_insights_cli.charts.model import Insight, Snapshot

# The tidy tables an insight of each kind can have rows in (a funnel: steps, time-to-convert bins or, for
# its historical trends, trend points), with the order rows are read in.
TABLES_BY_KIND: Final[dict[str, tuple[str, ...]]] = {
    "trends": ("trend_points",),
    "stickiness": ("trend_points",),
    "lifecycle": ("trend_points",),
    "funnels": ("funnel_steps", "funnel_conversion_bins", "trend_points"),
    "retention": ("retention_cells",),
    "paths": ("path_edges",),
    "sql": ("sql_rows",),
    "table": ("sql_rows",),
}
ROW_ORDER: Final[dict[str, str]] = {
    "trend_points": "series_index, point_index",
    "funnel_steps": "breakdown_index, step_order",
    "funnel_conversion_bins": "bin_index",
    "retention_cells": "cohort_index, period_index",
    "path_edges": "value DESC, source, target",
    "sql_rows": "row_index",
}
DASHBOARDS: Final = "dashboards"


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def relations(pipeline: Any) -> set[str]:
    """Tables and views of the pipeline's dataset."""
    frame = query(
        "SELECT table_name FROM information_schema.tables "
        f"WHERE table_schema = {_quote(str(pipeline.dataset_name))}",
        pipeline,
    )
    return {str(name) for name in frame["table_name"]}


def find_insight(pipeline: Any, ref: str, project_id: int | None) -> Insight:
    """The insight with id or short id `ref` (in `project_id`, when given)."""
    where = f"id = {int(ref)}" if ref.isdigit() else f"short_id = {_quote(ref)}"
    if project_id is not None:
        where += f" AND project_id = {int(project_id)}"
    rows = query(f"SELECT * FROM insights WHERE {where}", pipeline)
    if rows.empty:
        raise ConfigError(f"insight: {ref!r} is not in the warehouse; run `posthog-insights run` first")
    if len(rows) > 1:
        raise ConfigError(f"insight: {ref!r} exists in several projects; pass --project-id")
    return Insight.from_row(rows.iloc[0].to_dict())


def _members(dashboards_json: Any) -> set[int]:
    try:
        found = json.loads(dashboards_json) if isinstance(dashboards_json, str) else []
    except ValueError:
        return set()
    return {int(item) for item in found if isinstance(item, int)} if isinstance(found, list) else set()


def dashboard_insights(pipeline: Any, dashboard_id: int, project_id: int | None) -> list[Insight]:
    """The insights on a dashboard (its id in `dashboards_json`), not deleted, in id order."""
    where = "deleted = false" + (f" AND project_id = {int(project_id)}" if project_id is not None else "")
    listed = query(f"SELECT project_id, id, dashboards_json FROM insights WHERE {where}", pipeline)
    keys = [
        (int(row.project_id), int(row.id))
        for row in listed.itertuples(index=False)
        if dashboard_id in _members(row.dashboards_json)
    ]
    if not keys:
        return []
    rows = query(f"SELECT * FROM insights WHERE {_keys_sql(keys, 'id')} ORDER BY project_id, id", pipeline)
    return [Insight.from_row(row) for row in rows.to_dict("records")]


def dashboard_title(pipeline: Any, dashboard_id: int, project_ids: Iterable[int], existing: set[str]) -> str:
    """The dashboard's name from the `dashboards` table when the warehouse has one, else "Dashboard <id>"."""
    fallback = f"Dashboard {dashboard_id}"
    if DASHBOARDS not in existing:
        return fallback
    columns = query(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = {_quote(str(pipeline.dataset_name))} AND table_name = '{DASHBOARDS}'",
        pipeline,
    )
    names = set(columns["column_name"])
    if not {"id", "name"} <= names:
        return fallback
    where = f"id = {int(dashboard_id)} AND name IS NOT NULL AND name <> ''"
    projects = sorted(set(project_ids))
    if "project_id" in names and projects:
        where += f" AND project_id IN ({', '.join(str(p) for p in projects)})"
    order = " ORDER BY seen_at DESC" if "seen_at" in names else ""
    rows = query(f"SELECT name FROM {DASHBOARDS} WHERE {where}{order} LIMIT 1", pipeline)
    return str(rows["name"].iloc[0]) if len(rows) else fallback


def _keys_sql(keys: Sequence[tuple[int, int]], id_column: str) -> str:
    by_project: dict[int, list[int]] = {}
    for project, insight in keys:
        by_project.setdefault(project, []).append(insight)
    parts = [
        f"(project_id = {project} AND {id_column} IN ({', '.join(str(i) for i in sorted(ids))}))"
        for project, ids in sorted(by_project.items())
    ]
    return "(" + " OR ".join(parts) + ")"


def snapshots(pipeline: Any, insights: Sequence[Insight]) -> list[Snapshot]:
    """Each insight with its latest rows and its latest attempt's status, in the order given."""
    if not insights:
        return []
    existing = relations(pipeline)
    keys = [(i.project_id, i.id) for i in insights]
    where = _keys_sql(keys, "insight_id") + " AND variant = ''"
    tables: dict[tuple[int, int], dict[str, pd.DataFrame]] = {key: {} for key in keys}
    wanted = sorted({table for i in insights for table in TABLES_BY_KIND.get(i.kind, ())})
    for table in wanted:
        view = f"{table}_latest"
        if view not in existing:
            continue
        rows = query(f"SELECT * FROM {view} WHERE {where} ORDER BY {ROW_ORDER[table]}", pipeline)
        for (project, insight), group in rows.groupby(["project_id", "insight_id"], sort=False):
            tables[(int(project), int(insight))][table] = group.reset_index(drop=True)
    outcomes: dict[tuple[int, int], dict[str, Any]] = {}
    if "insight_results_latest" in existing:
        results = query(
            f"SELECT project_id, insight_id, status, error_message, last_refresh "
            f"FROM insight_results_latest WHERE {where}",
            pipeline,
        )
        for record in results.to_dict("records"):
            outcomes[(int(record["project_id"]), int(record["insight_id"]))] = record
    out = []
    for insight in insights:
        key = (insight.project_id, insight.id)
        outcome = outcomes.get(key, {})
        drawn = [frame for frame in tables[key].values() if len(frame)]
        # when the drawn snapshot was computed (the latest attempt may be a later failure)
        refreshed = drawn[0]["last_refresh"].iloc[0] if drawn else None
        out.append(
            Snapshot(
                insight=insight,
                tables={name: frame for name, frame in tables[key].items() if len(frame)},
                status=_clean(outcome.get("status")),
                error=_clean(outcome.get("error_message")),
                last_refresh=refreshed
                if isinstance(refreshed, pd.Timestamp) and not pd.isna(refreshed)
                else None,
            )
        )
    return out


def _clean(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
