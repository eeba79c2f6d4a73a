"""MeshAccessLog: access logs to files, TCP collectors or OpenTelemetry collectors.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshAccessLog.json).
`envoy.py` exports `PLUGIN`, its effect on Envoy: the access loggers of `backends.py`, in the formats
and with Kuma's placeholders of `formats.py`, for the inbound rules of `rules.py` (not merged, as
Kuma). The Go-compatible address parsers it shares with MeshMetric and MeshTrace live in
core/gourl.py and core/otel.py. The Tcp backend's streamer beside Envoy is
reconciler/dataplane/accesslog_streamer.py. See docs/observability.md#meshaccesslog.
"""
