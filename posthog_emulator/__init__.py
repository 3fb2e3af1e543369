"""A local HTTP server that behaves like the PostHog Insights API (see docs/posthog-api.md and
posthog_emulator/README.md).

It imports nothing from the `posthog_insights` source: it is the independent stand-in the source is
tested against, so that one misunderstanding of PostHog cannot hide in both.

    from posthog_emulator import Emulator, EmulatorConfig
    with Emulator(EmulatorConfig(insights=500)) as emu:
        emu.base_url, emu.config.api_key   # http://127.0.0.1:PORT, the key to send as Bearer
        emu.store.set_cache_state(1, 7, "stale")
        emu.store.set_background_calcs(10)  # the organisation's users hold every slot
        emu.store.advance_clock(3600)
        emu.stats.kind("retrieve"), emu.stats.throttled, emu.stats.concurrency_refused

Modules: `config` (settings), `runner` (the `Emulator`: uvicorn in a thread), `server` (routes, auth,
throttling, faults, running calculations in slots), `store` (state, cache, hooks), `staleness`
(PostHog's thresholds), `calculations` (the organisation's concurrency slots), `jobs` (async query
statuses), `legacy` (the legacy compute endpoints), `seed` / `synth` (synthetic insights and
results), `listing` (list filters and order), `dashboards` (the dashboards list's filters and
order), `serialize` (PostHog's representations), `activity`, `models`, `throttle`, `faults`, `stats`,
`errors`, `timeutil`, `cli`.
"""

from posthog_emulator.config import EmulatorConfig, FaultConfig
from posthog_emulator.runner import Emulator
from posthog_emulator.stats import StatsSnapshot

__all__ = ["Emulator", "EmulatorConfig", "FaultConfig", "StatsSnapshot"]
