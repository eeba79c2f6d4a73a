"""The worker-count decision and the open-files arithmetic behind it (pure functions, tables)."""

from __future__ import annotations

import pytest

from reconciler.dataplane.open_files import files_needed, limit_to_suggest, most_workers_that_fit, reserve
from reconciler.dataplane.workers import WorkerChoice, choose_workers, cpu_workers


@pytest.mark.parametrize(
    ("quota", "affinity", "workers"),
    [
        (None, 2, 2),
        (None, 64, 64),
        (1.5, 8, 2),
        (1.0, 8, 1),
        (0.2, 4, 1),
        (16.0, 4, 4),  # a quota above the CPUs it may run on
        (2.0000000001, 8, 2),  # rounding noise of quota/period is not a third CPU
        (None, 0, 1),
    ],
)
def test_workers_from_cpus(quota: float | None, affinity: int, workers: int) -> None:
    assert cpu_workers(quota, affinity) == workers


def test_reserve_covers_what_envoy_was_measured_to_hold() -> None:
    # 200 listeners × 4 workers: 841 descriptors (a sidecar with its ADS stream and admin).
    assert files_needed(200, 4, 1024) >= 841
    # Envoy's own part grows with workers; the room for connections with the limit.
    assert reserve(1, 1024) == 32 + 8 + 128
    assert reserve(2, 8192) == 32 + 16 + 512


@pytest.mark.parametrize(
    ("listeners", "limit", "upto", "fit"),
    [
        (300, 512, 2, 1),
        (300, 200, 2, 0),
        (600, 1024, 4, 1),  # the issue: 600 outbounds under ulimit -n 1024
        (2500, 4096, 2, 1),
        (2500, 8192, 2, 2),
        (10, 1024, 8, 8),
        (10, None, 8, 8),
    ],
)
def test_most_workers_that_fit(listeners: int, limit: int | None, upto: int, fit: int) -> None:
    assert most_workers_that_fit(listeners, limit, upto) == fit


@pytest.mark.parametrize(
    ("listeners", "workers", "limit"), [(2500, 2, 8192), (300, 4, 2048), (300, 1, 1024), (10, 1, 1024), (20000, 1, 32768)]
)
def test_suggested_limit_is_a_round_one_that_fits(listeners: int, workers: int, limit: int) -> None:
    assert limit_to_suggest(listeners, workers) == limit
    assert files_needed(listeners, workers, limit) <= limit


CASES = [
    pytest.param(
        dict(forced=3, quota=None, affinity=2, listeners=None, limit=4096),
        WorkerChoice(3, ("--concurrency", "3")),
        id="forced-listeners-unknown",
    ),
    pytest.param(
        dict(forced=1, quota=None, affinity=2, listeners=300, limit=512),
        WorkerChoice(1, ("--concurrency", "1")),
        id="forced-and-fits",
    ),
    pytest.param(
        dict(forced=4, quota=None, affinity=2, listeners=300, limit=512),
        WorkerChoice(
            4,
            ("--concurrency", "4"),
            (
                "run-dataplane: warning: 300 listeners × 4 workers need about 1,392 open files but the hard limit is 512: "
                "Envoy may fail to open its listeners (raise the limit, e.g. ulimit -Hn 2048 or LimitNOFILE=2048, or run --concurrency 1)"
            ),
        ),
        id="forced-does-not-fit",
    ),
    pytest.param(
        dict(forced=2, quota=None, affinity=2, listeners=300, limit=200),
        WorkerChoice(
            2,
            ("--concurrency", "2"),
            (
                "run-dataplane: warning: 300 listeners × 2 workers need about 776 open files but the hard limit is 200: "
                "Envoy may fail to open its listeners (raise the limit, e.g. ulimit -Hn 1024 or LimitNOFILE=1024, or give this Dataplane fewer inbounds and outbounds)"
            ),
        ),
        id="forced-and-not-even-one-fits",
    ),
    pytest.param(
        dict(forced=None, quota=None, affinity=2, listeners=None, limit=1024), WorkerChoice(2, ("--cpuset-threads",)), id="no-quota-linux"
    ),
    pytest.param(
        dict(forced=None, quota=None, affinity=8, listeners=10, limit=None, linux=False), WorkerChoice(8, ()), id="no-quota-elsewhere"
    ),
    pytest.param(dict(forced=None, quota=1.5, affinity=8, listeners=10, limit=1024), WorkerChoice(2, ("--concurrency", "2")), id="quota"),
    pytest.param(
        dict(forced=None, quota=None, affinity=64, listeners=10, limit=None), WorkerChoice(64, ("--cpuset-threads",)), id="unlimited-files"
    ),
    pytest.param(
        dict(forced=None, quota=None, affinity=2, listeners=2500, limit=4096),
        WorkerChoice(
            1,
            ("--concurrency", "1"),
            (
                "run-dataplane: 2,500 listeners × 2 workers need about 5,304 open files but the hard limit is 4,096: "
                "running 1 worker (raise the limit, e.g. ulimit -Hn 8192 or LimitNOFILE=8192, to run 2)"
            ),
        ),
        id="fewer-workers",
    ),
    pytest.param(
        dict(forced=None, quota=3.0, affinity=8, listeners=600, limit=1536),
        WorkerChoice(
            2,
            ("--concurrency", "2"),
            (
                "run-dataplane: 600 listeners × 3 workers need about 1,984 open files but the hard limit is 1,536: "
                "running 2 workers (raise the limit, e.g. ulimit -Hn 2048 or LimitNOFILE=2048, to run 3)"
            ),
        ),
        id="fewer-workers-than-the-quota",
    ),
    pytest.param(
        dict(forced=None, quota=None, affinity=2, listeners=300, limit=200),
        WorkerChoice(
            0,
            (),
            (
                "run-dataplane: 300 listeners need about 468 open files even with 1 worker but the hard limit is 200: "
                "raise it (e.g. ulimit -Hn 1024 or LimitNOFILE=1024) or give this Dataplane fewer inbounds and outbounds"
            ),
            fatal=True,
        ),
        id="not-even-one",
    ),
    pytest.param(dict(forced=None, quota=None, affinity=2, listeners=300, limit=1024), WorkerChoice(2, ("--cpuset-threads",)), id="fits"),
]


@pytest.mark.parametrize(("given", "choice"), CASES)
def test_choose_workers(given: dict[str, object], choice: WorkerChoice) -> None:
    assert choose_workers(**given) == choice  # type: ignore[arg-type]
