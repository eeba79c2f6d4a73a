"""The serve loop's decisions, one row per situation a user would recognise.

Each function of reconciler.controlplane.decide is pure: the rows give refs, what is applied,
earlier verdicts and proxy acks, and the action the control plane then carries out.
"""

from __future__ import annotations

import pytest

from reconciler.controlplane import decide
from reconciler.controlplane.decide import (
    BranchMissing,
    Evaluate,
    Follow,
    Ignore,
    KeepServing,
    Known,
    NoWayBack,
    Refs,
    RepeatVerdict,
    RollBack,
    ServePin,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40


@pytest.mark.parametrize(
    ("situation", "refs", "target"),
    [
        ("follow the branch", Refs(head=A, pin=None), Follow(A)),
        ("pin removed = resume: the branch is followed again", Refs(head=B, pin=None), Follow(B)),
        ("pinned, branch moved on: serve the pin, hold the head", Refs(head=B, pin=A), ServePin(A, hold=B)),
        ("pinned to the head itself: nothing to hold", Refs(head=A, pin=A), ServePin(A, hold=None)),
        ("pinned, branch deleted: the pin still serves", Refs(head=None, pin=A), ServePin(A, hold=None)),
        ("no branch, no pin: nothing to read", Refs(head=None, pin=None), BranchMissing()),
    ],
)
def test_which_commit_to_serve(situation: str, refs: Refs, target: decide.Target) -> None:
    assert decide.choose_target(refs) == target, situation


@pytest.mark.parametrize(
    ("situation", "revision", "applied", "last", "refused", "action"),
    [
        ("first start: evaluate the head", A, None, None, (), Evaluate(A)),
        ("new commit on the branch: evaluate it", B, A, Known(A, "applied"), (), Evaluate(B)),
        ("nothing new: keep serving", A, A, Known(A, "applied"), (), KeepServing(A)),
        ("a bad head is not re-validated at every poll", B, A, Known(B, "rejected"), (), RepeatVerdict(B, "rejected")),
        ("a commit that failed to read is tried again", B, A, Known(B, "failed"), (), Evaluate(B)),
        ("NACKed commit stays refused until the branch moves", B, A, Known(A, "applied"), (B,), RepeatVerdict(B, "rejected-by-proxies")),
        ("NACKed commit, branch moved on: evaluate the new head", C, A, Known(B, "rejected-by-proxies"), (B,), Evaluate(C)),
        ("restart: the applied ref is served before the branch is read", A, None, None, (), Evaluate(A)),
        ("a refused commit that is applied again (pinned) keeps serving", B, B, None, (B,), KeepServing(B)),
    ],
)
def test_what_to_do_with_the_target(
    situation: str, revision: str, applied: str | None, last: Known | None, refused: tuple[str, ...], action: decide.ServeAction
) -> None:
    assert decide.serve_decision(revision, applied=applied, last=last, refused=refused) == action, situation


@pytest.mark.parametrize(
    ("situation", "head", "held", "action"),
    [
        ("pinned + new commit = validated once, then held", B, {}, Evaluate(B)),
        ("pinned, same head at the next poll: the verdict stands", B, {B: "held"}, RepeatVerdict(B, "held")),
        ("pinned, invalid head: rejected once", B, {B: "rejected"}, RepeatVerdict(B, "rejected")),
        ("pinned, the head that was rolled back stays rolled back", B, {B: "rolled-back"}, RepeatVerdict(B, "rolled-back")),
        ("pinned, another new commit: validated", C, {B: "held"}, Evaluate(C)),
    ],
)
def test_branch_head_while_pinned(situation: str, head: str, held: dict[str, str], action: decide.HoldAction) -> None:
    assert decide.hold_decision(head, held) == action, situation


@pytest.mark.parametrize(
    ("situation", "previous", "now", "now_descends", "rolled_back"),
    [
        ("pin to an older commit rolls the served one back", B, A, False, True),
        ("pin to a newer commit is no rollback", A, B, True, False),
        ("pin to the commit served is no rollback", A, A, True, False),
        ("pin to a commit off the branch rolls back", A, C, False, True),
    ],
)
def test_a_pin_that_moves_serving(situation: str, previous: str, now: str, now_descends: bool, rolled_back: bool) -> None:
    assert decide.rolled_back(previous, now, now_descends=now_descends) is rolled_back, situation


@pytest.mark.parametrize(
    ("situation", "kwargs", "action"),
    [
        ("NACK with rollback-on-nack: back to the accepted commit", {"applied": B, "accepted": A}, RollBack(bad=B, good=A)),
        ("NACK without rollback-on-nack: keep serving", {"applied": B, "accepted": A, "rollback_on_nack": False}, Ignore()),
        ("NACK of an older revision than the applied one", {"applied": C, "accepted": A}, Ignore()),
        ("NACK before anything is applied", {"applied": None, "accepted": None}, Ignore()),
        ("NACK of the accepted revision itself: no way back from it", {"applied": B, "accepted": B}, Ignore()),
        ("NACK of a commit already refused", {"applied": B, "accepted": A, "refused": (B,)}, Ignore()),
        ("second NACK while the rollback runs", {"applied": B, "accepted": A, "rolling_back": True}, Ignore()),
        ("NACK and no commit was ever accepted by every proxy", {"applied": B, "accepted": None}, NoWayBack(B)),
    ],
)
def test_proxies_nack_the_applied_revision(situation: str, kwargs: dict[str, object], action: decide.NackAction) -> None:
    args: dict[str, object] = {"rollback_on_nack": True, "refused": (), "rolling_back": False} | kwargs
    assert decide.nack_decision(B, **args) == action, situation  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("situation", "latest", "pinned", "refused", "held"),
    [
        ("commits proxies rejected stay refused after a restart", {A: "applied", B: "rejected-by-proxies"}, False, {B}, set()),
        ("held heads stay held while the pin exists", {A: "applied", B: "held", C: "rolled-back"}, True, set(), {B, C}),
        ("held heads are forgotten once the pin is gone", {A: "applied", B: "held"}, False, set(), set()),
        ("rejected commits are not restored (the last attempt says so)", {B: "rejected"}, True, set(), set()),
    ],
)
def test_verdicts_after_a_restart(situation: str, latest: dict[str, str], pinned: bool, refused: set[str], held: set[str]) -> None:
    assert decide.restored_verdicts(latest, pinned=pinned) == (frozenset(refused), frozenset(held)), situation


def test_a_day_of_serving() -> None:
    """The functions chained as the loop chains them: new commit, pin, held head, resume."""
    applied: str | None = None
    held: dict[str, str] = {}

    def reconcile(refs: Refs) -> list[object]:
        nonlocal applied
        done: list[object] = []
        target = decide.choose_target(refs)
        assert not isinstance(target, BranchMissing)
        if isinstance(target, Follow):
            held.clear()
        action = decide.serve_decision(target.revision, applied=applied, last=None, refused=())
        if isinstance(action, Evaluate):
            # every commit here is valid; B came after A, C after B
            if isinstance(target, ServePin) and applied is not None and decide.rolled_back(applied, action.revision, now_descends=False):
                held[applied] = "rolled-back"
            applied = action.revision
        done.append(action)
        if isinstance(target, ServePin) and target.hold is not None:
            hold = decide.hold_decision(target.hold, held)
            held.setdefault(target.hold, "held")
            done.append(hold)
        return done

    assert reconcile(Refs(head=A, pin=None)) == [Evaluate(A)]
    assert reconcile(Refs(head=B, pin=None)) == [Evaluate(B)]
    assert reconcile(Refs(head=B, pin=A)) == [Evaluate(A), RepeatVerdict(B, "rolled-back")]  # rollback: A served again
    assert reconcile(Refs(head=C, pin=A)) == [KeepServing(A), Evaluate(C)]  # C held, not applied
    assert reconcile(Refs(head=C, pin=A)) == [KeepServing(A), RepeatVerdict(C, "held")]
    assert reconcile(Refs(head=C, pin=None)) == [Evaluate(C)]  # resume
    assert held == {}


def test_restart_with_a_bad_head() -> None:
    """At restart the applied ref is served first; the bad head is then evaluated once (and
    rejected by validation), and the next polls leave the applied commit serving."""
    assert decide.serve_decision(A, applied=None, last=None, refused=()) == Evaluate(A)  # refs/reconciler/applied
    assert decide.choose_target(Refs(head=B, pin=None)) == Follow(B)
    assert decide.serve_decision(B, applied=A, last=Known(A, "applied"), refused=()) == Evaluate(B)
    # validation rejected B: A is still applied, and B is not evaluated again
    assert decide.serve_decision(B, applied=A, last=Known(B, "rejected"), refused=()) == RepeatVerdict(B, "rejected")
