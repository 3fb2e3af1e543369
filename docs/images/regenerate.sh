#!/usr/bin/env sh
# Regenerates the example charts in docs/images from the demo warehouse, with the real `show` command:
#   sh docs/images/regenerate.sh            (from the repository root, with the dev venv installed)
# The demo's emulator is seeded (300 insights, seed 42), so the same insights come back every time; the
# dates follow today's date. Which insight each image shows is looked up by what it is, not by id.
set -eu
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin="$repo/.venv/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin/posthog-insights" demo > demo.log
# a compared trends line, a broken-down funnel, the smallest dashboard with at least six insights
set -- $("$bin/python" - <<'PY'
import duckdb, json
con = duckdb.connect("posthog-insights-demo.duckdb", read_only=True)
con.execute("SET search_path = 'posthog_insights'")
ok = "id IN (SELECT insight_id FROM insight_results_latest WHERE status = 'ok') AND NOT deleted"
compare = con.execute(
    f"SELECT MIN(id) FROM insights WHERE kind = 'trends' AND {ok} "
    "AND json_extract_string(query_json, '$.source.compareFilter.compare') = 'true' "
    "AND json_extract_string(query_json, '$.source.trendsFilter.display') = 'ActionsLineGraph' "
    "AND json_extract_string(query_json, '$.source.interval') = 'day'"
).fetchone()[0]
funnel = con.execute(
    f"SELECT MIN(id) FROM insights WHERE kind = 'funnels' AND {ok} "
    "AND json_extract_string(query_json, '$.source.breakdownFilter.breakdown') IS NOT NULL "
    "AND COALESCE(json_extract_string(query_json, '$.source.funnelsFilter.funnelVizType'), 'steps') = 'steps'"
).fetchone()[0]
members = {}
for (text,) in con.execute("SELECT dashboards_json FROM insights WHERE NOT deleted").fetchall():
    for dashboard in json.loads(text or "[]"):
        members[dashboard] = members.get(dashboard, 0) + 1
dashboard = min((n, d) for d, n in members.items() if n >= 6)[1]
print(compare, funnel, dashboard)
PY
)
show() { "$bin/posthog-insights" show "$@" --pipeline-name posthog_insights_demo --pipelines-dir .posthog-insights-demo; }
show "$1" -o "$repo/docs/images/show-trends-compare.png"
show "$2" -o "$repo/docs/images/show-funnel.png"
show --dashboard "$3" -o "$repo/docs/images/show-dashboard.png"
ls -l "$repo"/docs/images/show-*.png
