"""What the CA needs to know of a proxy to name it in a certificate: a structural type.

The CA sits below the mesh model, so it does not import `reconciler.mesh.model.Dataplane`;
it describes the few attributes it reads (mesh, name, labels, inbound tags, gateway tags),
and the mesh model's Dataplane satisfies this Protocol as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

__all__ = ["SERVICE_TAG", "InboundSubject", "ProxySubject"]

SERVICE_TAG = "kuma.io/service"
"""Kuma's service tag: each service a proxy fronts becomes a SPIFFE id of its certificate."""


class InboundSubject(Protocol):
    @property
    def tags(self) -> Mapping[str, str]: ...

    @property
    def service(self) -> str: ...


class ProxySubject(Protocol):
    """A data plane proxy as the CA sees it."""

    @property
    def mesh(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def inbounds(self) -> Sequence[InboundSubject]: ...

    @property
    def gateway(self) -> Mapping[str, Any] | None: ...
