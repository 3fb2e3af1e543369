"""Resuming a load package that a killed run left half loaded, without staging a row twice.

Result tables declare their staging data de-duplicated (see `SNAPSHOT_MERGE`): each snapshot is emitted
once per run, and dlt's de-duplication - a ROW_NUMBER window over every staged row - cost gigabytes and
half the load time. A killed load breaks that promise in one place only: a staging copy that committed
before dlt recorded its job as done is copied again when the package resumes, and dlt truncates staging
tables only when a package starts. So a resumed package gets de-duplication back, by clearing the hint in
the schema that the package carries (dlt builds the merge statements from it once all copies are done).
"""

from __future__ import annotations

import dlt

DEDUPLICATED_HINT = "x-stage-data-deduplicated"


def dedupe_resumed_packages(pipeline: dlt.Pipeline) -> list[str]:
    """Turn de-duplication back on in every normalized package still waiting to load; returns their ids.

    Call before `pipeline.run()` / `pipeline.load()` finishes packages a killed run left behind.
    Packages not yet normalized need nothing: their copies have not started.
    """
    packages = pipeline._get_load_storage().normalized_packages  # dlt has no public setter
    resumed: list[str] = []
    for load_id in pipeline.list_normalized_load_packages():
        schema = packages.load_schema(load_id)
        changed = False
        for table in schema.tables.values():
            if table.get(DEDUPLICATED_HINT):
                table[DEDUPLICATED_HINT] = False  # type: ignore[literal-required]
                changed = True
        if changed:
            packages.save_schema(load_id, schema)
            resumed.append(load_id)
    return resumed
