"""`insight_activity`: incremental with an early stop, merged on id, no duplicates."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import TEST_KEY, Warehouse


def test_activity_is_incremental_without_duplicates(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=25, error_share=0.0)
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    total = httpx.get(f"{emulator.base_url}/api/projects/1/insights/activity/", headers=headers).json()
    warehouse.load(emulator, refresh="force_cache", include_activity=True)
    assert warehouse.count("insight_activity") == total["total_count"]
    assert warehouse.sql("SELECT COUNT(*) FROM insight_activity WHERE activity = 'created'")[0][0] == 25

    store = emulator.store
    victim = next(i for i in store.insight_ids(1) if store.insight(1, i)["saved"])  # a PATCH saves it
    patched = httpx.patch(
        f"{emulator.base_url}/api/projects/1/insights/{victim}/", headers=headers, json={"name": "Renamed"}
    )
    assert patched.status_code == 200
    emulator.reset_stats()
    warehouse.load(emulator, refresh="force_cache", include_activity=True)
    assert emulator.stats.by_kind.get("other", 0) + emulator.stats.by_kind.get("activity", 0) <= 2
    rows = warehouse.sql(
        "SELECT activity, user_email, changed_fields_json, insight_name FROM insight_activity "
        "WHERE insight_id = ? ORDER BY created_at",
        victim,
    )
    assert [r[0] for r in rows] == ["created", "updated"]
    assert rows[-1][2] == '["name"]' and rows[-1][3] == "Renamed"
    distinct = warehouse.sql("SELECT COUNT(DISTINCT id), COUNT(*) FROM insight_activity")[0]
    assert distinct[0] == distinct[1] == total["total_count"] + 1


def test_activity_is_off_by_default(start_emulator: Any, warehouse: Warehouse) -> None:
    emulator = start_emulator(insights=5, error_share=0.0)
    warehouse.load(emulator, refresh="force_cache")
    assert "insight_activity" not in warehouse.tables()
