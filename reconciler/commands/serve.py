"""`reconciler serve`: run the control plane until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from reconciler.controlplane import ControlPlane, ServeSettings

__all__ = ["run_serve"]


def run_serve(settings: ServeSettings) -> None:
    async def main() -> None:
        cp = ControlPlane(settings)
        loop = asyncio.get_running_loop()
        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, cp.request_stop)
        await cp.run_forever()

    asyncio.run(main())
