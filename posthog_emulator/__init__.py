"""A local HTTP server that behaves like the PostHog Insights API (see API-FACTS.md).

It imports nothing from the `posthog_insights` source: it is the independent stand-in the source is
tested against, so that one misunderstanding of PostHog cannot hide in both.

    from posthog_emulator import Emulator, EmulatorConfig
    with Emulator(EmulatorConfig(insights=500)) as emu:
        emu.base_url, emu.config.api_key   # http://127.0.0.1:PORT, the key to send as Bearer
        emu.store.set_cache_state(1, 7, "stale")
        emu.store.advance_clock(3600)
        emu.stats.kind("retrieve"), emu.stats.throttled

Modules: `config` (settings), `runner` (the `Emulator`: uvicorn in a thread), `server` (routes, auth,
throttling, faults), `store` (state, cache, jobs, hooks), `seed` / `synth` (synthetic insights and
results), `listing` (list filters and order), `serialize` (PostHog's representations), `activity`,
`models`, `throttle`, `faults`, `stats`, `errors`, `timeutil`, `cli`.
"""

from posthog_emulator.config import EmulatorConfig, FaultConfig
from posthog_emulator.runner import Emulator
from posthog_emulator.stats import StatsSnapshot

__all__ = ["Emulator", "EmulatorConfig", "FaultConfig", "StatsSnapshot"]
