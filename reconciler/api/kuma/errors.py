"""Kuma's error answer (Kong's AIP-193 shape, as Kuma's rest error handler writes it):
`type`, `status`, `title`, `detail`, `instance`, `invalid_parameters`, and the deprecated
`details` and `causes` that older Kuma clients (kumactl) still read.

Kuma fills `instance` with the request's trace id when tracing is on; the published schema
requires it, so here it is always there: a random id of this answer, also logged, so a user's
report can be found in the control plane's log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from reconciler.api.server import json_response

__all__ = ["KumaError", "InvalidParameter", "kuma_error", "not_found"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class InvalidParameter:
    field: str
    reason: str
    source: str = "query"

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "source": self.source}


@dataclass
class KumaError(Exception):
    """Raised by a handler; answered in Kuma's shape (see `kuma_error`)."""

    status: int
    title: str
    detail: str
    invalid: tuple[InvalidParameter, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        return kuma_error(self.status, self.title, self.detail, self.invalid, self.headers)


def kuma_error(
    status: int, title: str, detail: str, invalid: Iterable[InvalidParameter] = (), headers: Mapping[str, str] | None = None
) -> web.Response:
    invalid = list(invalid)
    instance = uuid.uuid4().hex
    body: dict[str, Any] = {"type": "/std-errors", "status": status, "title": title, "detail": detail, "instance": instance}
    log.debug("kuma api error", extra={"status": status, "title": title, "detail": detail, "instance": instance})
    if invalid:
        body["invalid_parameters"] = [p.to_json() for p in invalid]
    body["details"] = detail
    if invalid:
        body["causes"] = [{"field": p.field, "message": p.reason} for p in invalid]
    response = json_response(body, status, dict(headers or {}))
    response.content_type = "application/json"
    return response


def not_found(title: str) -> KumaError:
    """Kuma's 404: the title says what was being read, the detail is always `Not found`."""
    return KumaError(404, title, "Not found")
