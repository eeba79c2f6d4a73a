"""`reconciler serve`: run the control plane until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from reconciler.ca.statefiles import StateFileError
from reconciler.commands.errors import RepositoryError
from reconciler.controlplane import ControlPlane, ServeSettings, SetupError
from reconciler.source.git import SourceError

__all__ = ["run_serve"]


def run_serve(settings: ServeSettings) -> None:
    """Exit code 2 (RepositoryError) when a setting cannot be used or the repository cannot be opened."""

    async def main() -> None:
        cp = ControlPlane(settings)
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, cp.request_stop)
        await cp.run_forever()

    try:
        asyncio.run(main())
    except (SetupError, SourceError, StateFileError) as e:  # StateFileError: a key file read after the setup check
        raise RepositoryError(str(e)) from None
