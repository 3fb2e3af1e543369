"""`dashboards` and `dashboard_tiles`: PostHog's dashboards as they are, and which insight sits in which tile.

Where each comes from is the cheapest faithful source PostHog has (docs/posthog-api.md, "Dashboards"):

* `dashboards` from the dashboards list: one request per project per run (one page of up to
  `DASHBOARDS_PAGE_SIZE`; PostHog orders that list with no tie-breaker, so one page also keeps it from
  repeating or skipping dashboards). The list carries metadata only; it never reads a result nor computes.
* `dashboard_tiles` from the `dashboard_tiles` of the insights the listing reads anyway: no request at
  all. PostHog shows there exactly an insight's live tiles on live dashboards, with the tile ids.
* No retrieve per dashboard. It would cost a request per dashboard per run, carry every tile's insight
  with its result again, and write the dashboard's `last_accessed_at`, which makes PostHog keep the
  dashboard's insights warm (recomputed hourly) for a week; all it would add is the dashboards' own
  `filters`, which the list lacks. A dashboard's view of its insights is loaded by `--from-dashboard` and
  `backfill --dashboard` instead (variant `dashboard=ID`).

On by default (`include_dashboards`): ~one request per project per run, in PostHog's default rate bucket
(480/min, 4800/h), not the insights' one, buys the join from results to the dashboards people look at.
Not set, a key without the `dashboard:read` scope (keys made for `insight:read` alone) loads no
dashboards and says so in the log, so existing pipelines keep their exit code; `True` makes that a
reported failure (in the report's `unfetched`, as a missing `activity_log:read` is); `False` (or
selecting other resources) spends no dashboards request at all.

The network part runs inside the listing resource, after the last list page and before the plan goes
to the retrieval, so its requests are counted before the retrieval spends what is left of
`max_requests`, and a run whose listing failed or stopped early asks for no dashboards (the same key,
origin and project would fail the same way). Its requests go through the run's client, pacer and counts.

The table part keeps, in each table resource's dlt state, what it loaded: a row is emitted only when it
changed, so a re-run with nothing changed loads nothing. A dashboard a whole list no longer shows stays,
with `deleted = true` (its last row read back from the destination); a tile stays with `deleted = true`
when its insight is listed without it, when its insight vanished, or when its dashboard did.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

from posthog_insights.client import PostHogClient
from posthog_insights.config import PostHogInsightsSettings
from posthog_insights.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    PostHogInsightsError,
    RateLimitExceededError,
)
from posthog_insights.events import ListedPage, Vanished
from posthog_insights.outcomes import utcnow
from posthog_insights.report import RunReport
from posthog_insights.rows import DASHBOARD_TILES_SCHEMA, DASHBOARDS_SCHEMA, dashboard_row, table, tile_row

log = logging.getLogger("posthog_insights")


@dataclass(frozen=True)
class DashboardsListed:
    """A project's dashboards list: every item it showed, and whether it was whole (then a dashboard it
    no longer shows was deleted)."""

    project_id: int
    items: Sequence[Mapping[str, Any]]
    seen_at: datetime
    complete: bool


def _listing_failed(report: RunReport, project_id: int) -> bool:
    """Whether the listing recorded this project as not fetched (listing.py's `project N: ...` line)."""
    return any(line.startswith(f"project {project_id}:") for line in report.unfetched)


async def list_dashboards(
    client: PostHogClient, settings: PostHogInsightsSettings, report: RunReport, spent: Callable[[], int]
) -> AsyncIterator[DashboardsListed]:
    """Each project's dashboards list, after its listing: skipped where the listing failed or the run
    stopped early, and once `max_requests` is spent (`spent()`: requests so far; the next run lists them)."""
    for project_id in settings.projects:
        if report.stopped_early or _listing_failed(report, project_id):
            continue
        if settings.max_requests is not None and spent() >= settings.max_requests:
            log.info("dashboards of project %s left for the next run: max_requests is spent", project_id)
            continue
        try:
            items, complete = await client.list_dashboards(project_id)
        except AuthenticationError:
            raise  # a rejected key fails everything alike
        except RateLimitExceededError as exc:
            report.stopped_early = report.stopped_early or str(exc)
            return
        except (PermissionDeniedError, NotFoundError) as exc:
            if settings.include_dashboards:
                log.warning("dashboards of project %s not loaded: %s", project_id, exc)
                report.unfetched.append(
                    f"dashboards of project {project_id}: {exc}; or leave them out with --no-dashboards"
                )
            else:  # not asked for: the key was made for insights only, which is no failure of the run
                log.info(
                    "dashboards of project %s not loaded (give the key dashboard:read to load them, or"
                    " pass --no-dashboards): %s",
                    project_id,
                    exc,
                )
            continue
        except PostHogInsightsError as exc:
            report.unfetched.append(f"dashboards of project {project_id}: {exc}")
            continue
        log.info("project %s: listed %d dashboards", project_id, len(items))
        yield DashboardsListed(project_id, items, utcnow(), complete)


# -- the table side (dlt's main thread) -----------------------------------------------------------------


def _projects(state: MutableMapping[str, Any], project_id: int) -> MutableMapping[str, Any]:
    entry: MutableMapping[str, Any] = state.setdefault("projects", {}).setdefault(str(project_id), {})
    return entry


def _digest(row: Mapping[str, Any]) -> str:
    content = {k: v for k, v in row.items() if k != "seen_at"}
    return orjson.dumps(content, default=str, option=orjson.OPT_SORT_KEYS).decode()


class DashboardLedger:
    """Rows of `dashboards`. State (the resource's): per project, `known`: dashboard id -> what its last
    loaded row held (so an unchanged dashboard is not loaded again)."""

    def __init__(self, state: MutableMapping[str, Any]) -> None:
        self._state = state

    def listed(
        self, event: DashboardsListed, previous: Callable[[int, list[int]], list[Mapping[str, Any]]]
    ) -> pa.Table | None:
        """The rows of what changed, and of what a whole list no longer shows (`previous(project, ids)`
        reads their last rows back), flagged deleted."""
        known: MutableMapping[str, str] = _projects(self._state, event.project_id).setdefault("known", {})
        rows: list[dict[str, Any]] = []
        listed: set[str] = set()
        for item in event.items:
            row = dashboard_row(event.project_id, item, event.seen_at)
            key, digest = str(row["id"]), _digest(row)
            listed.add(key)
            if known.get(key) != digest:
                known[key] = digest
                rows.append(row)
        gone = sorted(int(key) for key in set(known) - listed) if event.complete else []
        if gone:
            for old in previous(event.project_id, gone):
                kept = {name: old.get(name) for name in DASHBOARDS_SCHEMA.names}
                kept.update(project_id=event.project_id, deleted=True, seen_at=event.seen_at)
                rows.append(kept)
                known.pop(str(old["id"]), None)
        return table(rows, DASHBOARDS_SCHEMA) if rows else None


class TileLedger:
    """Rows of `dashboard_tiles`. State (the resource's): per project, `tiles`: insight id -> its live
    tiles loaded, as [tile id, dashboard id]; `listed`: the dashboards the last whole list showed."""

    def __init__(self, state: MutableMapping[str, Any]) -> None:
        self._state = state

    def listed_page(self, page: ListedPage) -> pa.Table | None:
        """Each insight's tiles as the list shows them: the new or moved ones live, the ones it lost
        deleted. An item without `dashboard_tiles` (not PostHog's shape) is left as it was."""
        loaded = _projects(self._state, page.project_id).setdefault("tiles", {})
        rows: list[dict[str, Any]] = []
        for item in page.items:
            shown = item.get("dashboard_tiles")
            if not isinstance(shown, list):
                continue
            insight_id = int(item["id"])
            now = sorted(
                [int(t["id"]), int(t["dashboard_id"])]
                for t in shown
                if isinstance(t, Mapping) and isinstance(t.get("id"), int) and not t.get("deleted")
            )
            before = loaded.get(str(insight_id), [])
            if now == before:
                continue
            rows += self._changes(page.project_id, insight_id, before, now, page.seen_at)
            if now:
                loaded[str(insight_id)] = now
            else:
                loaded.pop(str(insight_id), None)
        return table(rows, DASHBOARD_TILES_SCHEMA) if rows else None

    def vanished(self, event: Vanished, seen_at: datetime) -> pa.Table | None:
        """Insights PostHog deleted: their tiles were soft-deleted with them."""
        loaded = _projects(self._state, event.project_id).setdefault("tiles", {})
        rows: list[dict[str, Any]] = []
        for insight_id in event.insight_ids:
            before = loaded.pop(str(insight_id), [])
            rows += self._changes(event.project_id, int(insight_id), before, [], seen_at)
        return table(rows, DASHBOARD_TILES_SCHEMA) if rows else None

    def dashboards_listed(self, event: DashboardsListed) -> pa.Table | None:
        """Dashboards a whole list no longer shows (deleted): their tiles went with them, also those of
        insights this run did not list (a filtered run)."""
        if not event.complete:
            return None
        entry = _projects(self._state, event.project_id)
        now = {int(item["id"]) for item in event.items}
        gone = set(entry.get("listed", [])) - now
        entry["listed"] = sorted(now)
        if not gone:
            return None
        loaded = entry.setdefault("tiles", {})
        rows: list[dict[str, Any]] = []
        for key in sorted(loaded, key=int):
            before = loaded[key]
            kept = [tile for tile in before if tile[1] not in gone]
            if kept == before:
                continue
            rows += self._changes(event.project_id, int(key), before, kept, event.seen_at)
            if kept:
                loaded[key] = kept
            else:
                del loaded[key]
        return table(rows, DASHBOARD_TILES_SCHEMA) if rows else None

    @staticmethod
    def _changes(
        project_id: int, insight_id: int, before: list[list[int]], now: list[list[int]], seen_at: datetime
    ) -> list[dict[str, Any]]:
        """Rows of the tiles that are new or moved (live) and of those no longer shown (deleted)."""
        old = {tile_id: dashboard_id for tile_id, dashboard_id in before}
        new = {tile_id: dashboard_id for tile_id, dashboard_id in now}
        rows = [
            tile_row(project_id, tile_id, dashboard_id, insight_id, seen_at, deleted=False)
            for tile_id, dashboard_id in sorted(new.items())
            if old.get(tile_id) != dashboard_id
        ]
        rows += [
            tile_row(project_id, tile_id, dashboard_id, insight_id, seen_at, deleted=True)
            for tile_id, dashboard_id in sorted(old.items())
            if tile_id not in new
        ]
        return rows
