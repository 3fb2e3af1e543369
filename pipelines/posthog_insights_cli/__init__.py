"""The `posthog-insights` command line and the small Python API beside it (`load`)."""

from posthog_insights_cli.loader import LoadResult, load

__all__ = ["LoadResult", "load"]
