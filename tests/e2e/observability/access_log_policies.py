"""The MeshAccessLogs of tests/e2e/observability/test_access_log.py, writing into `logs`."""

from __future__ import annotations

from pathlib import Path

__all__ = ["OUTBOUND_LINE", "policies"]

OUTBOUND_LINE = "%KUMA_TRAFFIC_DIRECTION% %KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE% %KUMA_SOURCE_ADDRESS_WITHOUT_PORT% %REQ(:PATH)% %RESPONSE_CODE% sent=%BYTES_SENT%"


def policies(logs: Path, tcp_port: int, otlp: str) -> dict[str, str | None]:
    return {
        "policies/inbound.yaml": f"""\
type: MeshAccessLog
mesh: default
name: inbound
spec:
  targetRef: {{kind: Mesh, proxyTypes: [Sidecar]}}
  rules:
    - default:
        backends:
          - type: File
            file: {{path: {logs / "inbound.log"}}}
          - type: File
            file:
              path: {logs / "inbound.json"}
              format:
                type: Json
                json:
                  - {{key: direction, value: '%KUMA_TRAFFIC_DIRECTION%'}}
                  - {{key: source, value: '%KUMA_SOURCE_SERVICE%'}}
                  - {{key: destination, value: '%KUMA_DESTINATION_SERVICE%'}}
                  - {{key: mesh, value: '%KUMA_MESH%'}}
                  - {{key: path, value: '%REQ(:PATH)%'}}
                  - {{key: status, value: '%RESPONSE_CODE%'}}
                  - {{key: received, value: '%BYTES_RECEIVED%'}}
""",
        "policies/outbound.yaml": f"""\
type: MeshAccessLog
mesh: default
name: outbound
spec:
  targetRef: {{kind: Mesh, proxyTypes: [Sidecar]}}
  to:
    - targetRef: {{kind: Mesh}}
      default:
        backends:
          - type: File
            file:
              path: {logs / "outbound.log"}
              format: {{type: Plain, plain: '{OUTBOUND_LINE}'}}
          - type: Tcp
            tcp:
              address: 127.0.0.1:{tcp_port}
              format:
                type: Json
                json:
                  - {{key: source, value: '%KUMA_SOURCE_SERVICE%'}}
                  - {{key: destination, value: '%KUMA_DESTINATION_SERVICE%'}}
                  - {{key: path, value: '%REQ(:PATH)%'}}
          - type: OpenTelemetry
            openTelemetry:
              endpoint: {otlp}
              attributes:
                - {{key: kuma.direction, value: '%KUMA_TRAFFIC_DIRECTION%'}}
                - {{key: http.path, value: '%REQ(:PATH)%'}}
                - {{key: http.status, value: '%RESPONSE_CODE%'}}
              body:
                kvlistValue:
                  values:
                    - {{key: route, value: {{stringValue: '%KUMA_SOURCE_SERVICE% to %KUMA_DESTINATION_SERVICE%'}}}}
""",
        "policies/gateway.yaml": f"""\
type: MeshAccessLog
mesh: default
name: gateway
spec:
  targetRef: {{kind: MeshGateway, name: edge}}
  to:
    - targetRef: {{kind: Mesh}}
      default:
        backends:
          - type: File
            file:
              path: {logs / "edge.log"}
              format: {{type: Plain, plain: '%KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE% %KUMA_TRAFFIC_DIRECTION% %REQ(:PATH)% %RESPONSE_CODE%'}}
""",
        "policies/gateway-in.yaml": f"""\
type: MeshAccessLog
mesh: default
name: gateway-in
spec:
  targetRef: {{kind: Mesh, proxyTypes: [Gateway]}}
  rules:
    - default:
        backends:
          - type: File
            file:
              path: {logs / "edge.log"}
              format: {{type: Plain, plain: '%KUMA_SOURCE_SERVICE%->%KUMA_DESTINATION_SERVICE% %KUMA_TRAFFIC_DIRECTION% %REQ(:PATH)% %RESPONSE_CODE%'}}
""",
    }
