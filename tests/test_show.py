"""`posthog-insights show`: the chart drawn is the warehouse's latest snapshot, for every kind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from posthog_insights.errors import ConfigError
from posthog_insights_cli.analyst import query, table
from posthog_insights_cli.show import find_insight, render
from tests.conftest import Warehouse


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from posthog_emulator import Emulator, EmulatorConfig
    from tests.conftest import TEST_KEY

    root = tmp_path_factory.mktemp("show")
    warehouse = Warehouse(root)
    with Emulator(
        EmulatorConfig(api_key=TEST_KEY, projects=(1,), insights=30, seed=11, error_share=0.0)
    ) as emu:
        warehouse.load(emu, refresh="blocking")
    return warehouse


def _first(warehouse: Warehouse, kind: str, table_name: str) -> int:
    rows = warehouse.sql(
        f"SELECT DISTINCT insight_id FROM {table_name}_latest WHERE kind = ? ORDER BY 1", kind
    )
    return int(rows[0][0])


def test_trend_lines_are_the_latest_points(loaded: Warehouse) -> None:
    pipeline = loaded.pipeline()
    insight_id = _first(loaded, "trends", "trend_points")
    insight = find_insight(pipeline, str(insight_id), None)
    fig = render(pipeline, insight)
    lines = [list(map(float, line.get_ydata())) for line in fig.axes[0].get_lines()]
    points = table("trend_points", pipeline=pipeline)
    mine = points[(points.insight_id == insight_id) & ~points.is_aggregate]
    expected = [list(g.sort_values("point_index")["value"]) for _, g in mine.groupby("series_index")]
    assert lines == expected
    plt.close(fig)


def test_funnel_bars_are_the_step_counts(loaded: Warehouse) -> None:
    pipeline = loaded.pipeline()
    insight_id = _first(loaded, "funnels", "funnel_steps")
    fig = render(pipeline, find_insight(pipeline, str(insight_id), None))
    heights = sorted(int(p.get_height()) for p in fig.axes[0].patches)
    counts = query(f"SELECT count FROM funnel_steps_latest WHERE insight_id = {insight_id}", pipeline)
    assert heights == sorted(int(c) for c in counts["count"])
    plt.close(fig)


def test_retention_heatmap_is_the_cohort_shares(loaded: Warehouse) -> None:
    pipeline = loaded.pipeline()
    insight_id = _first(loaded, "retention", "retention_cells")
    fig = render(pipeline, find_insight(pipeline, str(insight_id), None))
    image = fig.axes[0].get_images()[0].get_array()
    cells = loaded.sql(
        "SELECT cohort_index, period_index, count FROM retention_cells_latest WHERE insight_id = ?",
        insight_id,
    )
    first = {c: n for c, p, n in cells if p == 0}
    for cohort, period, count in cells:
        if first[cohort]:
            assert image[cohort, period] == pytest.approx(100 * count / first[cohort])
    plt.close(fig)


def test_every_kind_renders_a_png(loaded: Warehouse, tmp_path: Path) -> None:
    pipeline = loaded.pipeline()
    kinds = dict(loaded.sql("SELECT kind, MIN(id) FROM insights GROUP BY kind"))
    assert set(kinds) == {"trends", "stickiness", "lifecycle", "funnels", "retention", "paths", "sql"}
    for kind, insight_id in kinds.items():
        fig = render(pipeline, find_insight(pipeline, str(insight_id), None))
        output = tmp_path / f"{kind}.png"
        fig.savefig(output)
        plt.close(fig)
        assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and output.stat().st_size > 10_000


def test_show_cli_by_short_id(loaded: Warehouse, tmp_path: Path) -> None:
    short_id = loaded.sql("SELECT short_id FROM insights WHERE kind = 'paths' ORDER BY id LIMIT 1")[0][0]
    output = tmp_path / "paths.png"
    command = [sys.executable, "-m", "posthog_insights_cli.main", "show", short_id, "-o", str(output)]
    command += ["--pipeline-name", loaded.pipeline_name, "--pipelines-dir", str(loaded.pipelines_dir)]
    env = {**os.environ, "DESTINATION__DUCKDB__CREDENTIALS": str(loaded.path)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert f"wrote {output}" in done.stdout
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_insight_is_a_clear_error(loaded: Warehouse) -> None:
    with pytest.raises(ConfigError, match="not in the warehouse"):
        find_insight(loaded.pipeline(), "nosuchid", None)
