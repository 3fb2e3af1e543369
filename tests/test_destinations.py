"""One emulator project into DuckDB, PostgreSQL and parquet files: the same rows everywhere.

All loads read one emulator with `refresh="force_cache"`, so they see the same cached results and no
insight is recomputed between them. Columns that legitimately differ between two runs are left out of
the comparison: `_dlt_load_id`, `_dlt_id`, `seen_at`, and the `snapshot` of an outcome without a result
(cache_miss, error), which is the time it was seen.

PostgreSQL is a real server: `POSTHOG_INSIGHTS_TEST_PG` (exported by `.ci/postgres`, which `.ci/run`
sources). Without it the PostgreSQL tests fail under CI and are skipped elsewhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import duckdb
import psycopg2
import pytest

from posthog_emulator import Emulator, EmulatorConfig
from posthog_insights import posthog_insights_source, tables
from posthog_insights.views import create_latest_views, latest_view_sql
from posthog_insights_cli.loader import LoadResult, load
from tests.conftest import TEST_KEY

PG_ENV = "POSTHOG_INSIGHTS_TEST_PG"
DATA_TABLES = (tables.INSIGHTS, tables.RESULTS, *tables.TIDY)
VIEWS = (f"{tables.RESULTS}_latest", *(f"{t}_latest" for t in tables.TIDY))
IGNORED = frozenset({"_dlt_load_id", "_dlt_id", "seen_at"})
Row = tuple[Any, ...]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _pg_url() -> str:
    """The test server's URL; a missing one fails the test in CI and skips it elsewhere."""
    url = os.environ.get(PG_ENV)
    if url:
        return url
    message = f"{PG_ENV} is not set: `bash .ci/postgres` starts a local server and prints the export line"
    if _in_ci():
        pytest.fail(f"{message} (.ci/run sources it; did it fail?)", pytrace=False)
    pytest.skip(message)


def _source_args(emulator: Emulator) -> dict[str, Any]:
    return {
        "host": emulator.base_url,
        "project_ids": [1, 2],
        "personal_api_key": TEST_KEY,
        "rate_limit": "off",
        "retry_backoff_s": 0.01,
        "refresh": "force_cache",
    }


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        return aware.astimezone(timezone.utc)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _comparable(
    columns: list[str], rows: list[Row], empty_is_null: bool = False
) -> tuple[list[str], list[Row]]:
    """Rows without the ignored columns, values normalised, `snapshot` blanked where it is a seen-time.

    `empty_is_null` reads '' as NULL: dlt loads Arrow tables into PostgreSQL as CSV through COPY with
    FORCE_NULL on every nullable column, so an empty string arrives as NULL there (see the tests)."""
    keep = [i for i, c in enumerate(columns) if c not in IGNORED]
    names = [columns[i] for i in keep]
    status = names.index("status") if "snapshot" in names and "status" in names else None
    snapshot = names.index("snapshot") if status is not None else None
    out: list[Row] = []
    for row in rows:
        values = [_norm(row[i]) for i in keep]
        if empty_is_null:
            values = [None if v == "" else v for v in values]
        if status is not None and snapshot is not None and values[status] != tables.STATUS_OK:
            values[snapshot] = None
        out.append(tuple(values))
    return names, sorted(out, key=repr)


def _assert_same(what: str, expected: tuple[list[str], list[Row]], got: tuple[list[str], list[Row]]) -> None:
    assert sorted(got[0]) == sorted(expected[0]), f"{what}: columns differ"
    order = [got[0].index(c) for c in expected[0]]
    got_rows = sorted((tuple(r[i] for i in order) for r in got[1]), key=repr)
    if got_rows != expected[1]:
        missing = Counter(expected[1]) - Counter(got_rows)
        extra = Counter(got_rows) - Counter(expected[1])
        pytest.fail(
            f"{what}: {len(expected[1])} rows expected, {len(got_rows)} got; "
            f"missing e.g. {list(missing)[:2]}; unexpected e.g. {list(extra)[:2]}",
            pytrace=False,
        )


class DuckSide:
    """The reference load: a DuckDB file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self, relation: str, empty_is_null: bool = False) -> tuple[list[str], list[Row]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            cursor = con.execute(f'SELECT * FROM posthog_insights."{relation}"')
            columns = [d[0] for d in cursor.description]
            return _comparable(columns, cursor.fetchall(), empty_is_null)

    def count_where(self, table: str, condition: str) -> int:
        with duckdb.connect(str(self.path), read_only=True) as con:
            row = con.execute(f'SELECT COUNT(*) FROM posthog_insights."{table}" WHERE {condition}').fetchone()
            return int(row[0]) if row else 0


@dataclass
class Reference:
    emulator: Emulator
    duck: DuckSide
    result: LoadResult


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """One emulator (every kind, fresh / stale / missing caches, some errors, two projects), loaded once
    into DuckDB; the other destinations load the same emulator and are compared with it."""
    root = tmp_path_factory.mktemp("destinations")
    emulator = Emulator(
        EmulatorConfig(
            api_key=TEST_KEY, projects=(1, 2), insights=40, seed=11, error_share=0.1, dashboards_per_project=2
        )
    )
    emulator.start()
    try:
        path = root / "reference.duckdb"
        pipeline = dlt.pipeline(
            pipeline_name="phi_reference",
            destination=dlt.destinations.duckdb(str(path)),
            dataset_name="posthog_insights",
            pipelines_dir=str(root / "pipelines"),
        )
        result = load(pipeline=pipeline, **_source_args(emulator))
        assert result.complete
        assert sorted(result.views) == sorted(VIEWS)
        yield Reference(emulator, DuckSide(path), result)
    finally:
        emulator.stop()


# --- PostgreSQL --------------------------------------------------------------------------------------


class PgSide:
    def __init__(self, url: str, dataset: str) -> None:
        self.url = url
        self.dataset = dataset

    def query(self, sql: str, *params: Any) -> tuple[list[str], list[Row]]:
        with psycopg2.connect(self.url) as con, con.cursor() as cursor:
            cursor.execute(sql, params)
            return [d[0] for d in cursor.description], cursor.fetchall()

    def read(self, relation: str, empty_is_null: bool = False) -> tuple[list[str], list[Row]]:
        return _comparable(*self.query(f'SELECT * FROM "{self.dataset}"."{relation}"'), empty_is_null)

    def names(self, kind: str) -> set[str]:
        catalog = "views" if kind == "view" else "tables"
        extra = "" if kind == "view" else " AND table_type = 'BASE TABLE'"
        _, rows = self.query(
            f"SELECT table_name FROM information_schema.{catalog} WHERE table_schema = %s{extra}",
            self.dataset,
        )
        return {r[0] for r in rows}

    def drop(self) -> None:
        with psycopg2.connect(self.url) as con, con.cursor() as cursor:
            for schema in (self.dataset, f"{self.dataset}_staging"):  # merge stages rows in the second
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def postgres(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], PgSide]]:
    """A fresh dataset on the test server, dropped afterwards. Made inside the test, so that a missing
    server fails the test itself (not its setup) under CI."""
    made: list[PgSide] = []

    def make() -> PgSide:
        url = _pg_url()
        # configured the way a user would: dlt's own variable, read when destination="postgres"
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", url)
        made.append(PgSide(url, f"phi_test_{uuid.uuid4().hex[:10]}"))  # `pg_` names are reserved
        return made[-1]

    yield make
    for side in made:
        side.drop()


def _load_postgres(reference: Reference, side: PgSide, tmp_path: Path) -> LoadResult:
    return load(
        destination="postgres",
        pipeline_name="phi_pg",
        dataset_name=side.dataset,
        pipelines_dir=str(tmp_path / "pipelines"),
        progress=None,  # "log" warns that psutil is missing, and warnings are errors here
        **_source_args(reference.emulator),
    )


def _assert_pg_matches(reference: Reference, side: PgSide, empty_is_null: bool) -> None:
    assert side.names("table") >= set(DATA_TABLES)
    for table in DATA_TABLES:
        _assert_same(table, reference.duck.read(table, empty_is_null), side.read(table, empty_is_null))
    assert side.names("view") == set(VIEWS)
    for view in VIEWS:
        expected = reference.duck.read(view, empty_is_null)
        assert expected[1], f"{view} is empty in DuckDB: the comparison would prove nothing"
        _assert_same(view, expected, side.read(view, empty_is_null))


@pytest.mark.postgres
def test_load_into_postgres_matches_duckdb_and_reruns_without_duplicates(
    reference: Reference, postgres: Callable[[], PgSide], tmp_path: Path
) -> None:
    """`load(destination="postgres")` configured by DESTINATION__POSTGRES__CREDENTIALS, as the CLI does."""
    pg_side = postgres()
    result = _load_postgres(reference, pg_side, tmp_path)
    assert result.complete
    assert result.row_counts == reference.result.row_counts
    assert sorted(result.views) == sorted(VIEWS)
    _assert_pg_matches(reference, pg_side, empty_is_null=True)

    # the one difference: dlt's CSV path for Arrow tables turns '' into NULL in nullable columns
    assert reference.duck.count_where("insights", "description = ''") > 0
    _, empty = pg_side.query(f'SELECT COUNT(*) FROM "{pg_side.dataset}".insights WHERE description = %s', "")
    assert empty[0][0] == 0

    # what lands: timestamps stay timezone-aware, JSON stays text (cast with ::jsonb to query it)
    _, types = pg_side.query(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
        "AND column_name IN ('snapshot', 'query_json', 'result_json', 'row')",
        pg_side.dataset,
    )
    assert {(t, c): d for t, c, d in types}.items() >= {
        ("insight_results", "snapshot"): "timestamp with time zone",
        ("insights", "query_json"): "character varying",
        ("insight_results", "result_json"): "character varying",
        ("sql_rows", "row"): "character varying",
    }.items()
    _, parsed = pg_side.query(
        f'SELECT COUNT(*) FROM "{pg_side.dataset}".sql_rows_latest WHERE jsonb_typeof("row"::jsonb) = %s',
        "object",
    )
    assert parsed[0][0] == len(reference.duck.read("sql_rows_latest")[1]) > 0

    # a second run: merge keys hold, nothing is duplicated, the views are replaced
    counts = {t: len(pg_side.read(t)[1]) for t in DATA_TABLES}
    again = _load_postgres(reference, pg_side, tmp_path)
    assert again.complete
    assert again.row_counts == {}
    assert sorted(again.views) == sorted(VIEWS)
    assert {t: len(pg_side.read(t)[1]) for t in DATA_TABLES} == counts


@pytest.mark.postgres
def test_postgres_with_insert_values_is_exact(
    reference: Reference, postgres: Callable[[], PgSide], tmp_path: Path
) -> None:
    """Loaded as INSERT statements instead of CSV, the empty strings survive: every value as in DuckDB.
    Every table is a resource of its own, so the format given to `run` reaches them all."""
    pg_side = postgres()
    pipeline = dlt.pipeline(
        pipeline_name="phi_pg_exact",
        destination="postgres",
        dataset_name=pg_side.dataset,
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    source = posthog_insights_source(**_source_args(reference.emulator))
    info = pipeline.run(source, loader_file_format="insert_values")
    formats = {
        (j.job_file_info.table_name, j.job_file_info.file_format)
        for p in info.load_packages
        for j in p.jobs["completed_jobs"]
    }
    assert {t for t, f in formats if f == "insert_values"} >= set(DATA_TABLES), formats
    assert not {f for f in formats if f[1] == "csv"}, formats
    assert sorted(create_latest_views(pipeline)) == sorted(VIEWS)
    _assert_pg_matches(reference, pg_side, empty_is_null=False)


# --- filesystem (parquet) ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LoadResult]:
    root = tmp_path_factory.mktemp("lake")
    bucket = root / "bucket"
    pipeline = dlt.pipeline(
        pipeline_name="phi_lake",
        # parquet explicitly (the filesystem destination prefers jsonl; Arrow tables go as parquet anyway)
        destination=dlt.destinations.filesystem(
            bucket_url=str(bucket), preferred_loader_file_format="parquet"
        ),
        dataset_name="posthog_insights",
        pipelines_dir=str(root / "pipelines"),
    )
    result = load(pipeline=pipeline, **_source_args(reference.emulator))
    return bucket / "posthog_insights", result


def _parquet(folder: Path, table: str) -> str:
    return f"read_parquet('{folder / table}/*.parquet')"


def test_filesystem_parquet_reads_back_the_same_rows(
    reference: Reference, lake: tuple[Path, LoadResult]
) -> None:
    folder, result = lake
    assert result.complete
    assert result.views == []  # no SQL engine to keep them; see the next test for building them on read
    assert result.row_counts == reference.result.row_counts
    for table in DATA_TABLES:
        files = list((folder / table).iterdir())
        assert files and all(f.suffix == ".parquet" for f in files), (table, files)
        with duckdb.connect() as con:
            cursor = con.execute(f"SELECT * FROM {_parquet(folder, table)}")
            got = _comparable([d[0] for d in cursor.description], cursor.fetchall())
        _assert_same(table, reference.duck.read(table), got)


def test_latest_view_sql_over_parquet_matches_duckdb_views(
    reference: Reference, lake: tuple[Path, LoadResult]
) -> None:
    """The views' own SQL, run by a reader over the parquet files, gives what DuckDB's views give."""
    folder, _ = lake
    with duckdb.connect() as con:
        for table in DATA_TABLES:
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {_parquet(folder, table)}')
        for _, sql in latest_view_sql(lambda name: f'"{name}"', set(DATA_TABLES)):
            con.execute(sql)
        for view in VIEWS:
            cursor = con.execute(f'SELECT * FROM "{view}"')
            got = _comparable([d[0] for d in cursor.description], cursor.fetchall())
            _assert_same(view, reference.duck.read(view), got)


@pytest.mark.postgres
def test_the_command_loads_postgres_the_same(
    reference: Reference, postgres: Callable[[], PgSide], tmp_path: Path
) -> None:
    """`posthog-insights run --destination postgres` in a process of its own loads what `load()` does."""
    pg_side = postgres()
    args = ["run", "--destination", "postgres", "--dataset", pg_side.dataset, "--pipeline-name", "phi_pg_cli"]
    args += ["--host", reference.emulator.base_url, "--project-id", "1", "--project-id", "2"]
    args += ["--refresh", "force_cache", "--rate-limit", "off", "--pipelines-dir", str(tmp_path / "p")]
    done = subprocess.run(
        [sys.executable, "-m", "posthog_insights_cli.main", *args],
        cwd=tmp_path,
        env={**os.environ, "POSTHOG_PERSONAL_API_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _assert_pg_matches(reference, pg_side, empty_is_null=True)
