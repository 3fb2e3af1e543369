"""Lifecycle (fast start at 10,000 insights, quick stop, no leaked threads), throughput, and the CLI."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from posthog_emulator import Emulator, EmulatorConfig, FaultConfig
from posthog_emulator.cli import add_arguments, config_from_args, parse_faults, parse_rate_limits

REPO = Path(__file__).resolve().parents[2]


def test_start_at_ten_thousand_insights_is_fast(auth: dict[str, str]) -> None:
    started = time.perf_counter()
    emulator = Emulator(EmulatorConfig(api_key="phx_test_key", insights=10_000))
    emulator.start()
    elapsed = time.perf_counter() - started
    try:
        assert elapsed < 2.0, f"start took {elapsed:.2f} s"
        with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
            body = http.get("/api/projects/1/insights/", params={"order": "-id", "limit": 100}).json()
            assert body["count"] == 10_000 and body["results"][0]["id"] == 10_000
    finally:
        emulator.stop()


def test_stop_is_quick_and_leaks_no_thread(auth: dict[str, str]) -> None:
    before = {thread.ident for thread in threading.enumerate()}
    emulator = Emulator(EmulatorConfig(api_key="phx_test_key", insights=20))
    url = emulator.start()
    with httpx.Client(base_url=url, headers=auth) as http:  # a kept-alive connection stays open
        assert http.get("/api/projects/1/insights/1/").status_code == 200
        started = time.perf_counter()
        emulator.stop()
        assert time.perf_counter() - started < 2.0
    assert {thread.ident for thread in threading.enumerate()} <= before
    assert not emulator.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_emulator/health")


def test_context_manager_and_fixed_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with Emulator(EmulatorConfig(port=port, insights=5)) as emulator:
        assert emulator.base_url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{emulator.base_url}/_emulator/health").status_code == 200
        with pytest.raises(RuntimeError):
            Emulator(EmulatorConfig(port=port, insights=5)).start()  # the port is taken


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(fresh_share=0.8, stale_share=0.5)
    with pytest.raises(ValueError):
        FaultConfig(kinds=("explode",))
    with pytest.raises(ValueError):
        EmulatorConfig(rate_limits=((0, 60.0),))
    with pytest.raises(ValueError):
        EmulatorConfig(org_concurrency=2, background_calcs=3)
    with pytest.raises(ValueError):
        EmulatorConfig(org_concurrency=0)
    with pytest.raises(ValueError):
        EmulatorConfig(calc_ms=-1)
    with pytest.raises(ValueError):
        EmulatorConfig(other_kinds_share=1.5)


def test_simple_retrieves_throughput(start_emulator: Any, auth: dict[str, str]) -> None:
    """The server sustains 2,000+ requests/s; measured here with the client in the same process
    (sharing its GIL), so the bound is looser than the server's real capacity."""
    emulator = start_emulator(insights=200)
    per_thread, threads_n = 300, 4
    counts: list[int] = []

    def worker() -> None:
        with httpx.Client(base_url=emulator.base_url, headers=auth) as http:
            done = 0
            for index in range(per_thread):
                if http.get(f"/api/projects/1/insights/{index % 200 + 1}/").status_code == 200:
                    done += 1
            counts.append(done)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    rate = sum(counts) / (time.perf_counter() - started)
    assert sum(counts) == per_thread * threads_n
    assert rate > 400, f"{rate:.0f} requests/s"


def test_parse_rate_limits_and_faults() -> None:
    assert parse_rate_limits("240/60,1200/3600") == ((240, 60.0), (1200, 3600.0))
    assert parse_rate_limits("10/5") == ((10, 5.0),)
    assert parse_rate_limits("off") is None
    with pytest.raises(ValueError):
        parse_rate_limits("10")
    assert parse_faults("0.1") == FaultConfig(rate=0.1)
    assert parse_faults("0.2:5xx,drop") == FaultConfig(rate=0.2, kinds=("5xx", "drop"))
    assert parse_faults("0") is None and parse_faults("off") is None


def test_cli_arguments_build_the_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--port", "0", "--api-key", "phx_k", "--insights", "12", "--seed", "3", "--projects", "1,2",
         "--points", "9", "--rate-limit", "10/5", "--latency-ms", "5", "--faults", "0.1:slow",
         "--async-delay", "0.1"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.api_key == "phx_k" and config.projects == (1, 2) and config.insights == 12
    assert config.rate_limits == ((10, 5.0),) and config.points == 9 and config.seed == 3
    assert config.faults == FaultConfig(rate=0.1, kinds=("slow",)) and config.async_delay_s == 0.1
    assert config.latency_ms == 5.0
    defaults = config_from_args(parser.parse_args([]))
    assert defaults.rate_limits is None and defaults.faults is None
    assert defaults == EmulatorConfig(port=0)


def test_cli_concurrency_staleness_and_mix_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--org-concurrency", "4", "--background-calcs", "3", "--calc-ms", "250", "--no-stale-invalidation",
         "--other-intervals-share", "0.5", "--fixed-range-share", "0.1", "--other-kinds-share", "0"]
    )  # fmt: skip
    config = config_from_args(args)
    assert (config.org_concurrency, config.background_calcs, config.calc_ms) == (4, 3, 250.0)
    assert config.stale_invalidation is False
    assert (config.other_intervals_share, config.fixed_range_share, config.other_kinds_share) == (
        0.5,
        0.1,
        0.0,
    )
    assert config_from_args(parser.parse_args([])).stale_invalidation is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--cache-ttl", "60"])  # gone: staleness goes by PostHog's thresholds


def test_cli_prints_url_and_key_then_stops_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with subprocess.Popen(
        [sys.executable, "-m", "posthog_emulator", "--insights", "10", "--api-key", "phx_cli"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().strip()
            key = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and key == "phx_cli"
            response = httpx.get(
                f"{url}/api/projects/1/insights/", headers={"Authorization": f"Bearer {key}"}
            )
            assert response.status_code == 200 and response.json()["count"] == 10
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
