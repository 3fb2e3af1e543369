"""The PostHog emulator in a child process, and its request counters over HTTP.

A separate process, not `posthog_emulator.Emulator` in a thread: on a 2-core machine the server's CPU
would otherwise share the GIL with the client being measured and slow both down. The emulator prints its
base URL and key on start; counters come from its `/_emulator/stats` introspection endpoint, read before
and after a run (the difference is what the run spent).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks import QUIET_ENV

_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 10.0
# No proxy, ever: every request of the benchmark goes to 127.0.0.1.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class EmulatorSpec:
    """Command-line settings of one emulator process (a fresh process starts from a known cache state)."""

    insights: int
    points: int = 30
    latency_ms: float = 0.0
    rate_limit: str = "off"  # e.g. "240/6,1200/36"
    fresh_share: float = 0.5
    stale_share: float = 0.25
    error_share: float = 0.02
    seed: int = 7
    org_concurrency: int = 10  # PostHog's limit of synchronous calculations per organisation
    background_calcs: int = 0  # of those, held by the organisation's own users
    calc_ms: float = 5.0  # how long one calculation takes

    def argv(self) -> list[str]:
        return [
            "--org-concurrency",
            str(self.org_concurrency),
            "--background-calcs",
            str(self.background_calcs),
            "--calc-ms",
            f"{self.calc_ms:g}",
            "--port",
            "0",
            "--insights",
            str(self.insights),
            "--points",
            str(self.points),
            "--latency-ms",
            f"{self.latency_ms:g}",
            "--rate-limit",
            self.rate_limit,
            "--fresh-share",
            f"{self.fresh_share:g}",
            "--stale-share",
            f"{self.stale_share:g}",
            "--error-share",
            f"{self.error_share:g}",
            "--seed",
            str(self.seed),
        ]


@dataclass(frozen=True)
class Counters:
    """A difference of two `/_emulator/stats` snapshots: what one run spent."""

    total: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    throttled: int = 0
    refused: int = 0  # calculations refused for want of a free organisation slot (200 answers or 500s)

    @classmethod
    def between(cls, before: dict[str, Any], after: dict[str, Any]) -> Counters:
        def diff(name: str) -> dict[str, int]:
            old: dict[str, int] = before.get(name, {})
            new: dict[str, int] = after.get(name, {})
            return {k: int(v) - int(old.get(k, 0)) for k, v in new.items() if int(v) - int(old.get(k, 0))}

        return cls(
            total=int(after["total"]) - int(before["total"]),
            by_kind=diff("by_kind"),
            by_status=diff("by_status"),
            throttled=int(after["throttled"]) - int(before["throttled"]),
            refused=int(after.get("concurrency_refused", 0)) - int(before.get("concurrency_refused", 0)),
        )

    def kind(self, name: str) -> int:
        return self.by_kind.get(name, 0)


def child_env() -> dict[str, str]:
    """The environment of every child process: this one's, quiet dlt, no proxy, the repo importable."""
    env = dict(os.environ)
    env.update(QUIET_ENV)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def http_get_json(url: str, headers: dict[str, str] | None = None, timeout_s: float = 30.0) -> Any:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"the benchmark only talks to 127.0.0.1, not {url}")
    request = urllib.request.Request(url, headers=headers or {})
    with _OPENER.open(request, timeout=timeout_s) as response:
        return json.loads(response.read())


class EmulatorProcess:
    """`python -m posthog_emulator` in a child process; a context manager that always stops it."""

    def __init__(self, spec: EmulatorSpec, log_dir: Path) -> None:
        self.spec = spec
        self._log_dir = log_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self.api_key = ""
        self.pid = 0

    def start(self) -> EmulatorProcess:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        stem = f"emulator-{time.monotonic_ns()}"
        out_path = self._log_dir / f"{stem}.out"
        err_path = self._log_dir / f"{stem}.err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "posthog_emulator", *self.spec.argv()],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=child_env(),
            )
        self.pid = self._proc.pid
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            lines = out_path.read_text().splitlines()
            if len(lines) >= 2:
                self.base_url, self.api_key = lines[0].strip(), lines[1].strip()
                break
            if self._proc.poll() is not None:
                raise RuntimeError(f"emulator exited with {self._proc.returncode}: {err_path.read_text()}")
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"emulator did not print its URL within {_START_TIMEOUT_S:g}s")
        if not self.base_url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"unexpected emulator URL {self.base_url!r}")
        return self

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = http_get_json(f"{self.base_url}/_emulator/stats")
        return stats

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # SIGTERM: the emulator shuts down cleanly
        try:
            proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(_STOP_TIMEOUT_S)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
