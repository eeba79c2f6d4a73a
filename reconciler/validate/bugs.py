"""An unexpected exception is a bug in mesh-reconciler: say so, in one line, with where it was raised.

Bad input never raises: the loader and the validators turn it into problems at file:line.
Whatever still raises while loading, validating, building or generating a commit is a bug,
and the pipeline's safety nets (the validator, the serve loop's Engine, the commands) report
it with `describe_bug` instead of a traceback: the commit is rejected with this message, the
last good commit keeps serving, and the message tells the user to report it.
"""

from __future__ import annotations

import os
import traceback

from reconciler.errors import Problem

__all__ = ["INTERNAL_ERROR", "describe_bug", "raised_at", "is_internal_error"]

INTERNAL_ERROR = "internal error (a bug in mesh-reconciler)"
"""How every bug report starts, so that tools (and `is_internal_error`) can tell it from bad input."""

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MAX_DETAIL = 240


def raised_at(exc: BaseException) -> str:
    """`reconciler/<module>.py:<line>` of the innermost frame in mesh-reconciler's own code
    (a library's frame only when none is ours), so the report points at the code to fix."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown location"
    ours = [f for f in frames if os.path.abspath(f.filename).startswith(_PACKAGE_ROOT + os.sep)]
    frame = (ours or frames)[-1]
    path = os.path.abspath(frame.filename)
    shown = "reconciler/" + os.path.relpath(path, _PACKAGE_ROOT) if ours else os.path.basename(path)
    return f"{shown}:{frame.lineno}"


def describe_bug(exc: BaseException, doing: str) -> str:
    """One line: `internal error (a bug in mesh-reconciler) while <doing>: <Type>: <message>
    at reconciler/<module>.py:<line>; please report it`."""
    detail = " ".join(str(exc).split())
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 1] + "…"
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"{INTERNAL_ERROR} while {' '.join(doing.split())}: {what} at {raised_at(exc)}; please report it"


def is_internal_error(problem: Problem) -> bool:
    return problem.message.startswith(INTERNAL_ERROR)
