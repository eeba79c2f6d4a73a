"""Logging for the CLI: constant messages with the facts as key=value fields.

Modules log `log.info("config changed", extra={"proxy": ..., "revision": ...})`; the text
formatter prints the extra fields after the message. With `--log-format json` each record is
one JSON object per line instead: `time` (UTC, RFC 3339 with milliseconds), `level`, `logger`,
`message`, then the extra fields as their own keys (an extra field named like one of those
four gets a trailing `_`), and `exception` with the traceback when there is one. Only
`cli.py` calls `configure`.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from reconciler.errors import escape_control

__all__ = ["configure", "LOG_FORMATS"]

LOG_FORMATS = ("text", "json")

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


class _JsonFormatter(logging.Formatter):
    _CORE = ("time", "level", "logger", "message")

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": _cut(record.getMessage()),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD:
                doc[f"{k}_" if k in self._CORE else k] = _json_value(v)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        # ensure_ascii: a value with any character stays on one line of plain ASCII.
        return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


def _cut(text: str) -> str:
    return f"{text[:MAX_FIELD]}…({len(text):,} characters)" if len(text) > MAX_FIELD else text


def _json_value(value: object) -> object:
    """Numbers, booleans and None as themselves; anything else as its (cut) text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return _cut(str(value))


def configure(verbose: bool, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_FieldsFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.getLogger("reconciler").setLevel(logging.DEBUG if verbose else logging.INFO)
