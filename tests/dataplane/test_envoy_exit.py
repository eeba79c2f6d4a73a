"""Envoy's exit reason in one line, from its output (lines in the format Envoy 1.40 writes), and the
copy of its stderr that keeps a bounded tail."""

from __future__ import annotations

import io
import os
import threading

import pytest

from reconciler.dataplane.envoy_exit import OutputTail, RunFacts, exit_reason

T = "[2026-01-06 21:59:48.322][6832]"
OUT_OF_FILES = [
    f"{T}[info][main] [source/server/server.cc:989] runtime: {{}}",
    f"{T}[error][envoy_bug] [source/common/network/socket_interface_impl.cc:116] envoy bug failure: false. Details: socket(2) failed, got error: Too many open files",
    f"{T}[error][envoy_bug] [./source/common/common/assert.h:60] stacktrace for envoy bug",
    "[symbolize_elf.inc : 357] RAW: Unable to get high fd: rc=0, limit=512",
    f"{T}[error][envoy_bug] [./source/common/common/assert.h:66] #0 UNKNOWN [0x55c2511636ff]",
    f"{T}[critical][assert] [./source/common/network/listen_socket_impl.h:61] assert failure: io_handle_ && io_handle_->isOpen().",
    f"{T}[critical][backtrace] [./source/server/backtrace.h:173] Caught Aborted, suspect faulting address 0x1ab0",
    f"{T}[critical][backtrace] [./source/server/backtrace.h:157] Backtrace (use tools/stack_decode.py to get line numbers):",
    f"{T}[critical][backtrace] [./source/server/backtrace.h:167] #0: [0x7f9d8fc54050]",
]
ADMIN_TAKEN = [
    f"{T}[info][main] [source/server/server.cc:813] Starting admin HTTP server at 127.0.0.1:19901",
    f"{T}[critical][main] [source/server/server.cc:449] error `cannot bind '127.0.0.1:19901': Address already in use` initializing config 'goo.gle/debugstr    ",
    "  bootstrap.json'",
    f"{T}[info][main] [source/server/server.cc:1159] exiting",
    "cannot bind '127.0.0.1:19901': Address already in use",
]
SEGFAULT = [
    f"{T}[critical][backtrace] [./source/server/backtrace.h:173] Caught Segmentation fault, suspect faulting address 0x0",
    f"{T}[critical][backtrace] [./source/server/backtrace.h:167] #0: [0x7f9d8fc54050]",
]
CONFIG_ERROR = [
    f"{T}[critical][main] [source/server/server.cc:449] error initializing config '  bootstrap.json': Proto constraint validation failed (BootstrapValidationError.Admin: value is required)",
    f"{T}[info][main] [source/server/server.cc:1159] exiting",
    "Proto constraint validation failed (BootstrapValidationError.Admin: value is required)",
]

FACTS = RunFacts(workers=4, listeners=300, limit=512, admin_address="127.0.0.1:19901")


@pytest.mark.parametrize(
    ("code", "lines", "facts", "line"),
    [
        pytest.param(
            134,
            OUT_OF_FILES,
            FACTS,
            (
                "run-dataplane: Envoy exited with code 134 (SIGABRT): out of open files (socket(2) failed, got error: Too many open files); "
                "300 listeners × 4 workers need about 1,392 and the limit is 512: raise it (e.g. ulimit -Hn 2048 or LimitNOFILE=2048) "
                "or run fewer workers (--concurrency 1)"
            ),
            id="out-of-files",
        ),
        pytest.param(
            134,
            OUT_OF_FILES,
            RunFacts(workers=1, listeners=400, limit=512),
            (
                "run-dataplane: Envoy exited with code 134 (SIGABRT): out of open files (socket(2) failed, got error: Too many open files); "
                "400 listeners × 1 worker need about 568 and the limit is 512: raise it (e.g. ulimit -Hn 1024 or LimitNOFILE=1024)"
            ),
            id="out-of-files-one-worker",
        ),
        pytest.param(
            134,
            OUT_OF_FILES,
            RunFacts(workers=2, limit=512),
            (
                "run-dataplane: Envoy exited with code 134 (SIGABRT): out of open files (socket(2) failed, got error: Too many open files); "
                "2 workers ran under a limit of 512 open files: raise the limit (ulimit -Hn, or LimitNOFILE= in a systemd unit) "
                "or run fewer workers (--concurrency)"
            ),
            id="out-of-files-listeners-unknown",
        ),
        pytest.param(
            1,
            ADMIN_TAKEN,
            FACTS,
            (
                "run-dataplane: Envoy exited with code 1: Envoy's admin address 127.0.0.1:19901 is already in use: "
                "give another --admin-port (or networking.admin.port)"
            ),
            id="admin-address-in-use",
        ),
        pytest.param(
            1,
            ADMIN_TAKEN,
            RunFacts(admin_address="127.0.0.1:9901"),
            ("run-dataplane: Envoy exited with code 1: the address 127.0.0.1:19901 is already in use: stop what listens there"),
            id="other-address-in-use",
        ),
        pytest.param(
            139,
            SEGFAULT,
            FACTS,
            ("run-dataplane: Envoy exited with code 139 (SIGSEGV): Caught Segmentation fault, suspect faulting address 0x0"),
            id="crash",
        ),
        pytest.param(
            1,
            CONFIG_ERROR,
            FACTS,
            (
                "run-dataplane: Envoy exited with code 1: error initializing config '  bootstrap.json': "
                "Proto constraint validation failed (BootstrapValidationError.Admin: value is required)"
            ),
            id="last-critical-line",
        ),
        pytest.param(
            1,
            ["PARSE ERROR: Argument: --concurrency", "             Couldn't read argument value"],
            FACTS,
            ("run-dataplane: Envoy exited with code 1: PARSE ERROR: Argument: --concurrency"),
            id="usage-error",
        ),
        pytest.param(
            2,
            [f"{T}[info][main] [source/server/server.cc:1159] exiting"],
            FACTS,
            ("run-dataplane: Envoy exited with code 2 (its output above does not say why)"),
            id="nothing-said",
        ),
    ],
)
def test_exit_reason(code: int, lines: list[str], facts: RunFacts, line: str) -> None:
    assert exit_reason(code, lines, facts) == line


def test_exit_reason_is_one_line_of_bounded_length() -> None:
    lines = [f"{T}[critical][main] [x.cc:1] " + "why " * 5000]
    reason = exit_reason(1, lines, FACTS)
    assert "\n" not in reason and len(reason) < 400


def test_output_tail_copies_everything_and_keeps_the_last_lines() -> None:
    read_fd, write_fd = os.pipe()
    sink = io.BytesIO()
    with os.fdopen(read_fd, "rb") as source:
        tail = OutputTail(source, sink, keep=3).start()
        writer = threading.Thread(
            target=lambda: _write(write_fd, b"".join(b"line %d\n" % i for i in range(1000)) + b"last without newline")
        )
        writer.start()
        writer.join(10)
        tail.join(10)
    assert sink.getvalue().count(b"\n") == 1000 and sink.getvalue().endswith(b"last without newline")
    assert tail.lines() == ["line 998", "line 999", "last without newline"]


def test_output_tail_keeps_draining_when_our_stderr_is_gone() -> None:
    class Closed(io.BytesIO):
        def write(self, _b: object) -> int:
            raise BrokenPipeError

    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as source:
        tail = OutputTail(source, Closed(), keep=2).start()
        _write(write_fd, b"a\nb\nc\n")
        tail.join(10)
    assert tail.lines() == ["b", "c"]


def _write(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)
