"""Async calculations: query_status fields, polling (202 / 200 / 400 / 404 once expired), cancelling,
and the cache after. A job's id is the insight's cache key (the doc: "normally the cache key")."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator

DETAIL = "/api/projects/1/insights/{}/"
STATUS_FIELDS = {
    "id",
    "team_id",
    "complete",
    "error",
    "error_message",
    "results",
    "start_time",
    "end_time",
    "expiration_time",
    "query_async",
    "query_progress",
    "task_id",
    "insight_id",
}


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def start_job(client: httpx.Client, emu: Emulator, insight_id: int, mode: str = "async") -> dict[str, Any]:
    emu.store.set_cache_state(1, insight_id, "missing")
    body = client.get(DETAIL.format(insight_id), params={"refresh": mode}).json()
    assert body["result"] is None
    status: dict[str, Any] = body["query_status"]
    assert set(status) >= STATUS_FIELDS
    assert status["complete"] is False and status["error"] is False and status["query_async"] is True
    assert status["insight_id"] == insight_id and status["team_id"] == 1
    assert status["results"] is None and status["task_id"] and status["start_time"]
    return status


@pytest.mark.parametrize("scope", ["environments", "projects"])
def test_poll_202_then_200_with_results_nested(
    client: httpx.Client, emu: Emulator, pool: Any, scope: str
) -> None:
    insight_id = pool.take("TRENDS")
    status = start_job(client, emu, insight_id)
    assert status["id"] == client.get(DETAIL.format(insight_id)).json()["filters_hash"]  # id = cache key
    poll = client.get(f"/api/{scope}/1/query/{status['id']}/")
    assert poll.status_code == 202
    running = poll.json()["query_status"]
    assert running["complete"] is False and running["results"] is None
    emu.advance_clock(emu.config.async_delay_s + 0.01)
    emu.reset_stats()
    done = client.get(f"/api/{scope}/1/query/{status['id']}/")
    assert done.status_code == 200
    assert emu.stats.kind("poll") == 1
    finished = done.json()["query_status"]
    assert finished["complete"] is True and finished["error"] is False and finished["end_time"]
    nested = finished["results"]
    for name in ("result", "results", "last_refresh", "cache_target_age", "is_cached", "timezone", "hogql"):
        assert name in nested, name
    assert nested["result"] and nested["results"] == nested["result"]
    cached = client.get(DETAIL.format(insight_id), params={"refresh": "force_cache"}).json()
    assert cached["is_cached"] is True and cached["result"] == nested["result"]
    assert cached["last_refresh"] == nested["last_refresh"] and cached["query_status"] is None


def test_real_time_async_delay(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(async_delay_s=0.2, error_share=0.0)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        insight_id = emulator.store.insight_ids(1)[1]
        status = http.get(DETAIL.format(insight_id), params={"refresh": "force_async"}).json()["query_status"]
        codes = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            response = http.get(f"/api/environments/1/query/{status['id']}/")
            codes.append(response.status_code)
            if response.status_code != 202:
                break
            time.sleep(0.05)
        assert codes[0] == 202 and codes[-1] == 200


def test_stale_result_with_job_then_fresh(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("LIFECYCLE")
    emu.store.set_cache_state(1, insight_id, "stale")
    body = client.get(DETAIL.format(insight_id), params={"refresh": "async"}).json()
    assert body["result"] is not None and body["is_cached"] is True
    again = client.get(DETAIL.format(insight_id), params={"refresh": "async"}).json()
    assert again["query_status"]["id"] == body["query_status"]["id"]  # one job per cache key
    assert again["query_status"]["task_id"] == body["query_status"]["task_id"]
    emu.advance_clock(1.0)
    after = client.get(DETAIL.format(insight_id), params={"refresh": "async"}).json()
    assert after["query_status"] is None and after["is_cached"] is True
    assert after["result"] != body["result"] and after["last_refresh"] != body["last_refresh"]


def test_failed_job_polls_400_with_message(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("FUNNELS")
    emu.store.set_fails(1, insight_id, "Query exceeds memory limits.")
    status = start_job(client, emu, insight_id)
    emu.advance_clock(1.0)
    response = client.get(f"/api/environments/1/query/{status['id']}/")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error" and body["detail"] == "Query exceeds memory limits."
    assert body["query_status"]["error"] is True and body["query_status"]["complete"] is True
    assert body["query_status"]["error_message"] == "Query exceeds memory limits."


def test_delete_cancels_and_forgets_the_job(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("PATHS")
    status = start_job(client, emu, insight_id)
    emu.reset_stats()
    response = client.delete(f"/api/environments/1/query/{status['id']}/")
    assert response.status_code == 200
    assert set(response.json()) == {"message"} and response.json()["message"]
    assert emu.stats.kind("cancel") == 1
    assert client.get(f"/api/environments/1/query/{status['id']}/").status_code == 404
    emu.advance_clock(1.0)
    assert client.get(DETAIL.format(insight_id)).json()["result"] is None  # nothing was written


def test_delete_keeps_a_finished_status(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("TRENDS")
    status = start_job(client, emu, insight_id)
    emu.advance_clock(emu.config.async_delay_s + 0.01)
    path = f"/api/environments/1/query/{status['id']}/"
    assert client.get(path).status_code == 200
    response = client.delete(path)
    assert response.status_code == 200 and response.json()["message"]
    again = client.get(path)
    assert again.status_code == 200 and again.json()["query_status"]["complete"] is True
    unknown = client.delete("/api/environments/1/query/no-such-query/")
    assert unknown.status_code == 200 and unknown.json()["message"]


def test_status_expires_20_minutes_after_it_was_stored(
    client: httpx.Client, emu: Emulator, pool: Any
) -> None:
    insight_id = pool.take("STICKINESS")
    status = start_job(client, emu, insight_id)
    emu.advance_clock(emu.config.async_delay_s + 0.01)
    path = f"/api/environments/1/query/{status['id']}/"
    done = client.get(path).json()["query_status"]
    # Stored again when it finished: it expires 20 minutes after its end.
    assert abs(ts(done["expiration_time"]) - ts(done["end_time"]) - 20 * 60) < 0.01
    emu.advance_clock(19 * 60)
    assert client.get(path).status_code == 200
    emu.advance_clock(2 * 60)
    expired = client.get(path)
    assert expired.status_code == 404 and expired.json()["code"] == "not_found"
    # The result it wrote stays in the cache.
    assert client.get(DETAIL.format(insight_id)).json()["is_cached"] is True


def test_running_status_expires_too(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("LIFECYCLE")
    status = start_job(client, emu, insight_id)
    assert abs(ts(status["expiration_time"]) - ts(status["start_time"]) - 20 * 60) < 0.01
    emu.advance_clock(21 * 60)  # it finished long ago and nobody polled: 20 minutes after its end
    assert client.get(f"/api/environments/1/query/{status['id']}/").status_code == 404


def test_insights_cancel_endpoint(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    insight_id = pool.take("RETENTION")
    emu.store.set_cache_state(1, insight_id, "missing")
    body = client.get(
        DETAIL.format(insight_id), params={"refresh": "force_async", "client_query_id": "my-query-1"}
    ).json()
    query_id = body["query_status"]["id"]  # the cache key, whatever client_query_id says
    assert query_id != "my-query-1"
    assert client.get(f"/api/environments/1/query/{query_id}/").status_code == 202
    emu.reset_stats()
    response = client.post("/api/projects/1/insights/cancel/", json={"client_query_id": query_id})
    assert response.status_code == 201
    assert emu.stats.kind("cancel") == 1
    assert client.get(f"/api/environments/1/query/{query_id}/").status_code == 404
    missing = client.post("/api/projects/1/insights/cancel/", json={})
    assert missing.status_code == 400 and missing.json()["attr"] == "client_query_id"


def test_unknown_query_id_is_404(client: httpx.Client) -> None:
    response = client.get("/api/environments/1/query/nope/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_show_progress(client: httpx.Client, emu: Emulator, pool: Any) -> None:
    status = start_job(client, emu, pool.take("STICKINESS"))
    polled = client.get(f"/api/environments/1/query/{status['id']}/", params={"show_progress": "true"})
    progress = polled.json()["query_status"]["query_progress"]
    assert set(progress) >= {"rows_read", "bytes_read", "estimated_rows_total", "time_elapsed"}


def test_query_status_needs_the_scope(start_emulator: Any, auth: dict[str, str]) -> None:
    emulator = start_emulator(allow_query_status=False, error_share=0.0)
    with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
        insight_id = emulator.store.insight_ids(1)[0]
        status = http.get(DETAIL.format(insight_id), params={"refresh": "force_async"}).json()["query_status"]
        response = http.get(f"/api/environments/1/query/{status['id']}/")
        assert response.status_code == 403
        assert response.json()["code"] == "permission_denied"
