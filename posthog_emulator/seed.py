"""Seeded metadata of a project: users, dashboards, insights of every kind, their initial cache.

Only metadata is made here (a few dozen RNG draws per insight), so 10,000 insights seed in well under
a second; results are synthesised later, on first read. One RNG per project, seeded by the emulator
seed and the project id, makes every run with the same config identical.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from posthog_emulator import synth
from posthog_emulator.config import EmulatorConfig
from posthog_emulator.models import CONCURRENCY_ERROR, SHORT_ID_ALPHABET, Ids, Insight, Project

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


def seed_project(
    config: EmulatorConfig, project_id: int, now: float, ids: Ids
) -> tuple[Project, list[tuple[Insight, float]]]:
    """A project's dashboards and insights, and the `last_refresh` of each insight that starts with a
    cached result (fresh: younger than the ttl; stale: 1.05-4 ttl old, half of them past lazy_async's
    threshold of 2 ttl). Kinds cycle so that they are evenly mixed; broken insights start uncached."""
    rng = random.Random(f"{config.seed}:project:{project_id}")
    ttl = config.cache_ttl_s
    project = Project(project_id)
    n_dashboards = config.dashboards_per_project or max(3, min(50, config.insights // 40))
    for index in range(n_dashboards):
        dashboard_id = ids.dashboard()
        filters: dict[str, Any] = {}
        if index % 3 == 1:
            filters = {"date_from": "-14d"}
        elif index % 3 == 2:
            filters = {"date_from": "-90d", "date_to": None}
        project.dashboards[dashboard_id] = {
            "id": dashboard_id,
            "name": f"Dashboard {index + 1}",
            "filters": filters,
        }
    dashboard_ids = list(project.dashboards)
    cached: list[tuple[Insight, float]] = []
    for index in range(config.insights):
        kind = synth.INSIGHT_KINDS[index % len(synth.INSIGHT_KINDS)]
        variant = _pick_variant(kind, rng)
        legacy = kind != "SQL" and rng.random() < LEGACY_SHARE
        query = None if legacy else synth.make_query(kind, variant, rng, config.points)
        filters = synth.make_legacy_filters(kind, variant, rng, config.points) if legacy else {}
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
        project.add(insight)
        if rng.random() < config.error_share:
            insight.fails = CONCURRENCY_ERROR if rng.random() < 0.34 else rng.choice(GENERIC_ERRORS)
        draw = rng.random()
        age_factor = rng.uniform(1.05, 2.0) if rng.random() < 0.5 else rng.uniform(2.0, 4.0)
        if insight.fails is not None and insight.fails != CONCURRENCY_ERROR:
            continue  # a broken insight never had a result
        if draw < config.fresh_share:
            cached.append((insight, now - rng.uniform(0.0, 0.9) * ttl))
        elif draw < config.fresh_share + config.stale_share:
            cached.append((insight, now - age_factor * ttl))
    return project, cached
