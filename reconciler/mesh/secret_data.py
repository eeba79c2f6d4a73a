"""Secret bytes for MeshExternalService TLS data sources, resolved before generation.

`tls.verification.caCert` / `clientCert` / `clientKey` may name a Secret (`{secret: NAME}`); the
mesh model gives each such data source the decoded bytes of that Secret under `SECRET_DATA`, so
the Envoy config stays a pure function of the proxy's view. Kept apart from mesh/external.py so
that mesh/model.py can use it without importing the module that builds on the model.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from reconciler.frozen import freeze
from reconciler.model import Resource

__all__ = ["DATA_SOURCES", "SECRET_DATA", "with_secret_data"]

DATA_SOURCES = ("caCert", "clientCert", "clientKey")
"""The data sources of `tls.verification`."""

SECRET_DATA = "secretData"
"""Key added to a `{secret: NAME}` data source: the bytes of that Secret's `data`."""


def with_secret_data(spec: Mapping[str, Any], secrets: Mapping[str, Resource]) -> Mapping[str, Any]:
    """`spec` with each `secret` data source of `tls.verification` carrying that Secret's bytes."""
    tls = spec.get("tls")
    verification = tls.get("verification") if isinstance(tls, Mapping) else None
    if not isinstance(verification, Mapping):
        return spec
    changes: dict[str, Any] = {}
    for field in DATA_SOURCES:
        source = verification.get(field)
        if not isinstance(source, Mapping) or not source.get("secret"):
            continue
        secret = secrets.get(str(source["secret"]))
        if secret is None:
            continue
        try:
            data = base64.b64decode(str(secret.spec.get("data") or ""), validate=True)
        except (binascii.Error, ValueError):
            continue
        changes[field] = {**source, SECRET_DATA: data}
    if not changes:
        return spec
    assert isinstance(tls, Mapping)
    return freeze({**spec, "tls": {**tls, "verification": {**verification, **changes}}})  # type: ignore[no-any-return]
