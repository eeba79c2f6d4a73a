"""What the serve loop should do, as pure functions of refs, verdicts and proxy acks.

The control plane asks these functions and carries the answer out (reads, validates, applies,
writes refs, records); nothing here does I/O or keeps state, so every situation is one row of
a table test (tests/controlplane/test_decide.py).

The questions, in the order a reconcile asks them:

1. `choose_target`: the branch head or the pin? (`Follow`, `ServePin`, `BranchMissing`)
2. `serve_decision`: for that revision, given what is applied and what is known of it:
   keep serving, repeat an earlier verdict, or evaluate and apply it.
3. `hold_decision`: while pinned, the branch head is validated once and held, never applied.
4. `rolled_back`: a pin that moves serving to an older commit rolls the previous one back.
5. `nack_decision`: with rollback-on-nack, proxies rejecting the applied revision send serving
   back to the last revision every proxy accepted, and that revision stays refused until the
   branch moves.
6. `restored_verdicts`: after a restart, which verdicts from the history log still stand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Refs",
    "Known",
    "Follow",
    "ServePin",
    "BranchMissing",
    "Target",
    "KeepServing",
    "RepeatVerdict",
    "Evaluate",
    "ServeAction",
    "HoldAction",
    "Ignore",
    "NoWayBack",
    "RollBack",
    "NackAction",
    "choose_target",
    "serve_decision",
    "hold_decision",
    "rolled_back",
    "nack_decision",
    "restored_verdicts",
]


# -- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refs:
    """The commits the repository names: the tracked branch's head and the pin (None: absent)."""

    head: str | None
    pin: str | None


@dataclass(frozen=True, slots=True)
class Known:
    """An earlier verdict on one commit (the last attempt, or one from the history log)."""

    revision: str
    outcome: str


# -- 1. which commit to serve ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Follow:
    """Serve the branch head; verdicts on heads held while pinned are forgotten."""

    revision: str


@dataclass(frozen=True, slots=True)
class ServePin:
    """Serve the pinned commit; `hold` is a branch head to validate without applying it."""

    revision: str
    hold: str | None


@dataclass(frozen=True, slots=True)
class BranchMissing:
    """Neither the branch nor a pin exists: nothing to serve; the applied commit stays."""


Target = Follow | ServePin | BranchMissing


def choose_target(refs: Refs) -> Target:
    if refs.pin is not None:
        return ServePin(refs.pin, refs.head if refs.head is not None and refs.head != refs.pin else None)
    if refs.head is not None:
        return Follow(refs.head)
    return BranchMissing()


# -- 2. what to do with it ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeepServing:
    """It is applied already: nothing to do (outcome "unchanged")."""

    revision: str


@dataclass(frozen=True, slots=True)
class RepeatVerdict:
    """A verdict on it stands (rejected, rejected by proxies, held): shown again, not re-validated."""

    revision: str
    outcome: str


@dataclass(frozen=True, slots=True)
class Evaluate:
    """Read, verify and validate it; apply it if it passes (for a hold: record it as held)."""

    revision: str


ServeAction = KeepServing | RepeatVerdict | Evaluate


def serve_decision(revision: str, *, applied: str | None, last: Known | None, refused: Iterable[str]) -> ServeAction:
    """`refused`: revisions proxies rejected (rollback-on-nack); `last`: the last attempt."""
    if applied == revision:
        return KeepServing(revision)
    if revision in set(refused):
        return RepeatVerdict(revision, "rejected-by-proxies")
    if last is not None and last.revision == revision and last.outcome == "rejected":
        return RepeatVerdict(revision, "rejected")
    return Evaluate(revision)


HoldAction = RepeatVerdict | Evaluate


def hold_decision(head: str, held: Mapping[str, str]) -> HoldAction:
    """While pinned: `held` maps heads already judged to their outcome; each is judged once."""
    outcome = held.get(head)
    if outcome is not None:
        return RepeatVerdict(head, outcome)
    return Evaluate(head)


# -- 4. pin moves serving -------------------------------------------------------------------
def rolled_back(previous: str, now: str, *, now_descends: bool) -> bool:
    """A pin moved serving from `previous` to `now`: `previous` is rolled back unless `now` is
    the same commit or newer (has `previous` in its history)."""
    return previous != now and not now_descends


# -- 5. proxies NACK the applied revision ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ignore:
    """Nothing to do: rollback-on-nack is off, the NACK is stale, or a rollback is under way."""


@dataclass(frozen=True, slots=True)
class NoWayBack:
    """Proxies rejected `revision` but no revision was ever accepted by every proxy: keep serving it."""

    revision: str


@dataclass(frozen=True, slots=True)
class RollBack:
    """Serve `good` again and refuse `bad` until the branch moves."""

    bad: str
    good: str


NackAction = Ignore | NoWayBack | RollBack


def nack_decision(
    nacked: str,
    *,
    rollback_on_nack: bool,
    applied: str | None,
    accepted: str | None,
    refused: Iterable[str],
    rolling_back: bool = False,
) -> NackAction:
    """`nacked`: the revision a proxy rejected; `accepted`: the last revision every proxy ACKed."""
    if not rollback_on_nack or applied is None or applied != nacked:
        return Ignore()
    if nacked == accepted or nacked in set(refused) or rolling_back:
        return Ignore()
    if accepted is None:
        return NoWayBack(nacked)
    return RollBack(nacked, accepted)


# -- 6. after a restart ---------------------------------------------------------------------
def restored_verdicts(latest: Mapping[str, str], *, pinned: bool) -> tuple[frozenset[str], frozenset[str]]:
    """From the history log's latest outcome per revision: (still refused, still held).

    Commits proxies rejected stay refused; heads held (or rolled back) while pinned stay held
    only while a pin exists.
    """
    refused = frozenset(r for r, outcome in latest.items() if outcome == "rejected-by-proxies")
    held = frozenset(r for r, outcome in latest.items() if pinned and outcome in ("held", "rolled-back"))
    return refused, held
