"""Kuma's error body (api/openapi/specs/common/error_schema.yaml, AIP-193 style): what a Kuma
client parses on a 4xx, with Kuma's own `details` copy of `detail` beside it."""

from __future__ import annotations

from aiohttp import web

from reconciler.api.server import json_response

__all__ = ["kuma_error"]


def kuma_error(status: int, title: str, detail: str) -> web.Response:
    """`{"type": "/std-errors", "status", "title", "detail", "details"}` with that status."""
    body = {"type": "/std-errors", "status": status, "title": title, "detail": detail, "details": detail}
    return json_response(body, status)
