"""ConfigCache (reconciler/xds/cache.py): per-node configs whose identity is their content.

What the module promises: a `set` whose resources have the same versions changes nothing and
wakes nobody (only the revision label moves); a real change gets a new generation and wakes
the watchers of that node, and of no other node; `remove` wakes the node's watchers with None;
`wait` (and `changed`, which it awaits) returns at once when the node already changed after
the generation asked about.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from envoy.config.cluster.v3 import cluster_pb2

from reconciler.xds.cache import ConfigCache, ConfigWatcher, NodeConfig
from reconciler.xds.resources import CLUSTER, ProxyResources, XdsResource, resource

T = TypeVar("T")
A, B = "default.a", "default.b"


def cluster(name: str, timeout: int = 5) -> XdsResource:
    msg = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    msg.connect_timeout.seconds = timeout
    return resource(CLUSTER, name, msg)


def proxy(*items: XdsResource) -> ProxyResources:
    return ProxyResources.build(items)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def woken(task: asyncio.Task[T]) -> bool:
    """Whether a watch has returned, after giving the loop a chance to run it."""
    for _ in range(3):
        await asyncio.sleep(0)
    return task.done()


def test_versions_are_content_hashes() -> None:
    assert cluster("a").version == cluster("a").version
    assert cluster("a").version != cluster("a", timeout=9).version
    assert cluster("a") is cluster("a")  # one shared object per content


def test_set_reports_whether_the_content_changed() -> None:
    cache = ConfigCache()
    assert cache.set(A, proxy(cluster("x")), "r1") is True
    assert cache.set(A, proxy(cluster("x")), "r2") is False  # a new commit, same content
    assert cache.set(A, proxy(cluster("x", timeout=9)), "r3") is True
    assert cache.set(A, proxy(cluster("x", timeout=9), cluster("y")), "r4") is True
    assert cache.set(A, proxy(cluster("y")), "r5") is True  # a removed resource is a change


def test_unchanged_content_keeps_its_generation_but_takes_the_new_revision() -> None:
    cache = ConfigCache()
    cache.set(A, proxy(cluster("x")), "r1")
    before = cache.fetch(A)
    cache.set(A, proxy(cluster("x")), "r2")
    after = cache.fetch(A)
    assert before is not None and after is not None
    assert after.generation == before.generation
    assert after.revision == "r2"
    assert after.resources is before.resources


def test_generations_grow_with_every_change_across_nodes() -> None:
    cache = ConfigCache()
    cache.set(A, proxy(cluster("x")), "r1")
    cache.set(B, proxy(cluster("x")), "r1")
    cache.set(A, proxy(cluster("y")), "r2")
    generations = [c.generation for c in (cache.fetch(B), cache.fetch(A))]  # type: ignore[union-attr]
    assert generations[0] < generations[1]


def test_fetch_and_nodes() -> None:
    cache = ConfigCache()
    assert cache.fetch(A) is None
    cache.set(A, proxy(cluster("x")), "r1")
    cache.set(B, proxy(), "r1")
    assert set(cache.nodes()) == {A, B}
    config = cache.fetch(A)
    assert isinstance(config, NodeConfig)
    assert list(config.resources.of(CLUSTER)) == ["x"]


def test_watchers_are_woken_only_when_their_node_changes() -> None:
    async def scenario() -> None:
        cache = ConfigCache()
        cache.set(A, proxy(cluster("x")), "r1")
        cache.set(B, proxy(cluster("x")), "r1")
        gen_a, gen_b = cache.fetch(A).generation, cache.fetch(B).generation  # type: ignore[union-attr]
        watch_a = asyncio.ensure_future(cache.wait(A, gen_a))
        watch_b = asyncio.ensure_future(cache.wait(B, gen_b))
        assert not await woken(watch_a) and not await woken(watch_b)

        cache.set(A, proxy(cluster("x")), "r2")  # same content: nobody is told
        assert not await woken(watch_a)

        cache.set(A, proxy(cluster("y")), "r3")
        assert await woken(watch_a)
        assert watch_a.result() is cache.fetch(A)
        assert watch_a.result().revision == "r3"  # type: ignore[union-attr]
        assert not await woken(watch_b)  # per-node isolation
        watch_b.cancel()

    run(scenario())


def test_every_watcher_of_a_node_is_woken() -> None:
    async def scenario() -> None:
        cache = ConfigCache()
        cache.set(A, proxy(cluster("x")), "r1")
        gen = cache.fetch(A).generation  # type: ignore[union-attr]
        watches = [asyncio.ensure_future(cache.wait(A, gen)) for _ in range(3)]
        await woken(watches[0])
        cache.set(A, proxy(cluster("y")), "r2")
        assert all([await woken(w) for w in watches])
        assert {w.result().revision for w in watches} == {"r2"}  # type: ignore[union-attr]

    run(scenario())


def test_wait_returns_at_once_when_the_node_already_moved_past_the_generation() -> None:
    async def scenario() -> None:
        cache = ConfigCache()
        cache.set(A, proxy(cluster("x")), "r1")
        old = cache.fetch(A).generation  # type: ignore[union-attr]
        cache.set(A, proxy(cluster("y")), "r2")
        config = await asyncio.wait_for(cache.wait(A, old), 1)
        assert config is not None and config.revision == "r2"

    run(scenario())


def test_a_watch_on_an_unknown_node_waits_for_its_first_config() -> None:
    async def scenario() -> None:
        cache = ConfigCache()
        watch = asyncio.ensure_future(cache.wait(A, -1))
        assert not await woken(watch)
        cache.set(A, proxy(cluster("x")), "r1")
        assert await woken(watch)
        assert watch.result() is not None

    run(scenario())


def test_remove_wakes_watchers_with_none_and_forgets_the_node() -> None:
    async def scenario() -> None:
        cache = ConfigCache()
        cache.set(A, proxy(cluster("x")), "r1")
        cache.set(B, proxy(cluster("x")), "r1")
        gen_a, gen_b = cache.fetch(A).generation, cache.fetch(B).generation  # type: ignore[union-attr]
        watch_a = asyncio.ensure_future(cache.wait(A, gen_a))
        watch_b = asyncio.ensure_future(cache.wait(B, gen_b))
        await woken(watch_a)
        cache.remove(A)
        assert await woken(watch_a)
        assert watch_a.result() is None
        assert cache.fetch(A) is None and set(cache.nodes()) == {B}
        assert not await woken(watch_b)
        watch_b.cancel()
        # Setting the same content again after removal is a change (the node had nothing).
        assert cache.set(A, proxy(cluster("x")), "r2") is True

    run(scenario())


def test_removing_an_unknown_node_wakes_nobody() -> None:
    async def scenario() -> None:
        cache = ConfigCache()
        watch = asyncio.ensure_future(cache.wait(A, -1))
        await woken(watch)
        cache.remove(A)
        assert not await woken(watch)
        watch.cancel()

    run(scenario())


def test_the_cache_is_a_config_watcher() -> None:
    watcher: ConfigWatcher = ConfigCache()
    assert watcher.fetch(A) is None
