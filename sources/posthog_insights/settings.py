"""Constants shared by the source: defaults, refresh modes, table names.

Kept in one place so that the CLI, the planner and the docs cannot drift apart.
"""

from __future__ import annotations

from typing import Final, Literal

DEFAULT_HOST: Final = "https://us.posthog.com"
DEFAULT_PAGE_SIZE: Final = 100
# List pages fetched ahead of the one being read (their requests still go through the pacer): reading 20
# pages one after another left the first rate window 1.1 s idle at 50 ms latency.
LIST_PREFETCH_PAGES: Final = 8
# The list is always ordered explicitly: PostHog's default order is unstable (nullable column, no
# tie-breaker), so pages can repeat or skip rows.
LIST_ORDER: Final = "id"

RefreshMode = Literal[
    "force_cache",
    "blocking",
    "async",
    "async_except_on_cache_miss",
    "lazy_async",
    "force_blocking",
    "force_async",
]
REFRESH_MODES: Final[tuple[str, ...]] = (
    "force_cache",
    "blocking",
    "async",
    "async_except_on_cache_miss",
    "lazy_async",
    "force_blocking",
    "force_async",
)
DEFAULT_REFRESH: Final = "blocking"

# PostHog's limits for the insights endpoints, per personal API key: (requests, seconds) sliding windows.
DEFAULT_RATE_LIMITS: Final[tuple[tuple[int, float], ...]] = ((240, 60.0), (1200, 3600.0))
DEFAULT_CONCURRENCY: Final = 4
DEFAULT_TIMEOUT_S: Final = 60.0
DEFAULT_MAX_RETRIES: Final = 5
# Longest single 429 wait we sit through; a longer one stops the run gracefully (what was fetched loads).
DEFAULT_MAX_WAIT_S: Final = 300.0
DEFAULT_POLL_DEADLINE_S: Final = 300.0
# An insight whose calculation failed is not retrieved again until this long after the failure (unless its
# definition changed): an immediate retry mostly fails again. Under an hourly schedule every run retries.
DEFAULT_RETRY_ERRORS_AFTER_S: Final = 1800.0

# Outcome statuses in `insight_results` (a user-facing contract).
STATUS_OK: Final = "ok"
STATUS_CACHE_MISS: Final = "cache_miss"
STATUS_PENDING: Final = "pending"
STATUS_ERROR: Final = "error"

TABLE_INSIGHTS: Final = "insights"
TABLE_RESULTS: Final = "insight_results"
TIDY_TABLES: Final[tuple[str, ...]] = (
    "trend_points",
    "funnel_steps",
    "funnel_conversion_bins",
    "retention_cells",
    "path_edges",
    "sql_rows",
)
