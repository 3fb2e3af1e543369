"""Start and stop the emulator in a background thread, with its own event loop.

Tests and the demo need a real server on 127.0.0.1 that starts in milliseconds and stops without
leaking a thread. uvicorn runs in a daemon thread (it installs no signal handlers off the main
thread); `start` returns once the socket is bound, `stop` asks it to exit and joins the thread.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn

from posthog_emulator.config import EmulatorConfig
from posthog_emulator.faults import FaultInjector
from posthog_emulator.server import EmulatorApp, install_log_filter
from posthog_emulator.stats import Stats, StatsSnapshot
from posthog_emulator.store import Store
from posthog_emulator.throttle import SlidingWindowThrottle
from posthog_emulator.timeutil import Clock

HOST = "127.0.0.1"
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0


class Emulator:
    """A local PostHog Insights API.

    `Emulator(config).start()` returns the base URL; `stop()` shuts it down; it is also a context
    manager. `store` exposes the test hooks, `stats` a snapshot of the request counters. `clock`
    replaces the wall clock (epoch seconds) under the store's advanceable clock.
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = config or EmulatorConfig()
        self.clock = Clock(clock)
        self.store = Store(self.config, self.clock)
        self._stats = Stats()
        self.throttle = (
            SlidingWindowThrottle(self.config.rate_limits, self.clock) if self.config.rate_limits else None
        )
        # the other endpoints' bucket (dashboards, sharing): PostHog counts them apart from the insights'
        self.other_throttle = (
            SlidingWindowThrottle(self.config.other_rate_limits, self.clock)
            if self.config.other_rate_limits
            else None
        )
        faults = FaultInjector(self.config.faults) if self.config.faults is not None else None
        self.app = EmulatorApp(
            self.config,
            self.store,
            self._stats,
            {"insights": self.throttle, "other": self.other_throttle},
            faults,
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> str:
        """Bind 127.0.0.1 (config.port, or a free port when 0), serve in a thread, return the base URL."""
        if self._thread is not None:
            return self.base_url
        install_log_filter()
        uv_config = uvicorn.Config(
            self.app,
            host=HOST,
            port=self.config.port,
            log_level="warning",
            log_config=None,  # leave the process's logging configuration alone
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        # Bind here, not in uvicorn's thread, so that a taken port fails `start` itself.
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP; without it every kept-alive response waits ~40 ms (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((HOST, self.config.port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"the emulator could not bind {HOST}:{self.config.port}: {exc}") from exc
        server = uvicorn.Server(uv_config)
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported by start(); a thread must not die noisily
                failure.append(exc)
            finally:
                sock.close()

        thread = threading.Thread(target=serve, name="posthog-emulator", daemon=True)
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the emulator could not start on {HOST}:{self.config.port}: {failure}")
            if time.monotonic() > deadline:
                server.should_exit = True
                thread.join(_STOP_TIMEOUT_S)
                raise RuntimeError("the emulator did not start in time")
            time.sleep(0.002)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        self._server, self._thread = server, thread
        return self.base_url

    def stop(self) -> None:
        """Shut down; idle keep-alive connections are closed, busy ones get one second."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_STOP_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT_S)
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- introspection -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.config.api_key

    @property
    def stats(self) -> StatsSnapshot:
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def advance_clock(self, seconds: float) -> None:
        self.store.advance_clock(seconds)
