"""first_done (reconciler/xds/futures.py): what an ADS stream waits on for its whole life.

It returns as soon as either future is done, leaves both futures as they were (a node's
change future is shared by its streams: a stream that stops waiting must not cancel it), and
leaves no callback behind on a future that outlives many waits.
"""

from __future__ import annotations

import asyncio

from reconciler.xds.futures import first_done


def test_returns_when_either_future_is_done_and_leaves_the_other_pending() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for which in (0, 1):
            pair = [loop.create_future(), loop.create_future()]
            waiting = asyncio.ensure_future(first_done(*pair))
            await asyncio.sleep(0)
            assert not waiting.done()
            pair[which].set_result("here")
            await asyncio.wait_for(waiting, 1)
            assert not pair[1 - which].done()

    asyncio.run(main())


def test_a_future_already_done_returns_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done, pending = loop.create_future(), loop.create_future()
        done.set_result(None)
        await asyncio.wait_for(first_done(pending, done), 1)
        assert not pending.done()

    asyncio.run(main())


def test_a_cancelled_wait_cancels_neither_future_and_a_shared_one_still_wakes_its_other_waiters() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        shared = loop.create_future()
        gone = asyncio.ensure_future(first_done(loop.create_future(), shared))
        stays = asyncio.ensure_future(first_done(loop.create_future(), shared))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        assert gone.cancelled() and not shared.cancelled()
        shared.set_result(None)
        await asyncio.wait_for(stays, 1)

    asyncio.run(main())


def test_many_waits_on_a_long_lived_future_leave_nothing_on_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        long_lived = loop.create_future()
        for _ in range(1000):
            request = loop.create_future()
            waiting = asyncio.ensure_future(first_done(request, long_lived))
            await asyncio.sleep(0)
            request.set_result(None)
            await waiting
        # The 1,000 waits removed their callbacks (asyncio's own record of them, read directly).
        assert not long_lived._callbacks

    asyncio.run(main())
