"""Seeded metadata of a project: users, dashboards, insights of every kind (and their tiles), their
initial cache.

Only metadata is made here (a few dozen RNG draws per insight), so 10,000 insights seed in well under
a second; results are synthesised later, on first read. One RNG per project, seeded by the emulator
seed and the project id, makes every run with the same config identical.

The mix exercises PostHog's rules: kinds cycle evenly; most time series are daily over a relative
range, some hourly, weekly or monthly (each goes stale after its own threshold), a few cover a fixed
past range (computed after it ended, so never stale though their cache_target_age has passed); a
few percent are the less common result kinds, placed at regular positions so that every one of them
exists in any project of a few hundred insights.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from posthog_emulator import staleness, synth
from posthog_emulator.config import EmulatorConfig
from posthog_emulator.models import SHORT_ID_ALPHABET, Dashboard, Ids, Insight, Project

TAG_POOL: tuple[str, ...] = ("marketing", "growth", "product", "kpi", "exec", "experiment", "onboarding")
FIRST_NAMES: tuple[str, ...] = ("Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances")
GENERIC_ERRORS: tuple[str, ...] = (
    "Query exceeds memory limits. Try reducing its scope by changing the time range.",
    "Estimated query execution time is too long. Try reducing its scope by changing the time range.",
    "Could not compute the insight: a column it references no longer exists.",
)
# Result variants per kind, with their shares.
VARIANTS: dict[str, tuple[tuple[str, float], ...]] = {
    "TRENDS": (("line", 0.45), ("breakdown", 0.2), ("compare", 0.15), ("number", 0.2)),
    "FUNNELS": (("steps", 0.4), ("breakdown", 0.2), ("time_to_convert", 0.2), ("trends", 0.2)),
    "RETENTION": (("cohorts", 0.7), ("breakdown", 0.3)),
    "SQL": (("viz", 0.5), ("table", 0.5)),
}
LEGACY_SHARE = 0.06
# The less common result kinds, as (kind, variant), in the order their positions cycle through.
OTHER_VARIANTS: tuple[tuple[str, str], ...] = (
    ("TRENDS", "calendar_heatmap"),
    ("TRENDS", "boxplot"),
    ("RETENTION", "sampled"),
    ("JSON", "events"),
    ("JSON", "web_overview"),
    ("JSON", "web_stats"),
)
OTHER_INTERVALS: tuple[str, ...] = ("hour", "week", "month")
RETENTION_PERIODS: tuple[str, ...] = ("week", "month")
# Kinds whose query has an interval and a date range.
TIME_SERIES_KINDS = frozenset({"TRENDS", "STICKINESS", "LIFECYCLE", "FUNNELS", "RETENTION"})


def make_user(seed: int, user_id: int) -> dict[str, Any]:
    """A user as PostHog's UserBasicSerializer shows it."""
    rng = random.Random(f"{seed}:user:{user_id}")
    first = FIRST_NAMES[(user_id - 1) % len(FIRST_NAMES)]
    return {
        "id": user_id,
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "distinct_id": "".join(rng.choice(SHORT_ID_ALPHABET) for _ in range(43)),
        "first_name": first,
        "last_name": "",
        "email": f"{first.lower()}{user_id}@example.com",
        "is_email_verified": True,
        "hedgehog_config": None,
        "role_at_organization": "engineering",
    }


def _pick_variant(kind: str, rng: random.Random) -> str:
    choices = VARIANTS.get(kind, (("default", 1.0),))
    draw = rng.random()
    for name, share in choices:
        if draw < share:
            return name
        draw -= share
    return choices[-1][0]


def _kind_and_variant(config: EmulatorConfig, index: int, rng: random.Random) -> tuple[str, str]:
    kind = synth.INSIGHT_KINDS[index % len(synth.INSIGHT_KINDS)]
    variant = _pick_variant(kind, rng)
    if config.other_kinds_share > 0:
        step = max(1, round(1 / config.other_kinds_share))
        if (index + 1) % step == 0:
            return OTHER_VARIANTS[(index // step) % len(OTHER_VARIANTS)]
    return kind, variant


def _interval(config: EmulatorConfig, kind: str, variant: str, rng: random.Random) -> str:
    if kind not in TIME_SERIES_KINDS or variant == "calendar_heatmap":
        return "day"
    if rng.random() >= config.other_intervals_share:
        return "day"
    return rng.choice(RETENTION_PERIODS if kind == "RETENTION" else OTHER_INTERVALS)


def _fixed_range(interval: str, points: int, now: float, rng: random.Random) -> dict[str, Any]:
    """An absolute range that ended 20 to 200 days ago, about `points` intervals long."""
    date_to = datetime.fromtimestamp(now, UTC).date() - timedelta(days=rng.randint(20, 200))
    span_days = {"hour": 2, "week": 7 * points, "month": 30 * points}.get(interval, points - 1)
    date_from = date_to - timedelta(days=max(span_days, 1))
    return {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}


def _seeded_age(interval: str | None, fresh: bool, rng: random.Random) -> float:
    """A cached result's age against the insight's own thresholds: fresh (younger than 0.9 of the
    default threshold), or stale, half of those also past lazy_async's longer threshold."""
    default = staleness.threshold(interval) or staleness.DEFAULT_THRESHOLDS[None]
    lazy = staleness.threshold(interval, lazy=True) or staleness.LAZY_THRESHOLDS[None]
    if fresh:
        return rng.uniform(0.0, 0.9) * default
    if rng.random() < 0.5 and lazy > default:
        return default + rng.uniform(0.05, 0.95) * (lazy - default)
    return lazy * rng.uniform(1.05, 2.0)


def seed_project(
    config: EmulatorConfig, project_id: int, now: float, ids: Ids
) -> tuple[Project, list[tuple[Insight, float]]]:
    """A project's dashboards and insights, and the `last_refresh` of each insight that starts with a
    cached result. Broken insights start uncached (their calculations fail); a fixed past range is
    cached from after its end, with a cache_target_age long passed."""
    rng = random.Random(f"{config.seed}:project:{project_id}")
    project = Project(project_id)
    n_dashboards = config.dashboards_per_project or max(3, min(50, config.insights // 40))
    # the dashboards' own attributes draw from an RNG of their own: the insights' draws stay as they were
    looks = random.Random(f"{config.seed}:dashboards:{project_id}")
    for index in range(n_dashboards):
        dashboard_id = ids.dashboard()
        filters: dict[str, Any] = {}
        if index % 3 == 1:
            filters = {"date_from": "-14d"}
        elif index % 3 == 2:
            filters = {"date_from": "-90d", "date_to": None}
        created_at = now - looks.uniform(2 * 86400, 400 * 86400)
        project.dashboards[dashboard_id] = Dashboard(
            id=dashboard_id,
            project_id=project_id,
            name=f"Dashboard {index + 1}",
            description=looks.choice(("", "", f"What the {TAG_POOL[index % len(TAG_POOL)]} team watches")),
            pinned=index % 4 == 0,
            created_at=created_at,
            created_by=looks.randint(1, config.users),
            filters=filters,
            tags=sorted(looks.sample(TAG_POOL, looks.choice((0, 1, 2)))),
            last_accessed_at=created_at + looks.uniform(0, now - created_at)
            if looks.random() < 0.8
            else None,
        )
    dashboard_ids = list(project.dashboards)
    cached: list[tuple[Insight, float]] = []
    for index in range(config.insights):
        kind, variant = _kind_and_variant(config, index, rng)
        interval = _interval(config, kind, variant, rng)
        classic = (kind, variant) not in OTHER_VARIANTS
        legacy = classic and kind != "SQL" and rng.random() < LEGACY_SHARE
        fixed = (
            not legacy
            and kind in TIME_SERIES_KINDS
            and variant != "calendar_heatmap"
            and rng.random() < config.fixed_range_share
        )
        date_range = _fixed_range(interval, config.points, now, rng) if fixed else None
        query = (
            None
            if legacy
            else synth.make_query(kind, variant, rng, config.points, interval=interval, date_range=date_range)
        )
        filters = (
            synth.make_legacy_filters(kind, variant, rng, config.points, interval=interval) if legacy else {}
        )
        created_at = now - rng.uniform(2 * 86400, 400 * 86400)
        last_modified_at = created_at + rng.uniform(0, now - created_at - 3600)
        on_dashboards = rng.sample(dashboard_ids, rng.choice((1, 1, 2))) if rng.random() < 0.3 else []
        name = f"{variant.replace('_', ' ')} {kind.lower()} #{index + 1}"
        unnamed = rng.random() < 0.1
        insight = Insight(
            id=ids.insight(),
            short_id=ids.short_id(rng),
            project_id=project_id,
            name="" if unnamed else name.capitalize(),
            derived_name=name if unnamed else None,
            description=rng.choice(("", "", f"Tracks {variant} for the {kind.lower()} team", None)),
            query=query,
            filters=filters,
            saved=rng.random() < 0.9,
            favorited=rng.random() < 0.15,
            tags=sorted(rng.sample(TAG_POOL, rng.choice((0, 0, 1, 2)))),
            dashboards=sorted(on_dashboards),
            order=rng.randint(0, 3) if rng.random() < 0.05 else None,
            created_at=created_at,
            created_by=rng.randint(1, config.users),
            last_modified_at=last_modified_at,
            last_modified_by=rng.randint(1, config.users),
            updated_at=last_modified_at + rng.uniform(0, 60),
            seeded=True,
        )
        insight.refresh_definition()
        ids.place(insight)
        project.add(insight)
        if rng.random() < config.error_share:
            insight.fails = rng.choice(GENERIC_ERRORS)
        draw = rng.random()
        if insight.fails is not None or draw >= config.fresh_share + config.stale_share:
            continue  # a broken insight never had a result; the rest start as cache misses
        if date_range is not None:
            ended = datetime.combine(
                datetime.fromisoformat(date_range["date_to"]).date(), time.max, UTC
            ).timestamp()
            cached.append((insight, min(ended + rng.uniform(0.5, 10) * 86400, now - 2 * 86400)))
            continue
        age = _seeded_age(insight.shape.interval, draw < config.fresh_share, rng)
        cached.append((insight, now - age))
    return project, cached
