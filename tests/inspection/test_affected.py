"""The dataplanes a policy affects (`_resources/dataplanes`, `reconciler inspect policy`): by its
top-level targetRef, for committed policies and for the defaults Kuma creates with a mesh, which
the API lists beside them."""

from __future__ import annotations

import pytest

from reconciler.inspection.dataplanes import policy_dataplanes
from reconciler.inspection.rules import UnknownResource
from tests.inspection.support import NO_DEFAULTS, model_of
from tests.support import dataplane_yaml

DATAPLANES = dataplane_yaml("web", "web", 8080, 9080) + "---\n" + dataplane_yaml("api", "api", 8081, 9081)
ONLY_API = """---
type: MeshRetry
name: api-only
mesh: default
spec:
  targetRef: {kind: MeshSubset, tags: {kuma.io/service: api}}
  to:
    - targetRef: {kind: Mesh}
      default: {tcp: {maxConnectAttempt: 2}}
"""


def test_a_committed_policy_affects_the_dataplanes_its_target_ref_selects() -> None:
    model = model_of(NO_DEFAULTS + DATAPLANES + ONLY_API)
    assert [dp.name for dp in policy_dataplanes(model, "default", "MeshRetry", "api-only")] == ["api"]


def test_a_default_policy_of_the_mesh_affects_every_dataplane() -> None:
    model = model_of("type: Mesh\nname: default\n---\n" + DATAPLANES)
    assert [dp.name for dp in policy_dataplanes(model, "default", "MeshTimeout", "mesh-timeout-all-default")] == ["api", "web"]


def test_a_skipped_default_or_an_unknown_policy_is_unknown() -> None:
    model = model_of(NO_DEFAULTS + DATAPLANES)
    with pytest.raises(UnknownResource):
        policy_dataplanes(model, "default", "MeshTimeout", "mesh-timeout-all-default")
    with pytest.raises(UnknownResource):
        policy_dataplanes(model, "other", "MeshRetry", "api-only")
