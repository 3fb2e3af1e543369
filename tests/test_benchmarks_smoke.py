"""The benchmark harness at a tiny size: every row of the table is produced with sane figures.

Not a timing test: whether a bound passes depends on the machine and the size, so only the presence and
plausibility of each figure is checked here; the figures themselves belong in `python -m benchmarks.run`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.run import SMOKE, render, run_suite, write_results

EXPECTED_ROWS = (
    "1-requests",
    "2-wall",
    "3-ratelimit",
    "3-ratelimit-force",
    "4-throughput",
    "5-memory",
    "5-memory-insight-size",
    "6-rerun-requests",
    "6-rerun-rows",
    "6-rerun-requests-errors",
    "6-rerun-rows-errors",
    "7-organisation",
    "8-list-async",
    "8-list-async-5n",
    "8-list-blocking",
    "8-list-blocking-5n",
)


@pytest.mark.timeout(120)
def test_harness_produces_every_row(tmp_path: Path) -> None:
    lines: list[str] = []
    suite = run_suite(SMOKE, tmp_path / "work", log=lines.append)

    assert [row.key for row in suite.rows] == list(EXPECTED_ROWS)
    for row in suite.rows:
        assert row.verdict in ("PASS", "FAIL"), row
        assert row.ours and row.bound, row
        for name, value in row.values.items():
            assert math.isfinite(value) and value >= 0, (row.key, name, value)

    n = SMOKE.insights
    pages = math.ceil(n / 100)
    requests = suite.row("1-requests").values
    # the baseline lists and GETs every insight once; ours only lists and GETs stale or missing ones
    assert requests["baseline"] >= pages + n * 0.9
    assert pages < requests["ours"] <= requests["bound"] < requests["baseline"]
    assert suite.row("2-wall").values["ours"] > 0 and suite.row("2-wall").values["baseline"] > 0
    for key in ("3-ratelimit", "3-ratelimit-force"):
        figures = suite.row(key).values
        assert figures["bound_s"] > 0 and figures["ours"] > 0
        assert figures["throttled"] == 0  # the pacer and the emulator agree on the windows
    throughput = suite.row("4-throughput").values
    assert throughput["ours"] > 0 and throughput["baseline"] > 0
    for key in ("5-memory", "5-memory-insight-size"):
        memory = suite.row(key).values
        assert 20 < memory["baseline"] < 4096 and 20 < memory["ours"] < 4096, (key, memory)
    organisation = suite.row("7-organisation").values
    assert organisation["least"] <= organisation["ours"] and organisation["baseline"] > 0
    for tag in ("", "-errors"):
        assert suite.row(f"6-rerun-requests{tag}").values["ours"] >= pages
        assert suite.row(f"6-rerun-rows{tag}").values["ours"] >= 0

    assert suite.machine["nproc"] and suite.machine["dlt"] and suite.machine["duckdb"]
    text = render(suite, markdown=False)
    assert all(row.metric in text for row in suite.rows) and "pass/fail" in text
    written = write_results(suite, tmp_path / "out").read_text()
    assert written.count("\n| ") == len(EXPECTED_ROWS) + 1  # header and one line per row
    assert lines  # progress went to the log callback
