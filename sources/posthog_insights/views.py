"""`<table>_latest` views: each insight's newest state, recreated after every load.

`insight_results_latest` is each insight's most recent outcome of any status; every tidy `_latest` view
holds the rows of the insight's newest `ok` snapshot (highest `last_refresh`), so an insight whose latest
attempt failed still shows its last good numbers. Plain SQL that DuckDB, PostgreSQL and the warehouse
destinations all accept.
"""

from __future__ import annotations

from typing import Any

from dlt.destinations.job_client_impl import SqlJobClientBase

from posthog_insights import tables


def latest_view_sql(qualify: Any, existing: set[str]) -> list[tuple[str, str]]:
    """(view name, CREATE statement) for every table that exists; `qualify(name)` quotes and qualifies."""
    results = qualify(tables.RESULTS)
    statements: list[tuple[str, str]] = []
    if tables.RESULTS not in existing:
        return statements
    view = f"{tables.RESULTS}_latest"
    statements.append(
        (
            view,
            f"CREATE OR REPLACE VIEW {qualify(view)} AS "
            f"SELECT r.* FROM {results} r JOIN ("
            f"SELECT project_id, insight_id, variant, MAX(seen_at) AS seen_at FROM {results} "
            f"GROUP BY project_id, insight_id, variant) n "
            f"ON r.project_id = n.project_id AND r.insight_id = n.insight_id "
            f"AND r.variant = n.variant AND r.seen_at = n.seen_at",
        )
    )
    newest_ok = (
        f"SELECT project_id, insight_id, variant, MAX(snapshot) AS snapshot FROM {results} "
        f"WHERE status = '{tables.STATUS_OK}' GROUP BY project_id, insight_id, variant"
    )
    for table in tables.TIDY:
        if table not in existing:
            continue
        view = f"{table}_latest"
        statements.append(
            (
                view,
                f"CREATE OR REPLACE VIEW {qualify(view)} AS "
                f"SELECT t.* FROM {qualify(table)} t JOIN ({newest_ok}) n "
                f"ON t.project_id = n.project_id AND t.insight_id = n.insight_id "
                f"AND t.variant = n.variant AND t.snapshot = n.snapshot",
            )
        )
    return statements


def keeps_views(pipeline: Any) -> bool:
    """Whether the pipeline's destination is a SQL database that can keep a view.

    Not the same as having a `sql_client`: the filesystem destination offers one, but it is an in-memory
    DuckDB over the files, so a view made there is gone when the client closes. Every SQL destination's
    job client (DuckDB, PostgreSQL, BigQuery, Snowflake, MotherDuck, ...) derives from `SqlJobClientBase`;
    filesystem, vector stores and custom destinations do not.
    """
    return isinstance(pipeline.destination_client(), SqlJobClientBase)


def create_latest_views(pipeline: Any) -> list[str]:
    """Create or replace the `_latest` views in the pipeline's dataset; returns the view names.

    A destination that cannot keep views (see `keeps_views`) gets none: returns [] without touching it.
    """
    if not keeps_views(pipeline):
        return []
    schema = pipeline.default_schema
    existing = {
        name for name, table in schema.tables.items() if table.get("columns") and not name.startswith("_dlt")
    }
    created: list[str] = []
    with pipeline.sql_client() as client:
        for view, sql in latest_view_sql(client.make_qualified_table_name, existing):
            client.execute_sql(sql)
            created.append(view)
    return created
