"""Secret: semantic checks that its JSON Schema cannot express.

A Secret holds one value (a certificate, a key, a token) for a mesh, base64-encoded in
`data`. Kuma has no validator for it beyond reading `data` as bytes, which fails unless the
text is standard base64 with padding; that is the one rule here.
"""

from __future__ import annotations

from reconciler.checks import as_map
from reconciler.errors import Path, Violation
from reconciler.gocompat.encoding import decode_base64
from reconciler.kind import Kind
from reconciler.model import Resource

__all__ = ["KIND", "validate"]


def validate(resource: Resource) -> list[Violation]:
    data = as_map(resource.spec).get("data")
    if isinstance(data, str) and decode_base64(data) is None:
        return [
            Violation(Path.root("data"), "must be base64-encoded (standard alphabet, with = padding), e.g. the output of `base64 -w0 file`")
        ]
    return []


KIND = Kind(name="Secret", scope="Mesh", flat=True, short_name="", validate=validate)
