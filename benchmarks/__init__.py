"""Benchmarks: `python -m benchmarks.run` prints a table of ratios against the issue's bounds.

Not timed tests: every figure is measured and printed, and the smoke test only checks that each row is
produced with sane numbers. Network traffic stays on 127.0.0.1: the PostHog emulator runs in its own
process (so its CPU does not share the GIL with the client under test) and dlt's telemetry is off.
"""

from __future__ import annotations

import os

# dlt reads these when a pipeline is created; set them before anything here builds one.
QUIET_ENV: dict[str, str] = {
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "RUNTIME__LOG_LEVEL": "ERROR",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
for _name, _value in QUIET_ENV.items():
    os.environ.setdefault(_name, _value)
