"""The result table (text for the terminal, markdown for the README) and the machine it was measured on."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HEADERS = ("metric", "ours", "baseline", "ratio / bound", "pass/fail")


@dataclass(frozen=True)
class Row:
    key: str  # stable identifier, e.g. "1-requests"
    metric: str
    ours: str
    baseline: str
    bound: str  # "ratio / bound" column: the measured ratio and the bound it is held to
    passed: bool | None  # None: informational, no bound
    values: dict[str, float] = field(default_factory=dict)  # raw figures, for the smoke test and JSON

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else ("PASS" if self.passed else "FAIL")

    def cells(self) -> tuple[str, str, str, str, str]:
        return (self.metric, self.ours, self.baseline, self.bound, self.verdict)


def render_text(rows: list[Row]) -> str:
    table = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(HEADERS), rule, *(line(row.cells()) for row in rows)])


def _md(cell: str) -> str:
    return cell.replace("|", "\\|")


def render_markdown(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join(("---", "---:", "---:", "---", ":---:")) + "|",
    ]
    lines += ["| " + " | ".join(_md(cell) for cell in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, str]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0
    return {
        "nproc": str(cpus),
        "cpu": _cpu_model(),
        "ram": f"{_ram_gib():.1f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "dlt": _version("dlt"),
        "duckdb": _version("duckdb"),
        "pyarrow": _version("pyarrow"),
        "httpx": _version("httpx"),
    }
