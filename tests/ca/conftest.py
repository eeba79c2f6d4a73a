"""Shared CA material: RSA roots are slow to make, so each test module's roots are made once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pytest

from reconciler.ca.authority import Authority, generate_root


@pytest.fixture(scope="session")
def root() -> Authority:
    return generate_root("default", "ca-1", validity=10 * 365 * 86400.0)


@pytest.fixture(scope="session")
def other_root() -> Authority:
    return generate_root("default", "ca-2", validity=10 * 365 * 86400.0)


@dataclass(frozen=True)
class Inbound:
    tags: Mapping[str, str]

    @property
    def service(self) -> str:
        return self.tags.get("kuma.io/service", "")


@dataclass(frozen=True)
class Proxy:
    """A proxy as the CA sees it (ca.subject.ProxySubject), without the mesh model."""

    name: str
    mesh: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    inbounds: Sequence[Inbound] = ()
    gateway: Mapping[str, object] | None = None
