"""The contract's item schemas, one per resource kind of example-repo: hand transcriptions of
`components/schemas/<Kind>Item` in Kuma v2.14.3's OpenAPI description (docs/generated/openapi.yaml).

Every item carries the part shared by all kinds: `type`, `name`, `spec` (required by the spec
for new-style kinds), plus `creationTime` and `modificationTime`, which Kuma's server always writes
(rest/v1alpha1.ResourceMeta: no omitempty), `mesh` for a mesh-scoped kind, `kri` (written for
every kind with a short name, which all of these have) and `labels` (omitted by Kuma when empty).
Proto kinds (Mesh, Dataplane, MeshGateway, Secret, ZoneIngress, ZoneEgress) have their spec
fields at the top level instead of under `spec`.
"""

from __future__ import annotations

from tests.api.kuma.contract_policies import POLICY_ITEMS
from tests.api.kuma.contract_schema import (
    BOOLEAN,
    CONDITIONS,
    INT_OR_STRING,
    INTEGER,
    LABELS,
    OBJECT,
    STRING,
    Schema,
    array,
    enum,
    item,
    obj,
)

__all__ = ["ITEMS"]

# Services and identity: components/schemas/Mesh{Service,ExternalService,MultiZoneService}Item.
_SNIS = array(obj({"port": INTEGER, "sni": STRING}))
_SERVICE_PORT = obj({"port": INTEGER}, {"name": STRING, "appProtocol": STRING, "targetPort": INT_OR_STRING})
_SERVICE_STATUS = obj(
    None,
    {
        "addresses": array(obj(None, {"hostname": STRING, "origin": STRING})),
        "vips": array(obj(None, {"ip": STRING})),
        "tls": obj(None, {"status": enum(["Ready", "NotReady"])}),
        "dataplaneProxies": obj(None, {"connected": INTEGER, "healthy": INTEGER, "total": INTEGER}),
        "hostnameGenerators": array(obj({"hostnameGeneratorRef": obj({"coreName": STRING})}, {"conditions": CONDITIONS})),
    },
)
_NETWORKING_ADDRESS = {"address": STRING, "advertisedAddress": STRING, "admin": obj(None, {"port": INTEGER})}

# Every kind of example-repo, by its type.
ITEMS: dict[str, Schema] = {
    **POLICY_ITEMS,
    # components/schemas/MeshServiceItem
    "MeshService": item(
        "MeshService",
        obj(
            None,
            {
                "state": enum(["Available", "Unavailable"]),
                "selector": obj(None, {"dataplaneTags": LABELS, "dataplaneLabels": LABELS, "dataplaneRef": obj(None, {"name": STRING})}),
                "ports": array(_SERVICE_PORT),
                "identities": array(obj({"type": enum(["ServiceTag", "SpiffeID"]), "value": STRING})),
            },
        ),
        top={"snis": _SNIS},
        status=_SERVICE_STATUS,
    ),
    # components/schemas/MeshExternalServiceItem: spec.match (port required) and endpoints[] address+port.
    "MeshExternalService": item(
        "MeshExternalService",
        obj(
            {"match": obj({"port": INTEGER}, {"type": enum(["HostnameGenerator"]), "protocol": enum(["tcp", "grpc", "http", "http2"])})},
            {
                "endpoints": array(obj({"address": STRING, "port": INTEGER}, {"priority": INTEGER})),
                "tls": obj(None, {"enabled": BOOLEAN, "allowRenegotiation": BOOLEAN, "verification": OBJECT, "version": OBJECT}),
                "extension": obj({"type": STRING}),
            },
        ),
        top={"snis": _SNIS},
        status=obj(None, {"vip": obj(None, {"ip": STRING}), "addresses": array(OBJECT), "hostnameGenerators": array(OBJECT)}),
    ),
    # components/schemas/MeshMultiZoneServiceItem: spec.ports and spec.selector.meshService required.
    "MeshMultiZoneService": item(
        "MeshMultiZoneService",
        obj({"ports": array(_SERVICE_PORT), "selector": obj({"meshService": obj(None, {"matchLabels": LABELS})})}),
        top={"snis": _SNIS},
        status=obj(None, {"meshServices": array(OBJECT), "vips": array(OBJECT), "addresses": array(OBJECT), "conditions": CONDITIONS}),
    ),
    # components/schemas/HostnameGeneratorItem: global; spec.template required.
    "HostnameGenerator": item(
        "HostnameGenerator",
        obj(
            {"template": STRING},
            {"selector": obj(None, {"meshService": OBJECT, "meshExternalService": OBJECT, "meshMultiZoneService": OBJECT})},
        ),
    ),
    # components/schemas/MeshIdentityItem: spec.provider.type Bundled|Spire|Extension.
    "MeshIdentity": item(
        "MeshIdentity",
        obj(
            None,
            {
                "selector": obj(None, {"dataplane": obj(None, {"matchLabels": LABELS})}),
                "spiffeID": obj(None, {"trustDomain": STRING, "path": STRING}),
                "provider": obj({"type": enum(["Bundled", "Spire", "Extension"])}, {"bundled": OBJECT, "spire": OBJECT}),
            },
        ),
        status=obj(None, {"conditions": CONDITIONS}),
    ),
    # components/schemas/MeshTrustItem: spec.caBundles[] (type Pem, pem.value) and trustDomain required.
    "MeshTrust": item(
        "MeshTrust",
        obj({"caBundles": array(obj({"type": enum(["Pem"])}, {"pem": obj({"value": STRING})})), "trustDomain": STRING}, {"origin": OBJECT}),
    ),
    # components/schemas/MeshOpenTelemetryBackendItem
    "MeshOpenTelemetryBackend": item(
        "MeshOpenTelemetryBackend",
        obj(
            None,
            {
                "endpoint": obj(None, {"address": STRING, "port": INTEGER, "path": STRING}),
                "protocol": enum(["grpc", "http"]),
                "env": obj(None, {"mode": enum(["Disabled", "Optional", "Required"]), "precedence": enum(["ExplicitFirst", "EnvFirst"])}),
            },
        ),
        status=obj(None, {"conditions": CONDITIONS}),
    ),
    # components/schemas/WorkloadItem: an empty spec; status.dataplaneProxies.
    "Workload": item("Workload", OBJECT, status=obj(None, {"dataplaneProxies": OBJECT})),
    # components/schemas/MeshItem (proto kind: fields at the top level)
    "Mesh": item(
        "Mesh",
        top={
            "mtls": obj(None, {"enabledBackend": STRING, "backends": array(obj(None, {"name": STRING, "type": STRING, "conf": OBJECT}))}),
            "meshServices": obj(None, {"mode": {"anyOf": [STRING, INTEGER]}}),
            "networking": OBJECT,
            "routing": OBJECT,
            "constraints": OBJECT,
            "skipCreatingInitialPolicies": array(STRING),
        },
    ),
    # components/schemas/DataplaneItem (proto kind)
    "Dataplane": item(
        "Dataplane",
        top_required={
            "networking": obj(
                None,
                {
                    **_NETWORKING_ADDRESS,
                    "inbound": array(
                        obj(
                            None,
                            {
                                "port": INTEGER,
                                "servicePort": INTEGER,
                                "name": STRING,
                                "tags": LABELS,
                                "state": {"anyOf": [STRING, INTEGER]},
                            },
                        )
                    ),
                    "outbound": array(obj(None, {"port": INTEGER, "address": STRING, "tags": LABELS, "backendRef": OBJECT})),
                    "gateway": obj(None, {"tags": LABELS, "type": {"anyOf": [STRING, INTEGER]}}),
                    "transparentProxying": OBJECT,
                },
            ),
        },
        # Kuma's Dataplane always has networking (its validation requires it); the schema lists it.
        top={"metrics": OBJECT, "probes": OBJECT},
    ),
    # components/schemas/MeshGatewayItem (proto kind): selectors[].match, conf.listeners[].
    "MeshGateway": item(
        "MeshGateway",
        top={
            "selectors": array(obj(None, {"match": LABELS})),
            "tags": LABELS,
            "conf": obj(
                None,
                {
                    "listeners": array(
                        obj(None, {"port": INTEGER, "hostname": STRING, "protocol": {"anyOf": [STRING, INTEGER]}, "tags": LABELS})
                    )
                },
            ),
        },
    ),
    # components/schemas/SecretItem (proto kind): `data` is optional in the schema.
    "Secret": item("Secret", top={"data": STRING}),
    # components/schemas/ZoneIngressItem (proto kind, global)
    "ZoneIngress": item(
        "ZoneIngress",
        top={
            "zone": STRING,
            "networking": obj(None, {**_NETWORKING_ADDRESS, "port": INTEGER, "advertisedPort": INTEGER}),
            "availableServices": array(obj(None, {"tags": LABELS, "instances": INTEGER, "mesh": STRING, "externalService": BOOLEAN})),
        },
    ),
    # components/schemas/ZoneEgressItem (proto kind, global)
    "ZoneEgress": item("ZoneEgress", top={"zone": STRING, "networking": obj(None, {**_NETWORKING_ADDRESS, "port": INTEGER})}),
}
