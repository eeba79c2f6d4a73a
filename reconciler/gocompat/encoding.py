"""What Go's encoding/json accepts for a `[]byte` field: standard base64 with padding."""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode_base64"]


def decode_base64(value: str) -> bytes | None:
    """What Go's encoding/json accepts for bytes: standard base64 with padding; line breaks ignored."""
    compact = value.replace("\r", "").replace("\n", "")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
