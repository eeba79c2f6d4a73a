"""Why Envoy exited, in one line, from what it wrote on stderr.

A sidecar that runs out of open files aborts with an "envoy bug" and a stack trace of some
sixty lines; the cause is one line near the top. run-dataplane copies Envoy's stderr through
(OutputTail) and keeps its last lines, and when Envoy exits non-zero says why (exit_reason):
out of open files (with the arithmetic and what to raise), an address in use, or else the
last error Envoy logged that is not part of a stack trace.
"""

from __future__ import annotations

import collections
import re
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from reconciler.dataplane.open_files import files_needed, limit_to_suggest, most_workers_that_fit
from reconciler.dataplane.workers import plural

__all__ = ["OutputTail", "RunFacts", "exit_reason"]

MAX_LINE = 4096
"""Characters of one line kept in the tail (the copy to our stderr is never cut)."""
MAX_DETAIL = 300

# Envoy's default log format: [time][thread][level][logger] [file:line] message
_LOG_LINE = re.compile(r"^\[[^\]]*\]\[\d+\]\[(?P<level>\w+)\]\[(?P<logger>[\w.]+)\] (?:\[[^\]]*\] )?(?P<message>.*)$")
_STACK_FRAME = re.compile(r"^#\d+[: ]")
_BIND = re.compile(r"cannot bind '(?P<address>[^']+)': Address already in use")


class OutputTail:
    """Copies a child's output stream to `sink` line by line as it comes, keeping the last `keep` lines."""

    def __init__(self, source: IO[bytes], sink: IO[bytes] | None, keep: int = 400) -> None:
        self._source = source
        self._sink = sink
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._thread = threading.Thread(target=self._copy, name="envoy-stderr", daemon=True)

    def start(self) -> OutputTail:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def lines(self) -> list[str]:
        return list(self._lines)

    def _copy(self) -> None:
        for raw in iter(self._source.readline, b""):
            if self._sink is not None:
                try:
                    self._sink.write(raw)
                    self._sink.flush()
                except (OSError, ValueError):
                    self._sink = None  # our stderr is gone; keep draining so Envoy never blocks on it
            self._lines.append(raw[:MAX_LINE].decode(errors="replace").rstrip("\r\n"))
        self._source.close()


@dataclass(frozen=True)
class RunFacts:
    """What run-dataplane knew when it started Envoy."""

    workers: int | None = None
    """None: Envoy chose (the caller did not size it)."""
    listeners: int | None = None
    limit: int | None = None
    admin_address: str | None = None


def exit_reason(code: int, lines: Sequence[str], facts: RunFacts) -> str:
    """One line: Envoy's exit code and why, from its last output lines."""
    head = f"run-dataplane: Envoy exited with code {code}{_signal_name(code)}"
    out_of_files = _find(lines, "Too many open files")
    if out_of_files is not None:
        return f"{head}: out of open files ({_detail(out_of_files)}); {_files_advice(facts)}"
    bind = next((m for m in map(_BIND.search, reversed(lines)) if m), None)
    if bind is not None:
        address = bind.group("address")
        what = "Envoy's admin address" if facts.admin_address == address else "the address"
        fix = "give another --admin-port (or networking.admin.port)" if facts.admin_address == address else "stop what listens there"
        return f"{head}: {what} {address} is already in use: {fix}"
    last = _last_error(lines)
    if last is not None:
        return f"{head}: {_detail(last)}"
    return f"{head} (its output above does not say why)"


def _signal_name(code: int) -> str:
    if code <= 128:
        return ""
    try:
        return f" ({signal.Signals(code - 128).name})"
    except ValueError:
        return ""


def _message(line: str) -> tuple[str | None, str | None, str]:
    """(level, logger, message) of an Envoy log line; (None, None, line) for anything else."""
    m = _LOG_LINE.match(line)
    return (m.group("level"), m.group("logger"), m.group("message")) if m else (None, None, line)


def _find(lines: Sequence[str], needle: str) -> str | None:
    for line in lines:
        if needle in line:
            return _message(line)[2]
    return None


def _noise(level: str | None, logger: str | None, message: str) -> bool:
    """Lines of a stack trace: they say where Envoy was, not why it stopped."""
    if message.startswith("[symbolize_elf") or _STACK_FRAME.match(message):
        return True
    if logger == "backtrace":
        return not message.startswith("Caught ")
    return message.startswith("stacktrace for envoy bug") or message.strip() == ""


def _last_error(lines: Sequence[str]) -> str | None:
    """The last error or critical log line that is not a stack trace; a caught signal only when
    nothing else was logged; else the last line that is not a log line (e.g. a usage error)."""
    caught = None
    plain = None
    for line in reversed(lines):
        level, logger, message = _message(line)
        if level is None:
            if plain is None and not _noise(None, None, message) and not message.startswith(" "):
                plain = message
            continue
        if level not in ("error", "critical") or _noise(level, logger, message):
            continue
        if logger == "backtrace":
            caught = caught or message
            continue
        return message
    return caught or plain


def _detail(message: str) -> str:
    message = message.replace("envoy bug failure: false. Details: ", "").strip()
    return message if len(message) <= MAX_DETAIL else message[:MAX_DETAIL] + "…"


def _files_advice(facts: RunFacts) -> str:
    workers = plural(facts.workers, "worker") if facts.workers else "Envoy's workers"
    if facts.limit is None:
        return f"{workers} ran with no hard limit on open files, so the system's limit was reached: raise fs.file-max, or run fewer workers (--concurrency)"
    if facts.listeners is None or not facts.workers:
        return (
            f"{workers} ran under a limit of {facts.limit:,} open files: raise the limit (ulimit -Hn, or LimitNOFILE= in a systemd unit) "
            "or run fewer workers (--concurrency)"
        )
    need = files_needed(facts.listeners, facts.workers, facts.limit)
    suggest = limit_to_suggest(facts.listeners, facts.workers)
    fewer = most_workers_that_fit(facts.listeners, facts.limit, facts.workers - 1) if facts.workers > 1 else 0
    instead = f" or run fewer workers (--concurrency {fewer})" if fewer else ""
    return (
        f"{plural(facts.listeners, 'listener')} × {workers} need about {need:,} and the limit is {facts.limit:,}: "
        f"raise it (e.g. ulimit -Hn {suggest} or LimitNOFILE={suggest}){instead}"
    )
