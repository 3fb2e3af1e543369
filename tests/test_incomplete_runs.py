"""A plain dlt pipeline (as Airflow's and Dagster's helpers run the source) says when a run is incomplete:
a warning when some insights could not be fetched, a failed run when nothing could be listed at all."""

from __future__ import annotations

import logging
from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from posthog_emulator import Emulator, EmulatorConfig
from posthog_insights import posthog_insights_source
from posthog_insights.errors import PostHogInsightsError
from tests.conftest import TEST_KEY
from tests.reliability.support import closed_port


def _pipeline(root: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="plain",
        destination=dlt.destinations.duckdb(str(root / "plain.duckdb")),
        dataset_name="posthog_insights",
        pipelines_dir=str(root / "pipelines"),
    )


def test_a_project_the_key_may_not_read_is_a_warning_and_the_rest_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = EmulatorConfig(api_key=TEST_KEY, projects=(1,), forbidden_projects=(3,), insights=10)
    with Emulator(config) as emulator, caplog.at_level(logging.WARNING, logger="posthog_insights"):
        source = posthog_insights_source(
            host=emulator.base_url, project_ids=[1, 3], personal_api_key=TEST_KEY, rate_limit="off"
        )
        _pipeline(tmp_path).run(source)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "could not fetch everything" in warnings[0] and "project 3" in warnings[0]
    assert TEST_KEY not in warnings[0]
    with duckdb.connect(str(tmp_path / "plain.duckdb"), read_only=True) as con:
        assert con.sql("SELECT COUNT(*) FROM posthog_insights.insights").fetchone() == (10,)


def test_a_run_that_can_list_nothing_fails(tmp_path: Path) -> None:
    source = posthog_insights_source(
        host=f"http://127.0.0.1:{closed_port()}",
        project_ids=[1, 2],
        personal_api_key=TEST_KEY,
        max_retries=0,
        rate_limit="off",
    )
    pipeline = _pipeline(tmp_path)
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline.run(source)
    cause: BaseException | None = failed.value
    while cause is not None and not isinstance(cause, PostHogInsightsError):
        cause = cause.__cause__ or cause.__context__
    assert cause is not None and "check that host is right" in str(cause)
