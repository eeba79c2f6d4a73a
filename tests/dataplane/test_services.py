"""run-dataplane's side services: one that cannot start is left out, the others and Envoy run."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reconciler.dataplane.services import SidecarContext, sidecar_services, start_all, stop_all


class _Broken:
    name = "broken"

    def start(self, ctx: SidecarContext) -> None:
        raise OSError("mkfifo: operation not permitted")

    def stop(self) -> None:
        pass


class _Recording:
    name = "recording"

    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self, ctx: SidecarContext) -> None:
        self.events.append(f"start {ctx.mesh}.{ctx.name}")

    def stop(self) -> None:
        self.events.append("stop")


def test_a_service_that_cannot_start_is_logged_and_the_others_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    after = _Recording()
    ctx = SidecarContext(tmp_path, "127.0.0.1:9901", "default", "web-1")
    with caplog.at_level(logging.ERROR, logger="reconciler.dataplane.services"):
        start_all([_Broken(), after], ctx)
    assert after.events == ["start default.web-1"]
    assert any(getattr(r, "service", None) == "broken" and "operation not permitted" in getattr(r, "error", "") for r in caplog.records)
    stop_all([_Broken(), after])
    assert after.events[-1] == "stop"


def test_the_real_services_start_and_stop_in_a_work_dir_without_envoy(tmp_path: Path) -> None:
    services = sidecar_services()
    assert [s.name for s in services] == ["access-log-streamer", "metrics-hijacker", "meshmetric-otel"]
    start_all(services, SidecarContext(tmp_path, "127.0.0.1:1", "default", "web-1"))
    stop_all(services)
    assert not [p for p in tmp_path.iterdir() if p.is_fifo() or p.is_socket()], "sockets and FIFOs are removed on stop"
