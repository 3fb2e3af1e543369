"""`posthog-insights` exactly as installed, plus a log of the phase it is in, for the crash loop.

    RELIABILITY_PHASE_LOG=/tmp/phases python crash_driver.py run --host ... --project-id 1

Each phase (dlt's extract, normalize and load, our views) appends `<monotonic time> <phase>` to the log
and fsyncs it before the phase starts, so after a SIGKILL the last line says which phase was cut short
(`time.monotonic()` is system-wide on Linux: the parent compares it with the time of its kill).

`RELIABILITY_KILL_AT=<hook>` kills the process itself at a precise point instead (SIGKILL, no cleanup):
`second_extract` as the second load package of a run starts extracting (the first one is loaded);
`after_commit` right after dlt committed an extracted package but before it saved the local state;
`after_staging_copy` once trend_points' rows are copied into the staging dataset, before dlt records the
job as done; `before_complete` when every job of the package is loaded but dlt has not yet marked it
complete.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

_LOG = os.environ.get("RELIABILITY_PHASE_LOG")
_KILL_AT = os.environ.get("RELIABILITY_KILL_AT", "")


def mark(phase: str) -> None:
    if not _LOG:
        return
    with open(_LOG, "a", encoding="utf-8") as out:
        out.write(f"{time.monotonic():.6f} {phase}\n")
        out.flush()
        os.fsync(out.fileno())


def _phase(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mark(name)
        return method(*args, **kwargs)

    return wrapper


def main() -> int:
    mark("start")
    from dlt.pipeline.pipeline import Pipeline

    import posthog_insights_cli.loader as loader
    from posthog_insights_cli.main import main as cli_main

    Pipeline.extract = _phase("extract", Pipeline.extract)  # type: ignore[method-assign]
    Pipeline.normalize = _phase("normalize", Pipeline.normalize)  # type: ignore[method-assign]
    Pipeline.load = _phase("load", Pipeline.load)  # type: ignore[method-assign]
    setattr(loader, "create_latest_views", _phase("views", getattr(loader, "create_latest_views")))  # noqa: B009, B010

    if _KILL_AT == "second_extract":
        extract = Pipeline.extract
        extracts: list[int] = []

        def die_on_second(self: Any, *args: Any, **kwargs: Any) -> Any:
            extracts.append(1)
            if len(extracts) == 2:
                mark("killed-at-second-extract")
                os.kill(os.getpid(), signal.SIGKILL)
            return extract(self, *args, **kwargs)

        Pipeline.extract = die_on_second  # type: ignore[method-assign]
    if _KILL_AT == "after_commit":
        from dlt.extract.extract import Extract

        commit = Extract.commit_packages

        def commit_then_die(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = commit(self, *args, **kwargs)
            mark("killed-after-commit")
            os.kill(os.getpid(), signal.SIGKILL)
            return result

        Extract.commit_packages = commit_then_die  # type: ignore[method-assign]
    if _KILL_AT == "after_staging_copy":
        from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob

        copy = DuckDbCopyJob.run

        def copy_then_die(self: Any) -> None:
            copy(self)
            if "trend_points" in os.path.basename(self._file_path):
                mark("killed-after-staging-copy")
                os.kill(os.getpid(), signal.SIGKILL)

        DuckDbCopyJob.run = copy_then_die  # type: ignore[method-assign]
    if _KILL_AT == "before_complete":
        from dlt.load.load import Load

        def die(self: Any, *args: Any, **kwargs: Any) -> None:
            mark("killed-before-complete")
            os.kill(os.getpid(), signal.SIGKILL)

        Load.complete_package = die  # type: ignore[method-assign]
    mark("imported")
    code = cli_main(sys.argv[1:])
    mark("done")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
