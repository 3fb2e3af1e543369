"""`python -m posthog_emulator`: run the emulator until SIGINT/SIGTERM."""

from posthog_emulator.cli import main

raise SystemExit(main())
