"""One commit judged: read, signature verified, validated; its rejection or None.

A bug hit while loading or validating is the commit's rejection (cause InternalError), so it is
not retried at every poll; only a commit that cannot be read raises.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reconciler.controlplane.attempts import internal_error
from reconciler.errors import Problem
from reconciler.reconcile import Engine, InternalError
from reconciler.source.mirror import Mirror
from reconciler.source.signatures import SignaturePolicy, verify_commit
from reconciler.store import Attempt

__all__ = ["judge"]


async def judge(
    engine: Engine, mirror: Mirror, signatures: SignaturePolicy, revision: str, started: float, trigger: str
) -> tuple[Attempt | None, Any]:
    """Read, verify the signature of and validate one commit: (a rejection or None, the evaluation).

    A bug hit while loading or validating it is its rejection (cause InternalError); only a
    commit that cannot be read raises (SourceError and git or file errors).
    """
    try:
        evaluation = await asyncio.to_thread(engine.evaluate, revision)
    except InternalError as e:
        return internal_error(revision, e.message, started, trigger), None
    if signatures.enabled:
        verdict = await asyncio.to_thread(verify_commit, mirror.repository, evaluation.revision, signatures)
        if not verdict.trusted:
            problem = Problem(None, None, None, "", verdict.message)
            return Attempt(
                evaluation.revision,
                "rejected",
                f"signature verification failed: {verdict.message}",
                (problem,),
                duration=time.perf_counter() - started,
                cause="VerificationError",
                trigger=trigger,
            ), evaluation
    if not evaluation.report.valid:
        errors = evaluation.report.errors
        return Attempt(
            evaluation.revision,
            "rejected",
            f"validation failed: {len(errors)} error{'s' if len(errors) != 1 else ''}; first: {errors[0].render()}",
            errors,
            duration=time.perf_counter() - started,
            trigger=trigger,
        ), evaluation
    return None, evaluation
