"""Warnings that need the mesh model, added to a validation report by the commands that gate a
change: `validate`, `plan` and the pre-receive hook.

`reconciler.validate` sits below the mesh model, so what only the model and the targetRef
engine can tell (dead policies, reconciler/views/dead_policies.py) is added here, on top of a
report that has no errors. A bug in that analysis never blocks a change: it becomes a warning
that says so.
"""

from __future__ import annotations

import logging

from reconciler.errors import Problem
from reconciler.model import Snapshot
from reconciler.validate import Report
from reconciler.validate.bugs import describe_bug
from reconciler.views.dead_policies import dead_policy_problems

__all__ = ["with_mesh_warnings"]

log = logging.getLogger(__name__)


def with_mesh_warnings(snapshot: Snapshot, report: Report) -> Report:
    """`report` plus the dead-policy warnings of `snapshot` (only when it has no errors: the
    model of an invalid revision is not what would be served)."""
    if not report.valid:
        return report
    try:
        extra = dead_policy_problems(snapshot.resources)
    except Exception as e:
        log.debug("internal error", exc_info=e)
        # Reported as a warning, not as an internal error: the revision itself is fine.
        message = "dead-policy check skipped: " + describe_bug(e, "looking for dead policies").replace("internal error", "an error", 1)
        extra = [Problem(None, None, None, "", message, "warning")]
    if not extra:
        return report
    problems = sorted((*report.problems, *extra), key=lambda p: (p.file or "", p.line or 0, p.pointer, p.message))
    return Report(report.revision, report.resources, tuple(problems))
