"""Logging for the CLI: constant messages with the facts as key=value fields.

Modules log `log.info("config changed", extra={"proxy": ..., "revision": ...})`; this
formatter prints the extra fields after the message. Only `cli.py` calls `configure`.
"""

from __future__ import annotations

import logging
import sys

from reconciler.errors import escape_control

__all__ = ["configure"]

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _FieldsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if not fields:
            return base
        rendered = " ".join(f"{k}={_quote(v)}" for k, v in fields.items())
        first, sep, rest = base.partition("\n")
        return f"{first} {rendered}{sep}{rest}"


MAX_FIELD = 1024
"""Characters of one field value printed; node ids, refs and messages can come from strangers."""


def _quote(value: object) -> str:
    # A value a proxy or a pusher chose must stay one field of one line: control characters
    # are escaped (a newline would forge a log line), quotes inside quoted values too, and a
    # huge value is cut (one request must not write megabytes to the log).
    text = escape_control(str(value))
    if len(text) > MAX_FIELD:
        text = f"{text[:MAX_FIELD]}…({len(text):,} characters)"
    if not text or any(c in text for c in ' "='):
        return '"' + text.replace('"', '\\"') + '"'
    return text


def configure(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("reconciler").setLevel(logging.DEBUG if verbose else logging.INFO)
