"""Attempts (the store's record of what happened to a commit) made and converted for the serve loop.

A commit that hit a bug is rejected like an invalid one (`internal_error`), so it is not retried
at every poll; the history log stores attempts as `Record`s and a restart reads them back.
"""

from __future__ import annotations

import time
from typing import cast

from reconciler.errors import Problem
from reconciler.history import Record
from reconciler.mesh.shape import ShapeChoice
from reconciler.reconcile import Build
from reconciler.store import Attempt, Outcome

__all__ = ["Rejected", "record_of", "attempt_of", "internal_error", "shapes"]


class Rejected(Exception):
    """Ends the evaluation of a commit with its rejection."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(attempt.message)
        self.attempt = attempt


def record_of(attempt: Attempt, branch: str) -> Record:
    return Record(
        attempt.revision,
        attempt.outcome,
        attempt.message,
        attempt.at,
        branch,
        tuple(p.to_json() for p in attempt.errors if p.is_error),
        attempt.trigger,
        attempt.cause,
        attempt.to,
        attempt.duration,
    )


def attempt_of(record: Record) -> Attempt:
    errors = tuple(Problem(None, None, None, "", str(e.get("message", ""))) for e in record.errors)
    outcome = cast(Outcome, record.outcome)  # the log holds only outcomes this module wrote
    return Attempt(record.revision, outcome, record.message, errors, record.time, record.duration, record.cause, record.trigger, record.to)


def internal_error(revision: str, message: str, started: float, trigger: str) -> Attempt:
    """A commit that hit a bug: rejected (terminal for that revision, not retried every poll)."""
    return Attempt(
        revision,
        "rejected",
        message,
        (Problem(None, None, None, "", message),),
        duration=time.perf_counter() - started,
        cause="InternalError",
        trigger=trigger,
    )


def shapes(build: Build) -> dict[str, ShapeChoice]:
    return {node: view.shape for node, view in build.views.items()}
