"""MeshAccessLog: access logs to files, TCP collectors or OpenTelemetry collectors.

`validation.py` exports `KIND`, the semantic checks beyond its JSON schema (schemas/MeshAccessLog.json).
Validation only for now: no `envoy.py`. The Go-compatible address parsers it shares with MeshMetric and
MeshTrace live in core/gourl.py and core/otel.py.
See its entry in docs/policies.md.
"""
