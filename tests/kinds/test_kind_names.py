"""The loader's table of kind names (below the kinds) agrees with the kind registry."""

from __future__ import annotations

from reconciler.kinds import all_kinds
from reconciler.source.kind_names import FLAT_KINDS, GLOBAL_KINDS, KIND_NAMES


def test_every_registered_kind_is_known_to_the_loader_and_no_other() -> None:
    assert set(all_kinds()) == KIND_NAMES


def test_scope_and_document_shape_agree_with_the_registry() -> None:
    kinds = all_kinds().values()
    assert {k.name for k in kinds if k.global_scope} == GLOBAL_KINDS
    assert {k.name for k in kinds if k.flat} == FLAT_KINDS
