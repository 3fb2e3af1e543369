"""`dashboards`, `dashboard_tiles` and `backfill --dashboard` against the emulator over sockets, into DuckDB:
a row per dashboard, the tiles the emulator holds, deletions kept as `deleted = true`, the requests each
run spends (counted by the emulator and by the client), nothing when not selected, a key without
`dashboard:read`, and every insight on a dashboard backfilled as the dashboard shows it, resumably."""

from __future__ import annotations

import json
from typing import Any

import dlt
import httpx
import pytest

from posthog_insights import posthog_insights_source
from posthog_insights_cli.loader import backfill
from tests.conftest import TEST_KEY, Warehouse, needing_refresh
from tests.tidy_check import check_all_ok_snapshots

FORCE_CACHE = {"refresh": "force_cache"}  # list requests only: no retrieve spends the counts


def _live_tiles(warehouse: Warehouse, project_id: int = 1) -> list[tuple[int, int, int]]:
    rows = warehouse.sql(
        "SELECT tile_id, dashboard_id, insight_id FROM dashboard_tiles WHERE project_id = ? AND NOT deleted "
        "ORDER BY tile_id",
        project_id,
    )
    return [tuple(r) for r in rows]


def _richest(emulator: Any, project_id: int = 1) -> int:
    """The dashboard with the most tiles."""
    store = emulator.store
    return max(
        store.dashboard_ids(project_id),
        key=lambda d: len(store.dashboard(project_id, d)["_emulator"]["tiles"]),
    )


def _on(emulator: Any, dashboard: int, project_id: int = 1) -> list[int]:
    return sorted(i for _, i in emulator.store.dashboard(project_id, dashboard)["_emulator"]["tiles"])


# -- the tables -----------------------------------------------------------------------------------------


def test_a_run_loads_every_dashboard_and_the_tiles_the_emulator_holds(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator(projects=(1, 2), insights=60)
    result = warehouse.load(emulator, project_ids=[1, 2], **FORCE_CACHE)
    assert result.complete, result.report
    store = emulator.store
    for project_id in (1, 2):
        rows = warehouse.sql(
            "SELECT id, name, pinned, tags_json, created_by_email, deleted FROM dashboards "
            "WHERE project_id = ? ORDER BY id",
            project_id,
        )
        expected = [store.dashboard(project_id, d) for d in store.dashboard_ids(project_id)]
        assert [r[0] for r in rows] == [d["id"] for d in expected]
        for row, shown in zip(rows, expected, strict=True):
            assert row[1:] == (
                shown["name"],
                shown["pinned"],
                json.dumps(shown["tags"], separators=(",", ":")),
                shown["created_by"]["email"],
                False,
            )
        assert _live_tiles(warehouse, project_id) == store.dashboard_tiles(project_id)
    # one insights list page and one dashboards list per project; the tiles cost no request at all
    stats = emulator.stats
    assert (stats.kind("list"), stats.kind("dashboards"), stats.kind("dashboard")) == (2, 2, 0)
    assert stats.total == 4
    assert result.report.requests["by_kind"] == {"dashboards": 2, "list": 2}
    # the join analysts make: a dashboard's insights and their latest results
    joined = warehouse.sql(
        "SELECT COUNT(*) FROM dashboards d JOIN dashboard_tiles t ON t.project_id = d.project_id "
        "AND t.dashboard_id = d.id AND NOT t.deleted JOIN insight_results_latest r "
        "ON r.project_id = t.project_id AND r.insight_id = t.insight_id WHERE r.variant = ''"
    )[0][0]
    assert joined == len(store.dashboard_tiles(1)) + len(store.dashboard_tiles(2))


def test_a_rerun_loads_nothing_and_spends_one_dashboards_request(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator()
    warehouse.load(emulator, **FORCE_CACHE)
    emulator.reset_stats()
    again = warehouse.load(emulator, **FORCE_CACHE)
    assert again.row_counts == {}  # unchanged dashboards and tiles are not loaded again
    assert (emulator.stats.kind("list"), emulator.stats.kind("dashboards")) == (1, 1)


def test_hundreds_of_dashboards_are_one_request(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=20, dashboards_per_project=250)
    result = warehouse.load(emulator, **FORCE_CACHE)
    assert result.complete
    assert warehouse.count("dashboards") == 250
    assert emulator.stats.kind("dashboards") == 1  # one page of up to 1000: PostHog's order has ties


def test_a_deleted_dashboard_stays_flagged_with_its_tiles(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator()
    store = emulator.store
    dashboard = _richest(emulator)
    tiles = [t for t in store.dashboard_tiles(1) if t[1] == dashboard]
    warehouse.load(emulator, **FORCE_CACHE)
    store.soft_delete_dashboard(1, dashboard)
    result = warehouse.load(emulator, **FORCE_CACHE)
    assert result.complete
    row = warehouse.sql("SELECT name, deleted FROM dashboards WHERE id = ?", dashboard)
    assert row == [(store.dashboard(1, dashboard)["name"], True)]  # kept whole, flagged
    deleted = warehouse.sql(
        "SELECT tile_id, dashboard_id, insight_id FROM dashboard_tiles WHERE deleted ORDER BY tile_id"
    )
    assert [tuple(r) for r in deleted] == tiles
    assert _live_tiles(warehouse) == store.dashboard_tiles(1)
    # restored in PostHog: the same tiles come back, live
    with httpx.Client(base_url=emulator.base_url, headers={"Authorization": f"Bearer {TEST_KEY}"}) as http:
        http.patch(f"/api/projects/1/dashboards/{dashboard}/", json={"deleted": False})
    warehouse.load(emulator, **FORCE_CACHE)
    assert warehouse.sql("SELECT deleted FROM dashboards WHERE id = ?", dashboard) == [(False,)]
    assert _live_tiles(warehouse) == store.dashboard_tiles(1)
    assert warehouse.count("dashboard_tiles") == len(store.dashboard_tiles(1))  # same tile ids, no new rows


def test_tiles_follow_their_insights(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator()
    store = emulator.store
    warehouse.load(emulator, **FORCE_CACHE)
    before = store.dashboard_tiles(1)
    moved_tile, off, moved = before[0]
    gone = next(i for _, _, i in before if i != moved)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers) as http:
        kept = [d for d in store.insight(1, moved)["dashboards"] if d != off]
        http.patch(f"/api/projects/1/insights/{moved}/", json={"dashboards": kept})  # taken off a dashboard
        http.patch(f"/api/projects/1/insights/{gone}/", json={"deleted": True})  # deleted, tiles with it
    result = warehouse.load(emulator, **FORCE_CACHE)
    assert result.complete
    assert _live_tiles(warehouse) == store.dashboard_tiles(1)
    flagged = warehouse.sql("SELECT tile_id FROM dashboard_tiles WHERE deleted ORDER BY tile_id")
    assert {t for (t,) in flagged} == {moved_tile} | {t for t, _, i in before if i == gone}
    assert warehouse.sql("SELECT deleted FROM insights WHERE id = ?", gone) == [(True,)]


def test_a_filtered_run_still_flags_the_tiles_of_a_deleted_dashboard(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator()
    store = emulator.store
    dashboard = _richest(emulator)
    warehouse.load(emulator, **FORCE_CACHE)
    on_it = _on(emulator, dashboard)
    store.soft_delete_dashboard(1, dashboard)
    listed_kind = store.insight(1, on_it[0])["_emulator"]["kind"]
    other = next(k for k in ("TRENDS", "FUNNELS", "RETENTION", "PATHS") if k != listed_kind)
    result = warehouse.load(emulator, kinds=[other], **FORCE_CACHE)  # lists only some insights
    assert result.complete
    flagged = warehouse.sql(
        "SELECT DISTINCT insight_id FROM dashboard_tiles WHERE deleted AND dashboard_id = ?", dashboard
    )
    assert sorted(i for (i,) in flagged) == on_it
    assert _live_tiles(warehouse) == store.dashboard_tiles(1)


def test_not_selected_spends_no_dashboards_request(
    start_emulator: Any, warehouse: Warehouse, tmp_path: Any
) -> None:
    emulator = start_emulator()
    result = warehouse.load(emulator, include_dashboards=False, **FORCE_CACHE)
    assert result.complete
    assert emulator.stats.kind("dashboards") == 0
    assert not {"dashboards", "dashboard_tiles"} & warehouse.tables()
    # a plain pipeline that selects other resources: the same
    emulator.reset_stats()
    source = posthog_insights_source(
        host=emulator.base_url,
        project_ids=[1],
        personal_api_key=TEST_KEY,
        rate_limit="off",
        refresh="force_cache",
    )
    other = Warehouse(tmp_path, "plain")
    other.pipeline().run(source.with_resources("insights", "dashboard_tiles"))
    assert emulator.stats.kind("dashboards") == 0 and emulator.stats.kind("list") == 1
    assert "dashboards" not in other.tables() and other.count("dashboard_tiles") == len(
        emulator.store.dashboard_tiles(1)
    )
    emulator.reset_stats()
    pipeline = dlt.pipeline(
        pipeline_name="pi_only_dashboards",
        destination=dlt.destinations.duckdb(str(tmp_path / "only.duckdb")),
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    source = posthog_insights_source(
        host=emulator.base_url,
        project_ids=[1],
        personal_api_key=TEST_KEY,
        rate_limit="off",
        refresh="blocking",
    )
    pipeline.run(source.with_resources("dashboards"))
    # the listing runs (the dashboards list waits for it), but nothing is retrieved
    assert (
        emulator.stats.kind("list"),
        emulator.stats.kind("dashboards"),
        emulator.stats.kind("retrieve"),
    ) == (1, 1, 0)


def test_a_key_without_dashboard_read(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(allow_dashboards=False)
    # not asked for: a key made for insights keeps working, with a line in the log, and the tiles it can see
    quiet = warehouse.load(emulator, **FORCE_CACHE)
    assert quiet.complete, quiet.report
    assert "dashboards" not in warehouse.tables()
    assert _live_tiles(warehouse) == emulator.store.dashboard_tiles(1)
    assert emulator.stats.status(403) == 1
    # asked for: reported, in one line that names the scope and the way out; the run goes on
    asked = warehouse.load(emulator, include_dashboards=True, **FORCE_CACHE)
    assert not asked.complete
    [line] = asked.report.unfetched
    assert line.startswith("dashboards of project 1: HTTP 403") and "'dashboard:read'" in line
    assert "--no-dashboards" in line and TEST_KEY not in line


def test_a_project_the_listing_cannot_read_is_not_asked_for_dashboards(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator(forbidden_projects=(3,))
    result = warehouse.load(emulator, project_ids=[1, 3], **FORCE_CACHE)
    assert [line.split(":")[0] for line in result.report.unfetched] == ["project 3"]
    assert emulator.stats.status(403) == 1 and emulator.stats.kind("dashboards") == 1


def test_dashboards_lists_count_in_the_request_budget(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=30, fresh_share=0.0, stale_share=1.0, error_share=0.0)
    needing = needing_refresh(emulator)
    result = warehouse.load(emulator, refresh="blocking", refresh_via="retrieve", max_requests=6)
    stats = emulator.stats
    assert (stats.kind("list"), stats.kind("dashboards")) == (1, 1)
    assert stats.total == 6 and stats.kind("retrieve") == 4  # the budget left after list and dashboards
    assert result.report.retrieves_planned == 4 and result.report.deferred == needing - 4


# -- backfill --dashboard ----------------------------------------------------------------------------------


def _backfill(warehouse: Warehouse, emulator: Any, **args: Any) -> Any:
    base: dict[str, Any] = {
        "host": emulator.base_url,
        "project_ids": [1],
        "personal_api_key": TEST_KEY,
        "rate_limit": "off",
        "retry_backoff_s": 0.01,
        "date_from": "2024-01-01",
        "date_to": "2024-01-21",
        "window": "week",
    }
    base.update(args)
    return backfill(pipeline=warehouse.pipeline(), **base)


WEEKS = [
    "window=2024-01-01..2024-01-07",
    "window=2024-01-08..2024-01-14",
    "window=2024-01-15..2024-01-21",
]


def test_backfill_covers_exactly_the_dashboards_insights_as_it_shows_them(
    start_emulator: Any, warehouse: Warehouse
) -> None:
    emulator = start_emulator(error_share=0.0)
    dashboard = _richest(emulator)
    on_it = _on(emulator, dashboard)
    result = _backfill(warehouse, emulator, backfill_dashboards=[dashboard])
    assert result.complete, result.report
    rows = warehouse.sql(
        "SELECT insight_id, variant, status, from_dashboard FROM insight_results ORDER BY insight_id, variant"
    )
    assert {r[0] for r in rows} == set(on_it)
    assert rows == [(i, f"dashboard={dashboard};{w}", "ok", dashboard) for i in on_it for w in WEEKS]
    # one list read finds them (no resolve per insight), then a retrieve per window; no dashboards list
    stats = emulator.stats
    assert (stats.kind("list"), stats.kind("retrieve"), stats.kind("dashboards")) == (1, 3 * len(on_it), 0)
    assert warehouse.count("insights") == len(on_it)
    check_all_ok_snapshots(warehouse)
    # each window is the dashboard's view: the same numbers a from_dashboard read of it gives
    insight_id = on_it[0]
    window = json.dumps({"date_from": "2024-01-08", "date_to": "2024-01-14"})
    shown = httpx.get(
        f"{emulator.base_url}/api/projects/1/insights/{insight_id}/",
        params={"from_dashboard": dashboard, "filters_override": window},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ).json()
    loaded = warehouse.sql(
        "SELECT result_json FROM insight_results WHERE insight_id = ? AND variant = ?",
        insight_id,
        f"dashboard={dashboard};{WEEKS[1]}",
    )[0][0]
    assert json.loads(loaded) == shown["result"]


def test_backfill_dashboards_narrowed_by_kind_and_tag(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=120, error_share=0.0)
    store = emulator.store
    dashboard = _richest(emulator)
    on_it = _on(emulator, dashboard)
    kind = store.insight(1, on_it[0])["_emulator"]["kind"]
    of_kind = [i for i in on_it if store.insight(1, i)["_emulator"]["kind"] == kind]
    result = _backfill(warehouse, emulator, backfill_dashboards=[dashboard], kinds=[kind], window="month")
    assert result.complete, result.report
    got = warehouse.sql("SELECT DISTINCT insight_id FROM insight_results ORDER BY 1")
    assert [i for (i,) in got] == of_kind
    tagged = next(
        i for i in store.insight_ids(1) if store.insight(1, i)["tags"] and store.insight(1, i)["dashboards"]
    )
    tag = store.insight(1, tagged)["tags"][0]
    board = store.insight(1, tagged)["dashboards"][0]
    expected = sorted(i for i in _on(emulator, board) if tag in store.insight(1, i)["tags"])
    other = Warehouse(warehouse.root, "tagged")
    result = _backfill(other, emulator, backfill_dashboards=[board], tags=[tag], window="month")
    assert result.complete
    assert [i for (i,) in other.sql("SELECT DISTINCT insight_id FROM insight_results ORDER BY 1")] == expected


def test_backfill_of_a_dashboard_resumes_after_a_stop(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(error_share=0.0)
    dashboard = _richest(emulator)
    on_it = _on(emulator, dashboard)
    total = 3 * len(on_it)
    first = _backfill(warehouse, emulator, backfill_dashboards=[dashboard], max_requests=5)  # 1 list + 4
    assert warehouse.count("insight_results") == 4
    assert first.report.deferred == total - 4
    emulator.reset_stats()
    second = _backfill(warehouse, emulator, backfill_dashboards=[dashboard])
    assert second.complete and second.report.deferred == 0
    assert (emulator.stats.kind("list"), emulator.stats.kind("retrieve")) == (1, total - 4)  # only the rest
    assert warehouse.count("insight_results") == total
    emulator.reset_stats()
    third = _backfill(warehouse, emulator, backfill_dashboards=[dashboard])
    assert (
        third.complete
        and emulator.stats.kind("retrieve") == 0
        and third.row_counts.get("insight_results", 0) == 0
    )


def test_backfill_of_several_dashboards_and_insights(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(error_share=0.0)
    store = emulator.store
    both = next(i for i in store.insight_ids(1) if len(store.insight(1, i)["dashboards"]) == 2)
    first, second = store.insight(1, both)["dashboards"]
    result = _backfill(
        warehouse, emulator, backfill_dashboards=[first, second], insights=[str(both)], window="month"
    )
    assert result.complete
    variants = warehouse.sql("SELECT variant FROM insight_results WHERE insight_id = ? ORDER BY 1", both)
    month = "window=2024-01-01..2024-01-21"
    assert [v for (v,) in variants] == sorted(
        [f"dashboard={first};{month}", f"dashboard={second};{month}", month]
    )
    on_either = set(_on(emulator, first)) | set(_on(emulator, second))
    assert {i for (i,) in warehouse.sql("SELECT DISTINCT insight_id FROM insight_results")} == on_either
    assert warehouse.count("insights") == len(on_either)  # each insight's row once


def test_backfill_of_a_dashboard_without_insights_says_so(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator()
    result = _backfill(warehouse, emulator, backfill_dashboards=[987654])
    assert not result.complete
    [line] = result.report.unfetched
    assert line.startswith("dashboard 987654 in project 1: no insight on it") and "dashboard id" in line
    assert emulator.stats.kind("retrieve") == 0


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({}, "insight: no insight given; pass --insight"),
        ({"backfill_dashboards": ["x"]}, "dashboard: 'x' is not"),
    ],
)
def test_backfill_needs_an_insight_or_a_dashboard(given: dict[str, Any], words: str) -> None:
    from posthog_insights.config import BackfillSettings
    from posthog_insights.errors import ConfigError

    settings = BackfillSettings(
        project_ids=[1], personal_api_key="phx_k", date_from="2024-01-01", date_to="2024-01-02", **given
    )
    with pytest.raises(ConfigError, match=words):
        settings.check()
