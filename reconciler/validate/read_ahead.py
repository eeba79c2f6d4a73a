"""Use the spare cores at a cold start: parse and validate a commit's files in worker processes.

Reading a commit whose files the caches do not hold (the first commit after a start: 10,000
Dataplane files) is mostly YAML parsing and per-resource validation, two pure functions of a
file's bytes. When many files are unread (`PARALLEL_FROM`), they are cut into batches that
worker processes and this thread take from the two ends of one queue: the workers parse and
validate theirs, this thread parses and validates its own while the workers start. What comes
back is cheap to pickle: each file's documents (plain values and line maps) and the problems
of each of its resources, which fill the validator's memo. The commit is then read as usual,
using these results the way it uses its cache, so the snapshot, its problems and their
file:line are the same as without workers (tests/validate/test_read_ahead.py).

This thread talks to the workers between its own batches, through pipes: no helper thread
here, since on a busy machine threads that wake up for each result make the thread doing
the work wait for the GIL. The workers are spawned, never forked: gRPC must not be forked once
it runs threads. A worker that fails or dies is not the commit's problem: the files it did
not deliver are parsed in this process, as they would have been without it.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from reconciler.errors import Problem
from reconciler.source.blob_parse import parse_blobs, repository_path
from reconciler.source.git import GitSource
from reconciler.source.loader import FileResult, ParsedFile, file_result
from reconciler.validate.pipeline import ResourceValidator, validate_resource

__all__ = ["PARALLEL_FROM", "read_ahead", "spare_cores"]

log = logging.getLogger(__name__)

PARALLEL_FROM = 500
"""Unread files from which worker processes are worth their start (about a second of imports):
small commits and tests stay in this process."""

_BATCH = 100
"""Files per batch: small enough that a worker rarely waits long for this thread to collect."""
_AHEAD = 2
"""Batches handed to a worker before it returns one, so that it is never idle in between."""
_PIPE_BYTES = 1 << 20
"""A result pipe holds this many bytes (Linux's default maximum), a few batches' results, so a
worker does not wait for this thread to read one before starting the next."""

_PATIENCE = 60.0
"""Seconds to wait for a worker's next result before reading its files here."""

Blob = tuple[str, str]
Parsed = dict[Blob, ParsedFile | FileResult]
Checked = list[tuple[tuple[str, int, str], tuple[Problem, ...]]]


def spare_cores() -> int:
    """Worker processes to start: one per core this process may use, besides its own."""
    return min(len(os.sched_getaffinity(0)) - 1, 4)


def read_ahead(
    source: GitSource, unread: list[Blob], validator: ResourceValidator, *, least: int = PARALLEL_FROM, workers: int | None = None
) -> Parsed:
    """The files `unread` ((path, blob id) in `source`: `GitSource.unread_blobs`) parsed ahead,
    by (path, blob id), with the validator's memo holding the problems of their resources;
    empty when they are fewer than `least` or no core is spare."""
    workers = spare_cores() if workers is None else workers
    if workers < 1 or len(unread) < max(least, 1):
        return {}
    batches = deque(unread[i : i + _BATCH] for i in range(0, len(unread), _BATCH))
    parsed: Parsed = {}
    checked: Checked = []
    pool = [_Worker.start(repository_path(source.repo)) for _ in range(workers)]
    here = 0
    try:
        while batches:
            for worker in pool:
                worker.collect(parsed, checked, block=False)
                worker.feed(batches)
            if batches:
                here += 1
                for blob, one in parse_blobs(source.repo, batches.pop()):
                    result = file_result(one)
                    for resource in result.resources:
                        validator(resource)
                    parsed[blob] = result
        for worker in pool:
            worker.collect(parsed, checked, block=True)
    finally:
        for worker in pool:
            worker.stop()
    for key, problems in checked:
        validator.remember(key, problems)
    log.debug("read ahead", extra={"files": len(unread), "batches_here": here, "batches_in_workers": sum(w.done for w in pool)})
    return parsed


@dataclass
class _Worker:
    """One worker process and how many batches it owes; what a failed worker owes is read here
    (those files are missing from the result)."""

    process: Any
    tasks: Connection
    results: Connection
    pending: int = 0
    done: int = 0
    failed: bool = False

    @classmethod
    def start(cls, repo: str) -> _Worker:
        context = multiprocessing.get_context("spawn")
        task_out, task_in = context.Pipe(duplex=False)
        result_out, result_in = context.Pipe(duplex=False)
        try:
            fcntl.fcntl(result_in.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe only makes the worker wait more often
        process = context.Process(target=_serve, args=(repo, task_out, result_in), name="reconciler-read-ahead", daemon=True)
        process.start()
        task_out.close()
        result_in.close()
        return cls(process, task_in, result_out)

    def feed(self, batches: deque[list[Blob]]) -> None:
        while not self.failed and self.pending < _AHEAD and batches:
            batch = batches.popleft()
            try:
                self.tasks.send(batch)
            except OSError:
                batches.appendleft(batch)
                self.failed = True
                return
            self.pending += 1

    def collect(self, parsed: Parsed, checked: Checked, *, block: bool) -> None:
        """Results the worker sent back (with `block`, all it still owes)."""
        try:
            while self.pending and self.results.poll(_PATIENCE if block else 0):
                files, found = self.results.recv()
                parsed.update(files)
                checked.extend(found)
                self.pending -= 1
                self.done += 1
            if self.pending and block:
                raise TimeoutError(f"no result in {_PATIENCE:.0f} s")
        except (OSError, EOFError) as e:
            log.warning("a read-ahead worker stopped; its files are read here", extra={"error": f"{type(e).__name__}: {e}"})
            self.failed = True
            self.pending = 0

    def stop(self) -> None:
        try:
            self.tasks.send(None)
        except OSError:
            pass
        self.tasks.close()
        self.results.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _serve(repo: str, tasks: Connection, results: Connection) -> None:
    """A worker: parse and validate each batch it receives, until None."""
    while (batch := tasks.recv()) is not None:
        results.send(_parse_and_check(repo, batch))


def _parse_and_check(repo: str, batch: list[Blob]) -> tuple[list[tuple[Blob, ParsedFile]], Checked]:
    """The batch's parsed files and the problems of each resource they hold."""
    files = parse_blobs(repo, batch)
    checked: Checked = []
    for _, parsed in files:
        for resource in file_result(parsed).resources:
            key = ResourceValidator.key_of(resource)
            if key is not None:
                checked.append((key, validate_resource(resource)))
    return files, checked
