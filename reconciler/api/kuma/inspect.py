"""Kuma's inspect endpoints (`_rules`, `_config`, `_resources/dataplanes`, ...)."""

from __future__ import annotations

from reconciler.api.backend import ApiBackend
from reconciler.api.server import Route

__all__ = ["inspect_routes"]


def inspect_routes(cp: ApiBackend) -> list[Route]:
    return []
