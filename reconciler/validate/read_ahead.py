"""Use the spare cores at a cold start: parse and validate a commit's files in worker processes.

Reading a commit whose files the caches do not hold (the first commit after a start: 10,000
Dataplane files) is mostly YAML parsing and per-resource validation, two pure functions of a
file's bytes. When many files are unread (`PARALLEL_FROM`), they are cut into batches that
worker processes and this thread take from the two ends of one queue: the workers parse and
validate theirs, this thread parses its own while the workers start. What comes back is cheap
to pickle: each file's documents (plain values and line maps) and the problems of each of its
resources, which prefill the validator's memo. The commit is then read as usual, using these
results the way it uses its cache, so the snapshot, its problems and their file:line are the
same as without workers (tests/validate/test_read_ahead.py).

The workers are spawned, never forked: gRPC must not be forked once it runs threads. Any
failure of the workers is not the commit's: the files they did not deliver are parsed in this
process as they would have been.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, wait

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

_BATCH = 250

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
    feeder = _Feeder(repository_path(source.repo), batches, workers, parsed)
    feeder.start()
    mine = 0
    while True:
        with feeder.lock:
            batch = batches.pop() if batches else None
        if batch is None:
            break
        for blob, one in parse_blobs(source.repo, batch):
            result = file_result(one)
            for resource in result.resources:
                validator(resource)
            parsed[blob] = result
        mine += 1
    feeder.join()
    for key, problems in feeder.checked:
        validator.remember(key, problems)
    log.debug("read ahead", extra={"files": len(unread), "batches_here": mine, "batches_in_workers": feeder.done})
    return parsed


def _parse_and_check(repo: str, batch: list[Blob]) -> tuple[list[tuple[Blob, ParsedFile]], Checked]:
    """In a worker: the batch's parsed files and the problems of each resource they hold."""
    files = parse_blobs(repo, batch)
    checked: Checked = []
    for _, parsed in files:
        for resource in file_result(parsed).resources:
            key = ResourceValidator.key_of(resource)
            if key is not None:
                checked.append((key, validate_resource(resource)))
    return files, checked


class _Feeder(threading.Thread):
    """Hands batches from the front of the queue to the worker processes, a few at a time, and
    stores what they send back; whatever goes wrong, the batches it took and did not get back
    are parsed in this process afterwards (they are simply missing from the result)."""

    def __init__(self, repo: str, batches: deque[list[Blob]], workers: int, parsed: Parsed) -> None:
        super().__init__(name="read-ahead", daemon=True)
        self.repo, self.batches, self.workers, self.parsed = repo, batches, workers, parsed
        self.checked: Checked = []
        """What the workers' validation found, for the validator's memo (this thread does not touch it)."""
        self.lock = threading.Lock()
        self.done = 0

    def run(self) -> None:
        try:
            with ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                self._feed(pool)
        except Exception as e:  # a worker that died or could not start: this process parses the rest
            log.warning("parsing in worker processes failed; parsing in this process", extra={"error": f"{type(e).__name__}: {e}"})

    def _feed(self, pool: ProcessPoolExecutor) -> None:
        running: dict[Future[tuple[list[tuple[Blob, ParsedFile]], Checked]], list[Blob]] = {}
        while True:
            while len(running) < self.workers + 1:
                with self.lock:
                    batch = self.batches.popleft() if self.batches else None
                if batch is None:
                    break
                running[pool.submit(_parse_and_check, self.repo, batch)] = batch
            if not running:
                return
            done, _ = wait(running, return_when="FIRST_COMPLETED")
            for future in done:
                del running[future]
                self.done += 1
                files, checked = future.result()
                self.checked.extend(checked)
                self.parsed.update(files)
