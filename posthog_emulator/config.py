"""Configuration of the emulator: one frozen dataclass per concern.

Every knob has the default a test or the demo wants most often, so `EmulatorConfig()` alone gives a
small, healthy, unthrottled PostHog. Values are checked here, once, so that the server never has to
guard against a nonsensical share or window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULT_KINDS: tuple[str, ...] = ("5xx", "truncate", "drop", "slow")


@dataclass(frozen=True)
class FaultConfig:
    """Per-attempt fault injection on API endpoints.

    `rate` is the probability that one request meets a fault; the fault is drawn from `kinds` with a
    RNG seeded by `seed`, per attempt, so that a retry of the same request can succeed.
    """

    rate: float = 0.1
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 1
    slow_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if not self.kinds:
            raise ValueError("fault kinds must not be empty")
        unknown = [kind for kind in self.kinds if kind not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; known: {list(FAULT_KINDS)}")
        if self.slow_s < 0:
            raise ValueError("slow_s must be >= 0")


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes one emulated PostHog instance.

    `insights` is per project. `fresh_share` + `stale_share` of the insights start with a cached
    result (fresh or stale, each against the insight's own staleness threshold); the rest start with
    none (a cache miss). `rate_limits` are `(requests, seconds)` sliding windows per API key shared by
    the insight endpoints, like PostHog's 240/minute and 1200/hour; `other_rate_limits` those of the
    other throttled endpoints (dashboards, sharing), PostHog's 480/minute and 4800/hour, counted apart.
    All times run on the store's clock, which tests can advance.

    The organisation's concurrency limit: at most `org_concurrency` synchronous calculations run at
    once, `background_calcs` of those slots always taken by the organisation's own users; one
    calculation holds its slot for `calc_ms` of wall time. `stale_invalidation=False` is PostHog
    Cloud's server-side flag turned off: nothing is ever stale.

    The seed's mix: `other_intervals_share` of the time-series insights use an hour, week or month
    interval instead of day; `fixed_range_share` have an absolute date range in the past;
    `other_kinds_share` are the less common result kinds (calendar heatmap and box plot trends,
    sampled retention, events tables, web analytics); 0 seeds only the classic kinds.
    """

    api_key: str = "phx_emulator"
    projects: tuple[int, ...] = (1,)
    insights: int = 200
    seed: int = 7
    points: int = 30
    fresh_share: float = 0.5
    stale_share: float = 0.25
    error_share: float = 0.02
    rate_limits: tuple[tuple[int, float], ...] | None = None
    # The windows of every other throttled viewset (dashboards, sharing): PostHog's default
    # BurstRateThrottle and SustainedRateThrottle, 480/minute and 4800/hour, a bucket of their own.
    other_rate_limits: tuple[tuple[int, float], ...] | None = None
    latency_ms: float = 0.0
    faults: FaultConfig | None = None
    async_delay_s: float = 0.5
    # PostHog's per-organisation limit of simultaneous synchronous calculations.
    org_concurrency: int = 10
    background_calcs: int = 0
    # Small by default so the demo and tests stay fast; a real calculation takes seconds.
    calc_ms: float = 5.0
    stale_invalidation: bool = True
    forbidden_projects: tuple[int, ...] = ()
    allow_query_status: bool = True
    # The key has the `dashboard:read` scope (False: the dashboards endpoints answer 403).
    allow_dashboards: bool = True
    port: int = 0
    timezone: str = "UTC"
    # How long after a compute PostHog refuses another client-requested one (next_allowed_client_refresh).
    client_refresh_s: float = 60.0
    # Users that own insights; the API key belongs to the first.
    users: int = 4
    dashboards_per_project: int = field(default=0)
    other_intervals_share: float = 0.15
    fixed_range_share: float = 0.04
    other_kinds_share: float = 0.04

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("api_key must not be empty")
        if not self.projects:
            raise ValueError("at least one project is needed")
        if len(set(self.projects)) != len(self.projects):
            raise ValueError("project ids must be unique")
        if any(pid <= 0 for pid in (*self.projects, *self.forbidden_projects)):
            raise ValueError("project ids must be positive")
        if self.insights < 0:
            raise ValueError("insights must be >= 0")
        if self.points < 1:
            raise ValueError("points must be >= 1")
        shares = ("fresh_share", "stale_share", "error_share")
        for name in (*shares, "other_intervals_share", "fixed_range_share", "other_kinds_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.fresh_share + self.stale_share > 1.0 + 1e-9:
            raise ValueError("fresh_share + stale_share must not exceed 1")
        for windows in (self.rate_limits, self.other_rate_limits):
            for limit, window in windows or ():
                if limit < 1 or window <= 0:
                    raise ValueError(f"bad rate limit {limit}/{window}")
        if self.latency_ms < 0 or self.async_delay_s < 0 or self.calc_ms < 0:
            raise ValueError("latency_ms, async_delay_s and calc_ms must be >= 0")
        if self.org_concurrency < 1:
            raise ValueError("org_concurrency must be >= 1")
        if not 0 <= self.background_calcs <= self.org_concurrency:
            raise ValueError("background_calcs must be within [0, org_concurrency]")
        if not 0 <= self.port < 65536:
            raise ValueError("port must be within [0, 65535]")
        if self.users < 1:
            raise ValueError("users must be >= 1")
