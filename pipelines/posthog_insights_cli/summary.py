"""The end-of-run summary: rows per table, requests by kind, 429s met, time taken."""

from __future__ import annotations

from posthog_insights_cli.loader import LoadResult


def format_summary(result: LoadResult) -> str:
    report = result.report
    lines = [f"posthog-insights: run finished in {result.seconds:.1f}s"]
    if report.plan:
        lines.append(f"  planned: {report.plan}")
    lines.append(
        f"  insights listed: {report.insights_listed}; refreshed after the listing:"
        f" {report.retrieves_planned} ({report.computing_reads} list reads computing); async jobs started:"
        f" {report.jobs_started}; deferred to next run: {report.deferred}; failed recently, retried later:"
        f" {report.retry_later}; flagged deleted: {report.deleted_flagged}"
    )
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "none"
    lines.append(f"  outcomes: {outcomes}; unchanged since last load: {report.skipped_unchanged}")
    requests = report.requests
    by_kind = requests.get("by_kind", {})
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(by_kind.items())) or "none"
    lines.append(
        f"  requests: {requests.get('requests', 0)} ({kinds}); 429s met: {requests.get('throttled', 0)}; "
        f"retries: {requests.get('retries', 0)}; paced waits: {requests.get('paced_wait_s', 0):.1f}s"
    )
    packages = f" (in {result.packages} load packages)" if result.packages > 1 else ""
    lines.append(f"  rows loaded{packages}:")
    if result.row_counts:
        width = max(len(t) for t in result.row_counts)
        for table, rows in sorted(result.row_counts.items()):
            lines.append(f"    {table:<{width}}  {rows:>10,}")
    else:
        lines.append("    (nothing new)")
    if result.views:
        lines.append(f"  views: {', '.join(result.views)}")
    if report.stopped_early:
        lines.append(f"  STOPPED EARLY: {report.stopped_early}")
    for line in report.unfetched[:20]:
        lines.append(f"  NOT FETCHED: {line}")
    if len(report.unfetched) > 20:
        lines.append(f"  ... and {len(report.unfetched) - 20} more not fetched")
    return "\n".join(lines)
