"""Paths, projects, authentication and error bodies, over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from posthog_emulator import Emulator

ERROR_KEYS = {"type", "code", "detail", "attr"}


def test_projects_and_environments_paths_serve_the_same_data(client: httpx.Client) -> None:
    params = {"order": "id", "limit": 5}
    projects = client.get("/api/projects/1/insights/", params=params).json()
    environments = client.get("/api/environments/1/insights/", params=params).json()
    assert [item["id"] for item in projects["results"]] == [item["id"] for item in environments["results"]]
    assert projects["count"] == environments["count"] == 350
    one = projects["results"][0]["id"]
    a = client.get(f"/api/projects/1/insights/{one}/").json()
    b = client.get(f"/api/environments/1/insights/{one}/").json()
    assert a["result"] == b["result"] and a["short_id"] == b["short_id"]


def test_several_projects_have_their_own_insights(client: httpx.Client, emu: Emulator) -> None:
    first = client.get("/api/projects/1/insights/", params={"order": "id", "limit": 1000}).json()
    second = client.get("/api/projects/2/insights/", params={"order": "id", "limit": 1000}).json()
    ids_1 = {item["id"] for item in first["results"]}
    ids_2 = {item["id"] for item in second["results"]}
    assert len(ids_1) == len(ids_2) == 350
    assert not ids_1 & ids_2
    some = sorted(ids_2)[0]
    assert client.get(f"/api/projects/1/insights/{some}/").status_code == 404
    assert client.get(f"/api/projects/2/insights/{some}/").status_code == 200


def test_unknown_project_is_404_with_error_body(client: httpx.Client) -> None:
    response = client.get("/api/projects/999/insights/")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["type"] == "invalid_request" and body["code"] == "not_found"


def test_forbidden_project_is_403_permission_denied(client: httpx.Client) -> None:
    for path in ("/api/projects/3/insights/", "/api/environments/3/insights/1/", "/api/projects/3/query/x/"):
        response = client.get(path)
        assert response.status_code == 403, path
        body = response.json()
        assert set(body) == ERROR_KEYS
        assert body["code"] == "permission_denied"


def test_missing_key_is_401_not_authenticated(emu: Emulator) -> None:
    response = httpx.get(f"{emu.base_url}/api/projects/1/insights/")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["type"] == "authentication_error" and body["code"] == "not_authenticated"
    assert body["attr"] is None


@pytest.mark.parametrize("header", ["Bearer phx_wrong", "Basic abc", "phx_test_key", "Token phx_test_key"])
def test_wrong_or_malformed_key_is_401(emu: Emulator, header: str) -> None:
    response = httpx.get(f"{emu.base_url}/api/projects/1/insights/1/", headers={"Authorization": header})
    assert response.status_code == 401
    body = response.json()
    assert set(body) == ERROR_KEYS
    expected = "authentication_failed" if header == "Bearer phx_wrong" else "not_authenticated"
    assert body["code"] == expected


def test_bearer_scheme_is_case_insensitive(emu: Emulator) -> None:
    response = httpx.get(
        f"{emu.base_url}/api/projects/1/insights/1/", headers={"Authorization": f"bearer {emu.api_key}"}
    )
    assert response.status_code == 200


def test_key_in_query_string_is_accepted_and_counted(emu: Emulator, client: httpx.Client) -> None:
    before = emu.stats.key_in_query
    response = httpx.get(
        f"{emu.base_url}/api/projects/1/insights/1/", params={"personal_api_key": emu.api_key}
    )
    assert response.status_code == 200
    assert emu.stats.key_in_query == before + 1
    client.get("/api/projects/1/insights/1/")  # the header way is not counted
    assert emu.stats.key_in_query == before + 1


def test_trailing_slash_is_optional(client: httpx.Client) -> None:
    assert client.get("/api/projects/1/insights").status_code == 200
    assert client.get("/api/projects/1/insights/1").status_code == 200


def test_unknown_paths_are_404_json(client: httpx.Client) -> None:
    for path in ("/api/nope/1/insights/", "/api/projects/1/unknown/", "/nothing"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert set(response.json()) == ERROR_KEYS


def test_health_needs_no_key(emu: Emulator) -> None:
    response = httpx.get(f"{emu.base_url}/_emulator/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_method_not_allowed_is_405_json(client: httpx.Client) -> None:
    response = client.post("/api/projects/1/insights/activity/")
    assert response.status_code == 405
    body = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == "method_not_allowed"
