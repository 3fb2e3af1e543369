"""Bad input through the real CLI, in a subprocess: one line naming the setting or the HTTP status and
what to do, a non-zero exit, no traceback (unless --debug), and not a single request where the input
itself was invalid, proved by a server that counts every request it receives.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from posthog_emulator import Emulator
from tests.reliability.support import (
    CLI,
    KEY,
    Answer,
    CountingServer,
    Seen,
    assert_one_line_error,
    cli_env,
    closed_port,
    insight_page,
    json_answer,
    non_loopback_ipv4,
    run_args,
    run_cli,
)

EXIT_INCOMPLETE, EXIT_BAD_INPUT, EXIT_FAILED = 1, 2, 3
# insight list requests only (no dashboards list)
FORCE_CACHE = ("--refresh", "force_cache", "--rate-limit", "off", "--no-dashboards")


def _one_page(seen: Seen) -> Answer:
    return json_answer(insight_page([1, 2, 3], None))


@pytest.fixture
def counting() -> Iterator[CountingServer]:
    """A server that would answer any request with a valid page: a request reaching it is visible."""
    with CountingServer(_one_page) as server:
        yield server


@pytest.fixture
def counting_public() -> Iterator[CountingServer]:
    """The same, reachable through an address of this machine that is not loopback."""
    address = non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with CountingServer(_one_page, bind="0.0.0.0", advertise=address) as server:
        yield server


# -- invalid input: refused before any request -------------------------------------------------------


def test_missing_key(tmp_path: Path, counting: CountingServer) -> None:
    proc = run_cli(tmp_path, "--host", counting.url, "--project-id", "1", key=None)
    assert proc.returncode == EXIT_BAD_INPUT
    assert_one_line_error(proc, "personal_api_key: missing", "POSTHOG_PERSONAL_API_KEY")
    assert counting.requests == []


@pytest.mark.parametrize(
    ("host", "needles"),
    [
        ("{addr}", ("host:", "has no scheme", "use https://")),
        ("https://{addr}/api", ("host:", "without a path", "/api/... itself")),
        ("http://user:secret@{addr}", ("host:", "user:password")),
        ("ftp://{addr}", ("host:", "scheme 'ftp'", "use https://")),
        ("https://app.posthog.com", ("host:", "UI host", "https://us.posthog.com")),
        ("http://[::1", ("host:", "not a valid URL")),
    ],
)
def test_malformed_host(
    tmp_path: Path, counting: CountingServer, host: str, needles: tuple[str, ...]
) -> None:
    addr = counting.url.removeprefix("http://")
    proc = run_cli(tmp_path, "--host", host.format(addr=addr), "--project-id", "1", key=KEY)
    assert proc.returncode == EXIT_BAD_INPUT
    assert_one_line_error(proc, *needles)
    assert counting.requests == []


def test_plain_http_to_a_non_loopback_host_needs_an_explicit_opt_in(
    tmp_path: Path, counting_public: CountingServer
) -> None:
    refused = run_cli(tmp_path / "refused", "--host", counting_public.url, "--project-id", "1", key=KEY)
    assert refused.returncode == EXIT_BAD_INPUT
    assert_one_line_error(refused, "host:", "unencrypted", "--allow-insecure-http")
    assert counting_public.requests == []
    allowed = run_cli(
        tmp_path / "allowed",
        *("--host", counting_public.url, "--project-id", "1", "--allow-insecure-http", *FORCE_CACHE),
        key=KEY,
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert len(counting_public.requests) == 1


@pytest.mark.parametrize("via", ["flag", "env"])
def test_unknown_refresh_mode(tmp_path: Path, counting: CountingServer, via: str) -> None:
    if via == "flag":
        proc = run_cli(tmp_path, "--host", counting.url, "--project-id", "1", "--refresh", "fastest", key=KEY)
        assert_one_line_error(proc, "--refresh", "invalid choice: 'fastest'", "force_cache")
    else:
        proc = _run_with_env(tmp_path, counting.url, {"SOURCES__POSTHOG_INSIGHTS__REFRESH": "fastest"})
        assert_one_line_error(proc, "refresh: unknown mode 'fastest'", "force_cache")
    assert proc.returncode == EXIT_BAD_INPUT
    assert counting.requests == []


def _run_with_env(root: Path, host: str, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    env = {**cli_env(root, KEY), **extra}
    return subprocess.run(
        [CLI, *run_args(root, "--host", host, "--project-id", "1")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("project", ["abc", "-1"])
def test_non_numeric_project_id(tmp_path: Path, counting: CountingServer, project: str) -> None:
    proc = run_cli(tmp_path, "--host", counting.url, f"--project-id={project}", key=KEY)
    assert proc.returncode == EXIT_BAD_INPUT
    assert_one_line_error(proc, "project_id:", "not a numeric PostHog project id", "/project/12345")
    assert counting.requests == []


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--rate-limit", "fast", "rate_limit:"),
        ("--concurrency", "0", "concurrency:"),
        ("--timeout", "-1", "timeout_s"),
        ("--concurrency", "many", "--concurrency"),
        ("--checkpoint-mb", "-1", "checkpoint_mb:"),
    ],
)
def test_other_invalid_settings(
    tmp_path: Path, counting: CountingServer, flag: str, value: str, needle: str
) -> None:
    proc = run_cli(tmp_path, "--host", counting.url, "--project-id", "1", f"{flag}={value}", key=KEY)
    assert proc.returncode == EXIT_BAD_INPUT
    assert_one_line_error(proc, needle)
    assert counting.requests == []


# -- valid input, but the server cannot be used --------------------------------------------------------


def test_unreachable_host(tmp_path: Path) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    proc = run_cli(tmp_path, "--host", host, "--project-id", "1", "--max-retries", "1", key=KEY)
    assert proc.returncode == EXIT_FAILED  # nothing could be listed: the run fails (a scheduler sees it)
    assert_one_line_error(proc, host, "failed after 2 attempts", "ConnectError", "check that host is right")


def test_wrong_key_is_401_and_loads_nothing(tmp_path: Path, emulators: Callable[..., Emulator]) -> None:
    emulator = emulators(api_key=KEY, insights=10)
    proc = run_cli(tmp_path, "--host", emulator.base_url, "--project-id", "1", key="phx_revoked_key_123")
    assert proc.returncode == EXIT_FAILED
    assert_one_line_error(proc, "HTTP 401", "personal API key was rejected", "POSTHOG_PERSONAL_API_KEY")
    assert emulator.stats.total == 1  # never retried
    assert "phx_revoked_key_123" not in proc.stdout + proc.stderr


def test_wrong_key_with_debug_shows_the_traceback(tmp_path: Path, emulators: Callable[..., Emulator]) -> None:
    emulator = emulators(api_key=KEY, insights=10)
    proc = run_cli(
        tmp_path, "--host", emulator.base_url, "--project-id", "1", key="phx_revoked_456", debug=True
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "AuthenticationError" in proc.stderr
    assert "phx_revoked_456" not in proc.stdout + proc.stderr


def test_project_the_key_may_not_read_is_403(tmp_path: Path, emulators: Callable[..., Emulator]) -> None:
    emulator = emulators(api_key=KEY, projects=(1,), forbidden_projects=(3,), insights=10)
    args = ["--host", emulator.base_url, "--project-id", "1", "--project-id", "3", "--rate-limit", "off"]
    proc = run_cli(tmp_path, *args, key=KEY)
    assert proc.returncode == EXIT_INCOMPLETE
    assert_one_line_error(proc, "project 3", "HTTP 403", "'insight:read' scope", "access to project 3")
    assert emulator.stats.status(403) == 1  # never retried
    assert "insights listed: 10" in proc.stdout  # project 1 was loaded all the same


def test_next_link_to_another_origin_is_not_followed(tmp_path: Path) -> None:
    with CountingServer(_one_page) as elsewhere:

        def first_page_points_elsewhere(seen: Seen) -> Answer:
            return json_answer(
                insight_page(
                    [1, 2, 3], f"{elsewhere.url}/api/projects/1/insights/?limit=3&offset=3&order=id", 6
                )
            )

        with CountingServer(first_page_points_elsewhere) as server:
            proc = run_cli(tmp_path, "--host", server.url, "--project-id", "1", *FORCE_CACHE, key=KEY)
    assert proc.returncode == EXIT_INCOMPLETE
    assert_one_line_error(proc, "pagination", f"points to {elsewhere.url}", "refusing to send the API key")
    assert elsewhere.requests == []
    assert len(server.requests) == 1
    assert "insights listed: 3" in proc.stdout  # the first page is kept


def test_redirect_to_another_origin_is_not_followed(tmp_path: Path) -> None:
    with CountingServer(_one_page) as elsewhere:
        redirect: Callable[[Seen], Answer] = lambda seen: (  # noqa: E731
            302,
            {"Location": f"{elsewhere.url}{seen.path}"},
            b"",
        )
        with CountingServer(redirect) as server:
            proc = run_cli(tmp_path, "--host", server.url, "--project-id", "1", key=KEY)
    assert proc.returncode != 0
    assert_one_line_error(proc, "host:", "HTTP 302 redirect", elsewhere.url, "not followed")
    assert elsewhere.requests == []


@pytest.mark.parametrize("how", ["same items", "same link"])
def test_a_page_that_repeats_stops_the_listing(tmp_path: Path, how: str) -> None:
    def repeating(seen: Seen) -> Answer:
        if how == "same link":  # next points at the page just served
            link = f"http://{seen.headers['host']}{seen.path}?{seen.query}"
        else:  # next moves on, but the server serves the same items again
            offset = int(seen.params.get("offset", "0"))
            link = f"http://{seen.headers['host']}{seen.path}?limit=3&offset={offset + 3}&order=id"
        return json_answer(insight_page([1, 2, 3], link, 300))

    with CountingServer(repeating) as server:
        proc = run_cli(tmp_path, "--host", server.url, "--project-id", "1", *FORCE_CACHE, key=KEY)
    assert proc.returncode == EXIT_INCOMPLETE
    line = assert_one_line_error(proc, "pagination", "endless loop", "order=id")
    assert ("listed before came back" in line) if how == "same items" else ("already fetched" in line)
    assert len(server.requests) == (2 if how == "same items" else 1)
