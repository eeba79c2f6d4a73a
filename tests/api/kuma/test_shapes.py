"""A resource in Kuma's JSON: times as Go writes them, KRI, and no key material on open reads
(a Secret's data, inline keys of data sources) while references and public parts stay."""

from __future__ import annotations

from reconciler.api.kuma.descriptors import descriptor_of
from reconciler.api.kuma.shapes import REDACTED, item_json, rfc3339
from reconciler.model import Resource
from reconciler.store import ResourceTime

TIMES = ResourceTime(1700000000.5, 1700000001.0, "")


def _item(resource: Resource) -> dict[str, object]:
    d = descriptor_of(resource.type)
    assert d is not None
    return item_json(d, resource, TIMES)


def test_times_are_rfc3339_as_go_marshals_them() -> None:
    assert rfc3339(1700000000.5) == "2023-11-14T22:13:20.5Z"
    assert rfc3339(1700000001.0) == "2023-11-14T22:13:21Z"
    assert rfc3339(1700000000.123456) == "2023-11-14T22:13:20.123456Z"


def test_inline_key_material_is_redacted_and_references_kept() -> None:
    mesh = Resource.create(
        "Mesh",
        "default",
        {
            "mtls": {
                "enabledBackend": "ca-1",
                "backends": [
                    {
                        "name": "ca-1",
                        "type": "provided",
                        "conf": {
                            "cert": {"inlineString": "-----BEGIN CERTIFICATE-----"},
                            "key": {"inlineString": "-----BEGIN PRIVATE KEY-----"},
                        },
                    },
                    {"name": "ca-2", "type": "provided", "conf": {"cert": {"secret": "c"}, "key": {"secret": "k"}}},
                ],
            }
        },
        flat=True,
    )
    backends = _item(mesh)["mtls"]["backends"]  # type: ignore[index]
    assert backends[0]["conf"] == {"cert": {"inlineString": "-----BEGIN CERTIFICATE-----"}, "key": {"inlineString": REDACTED}}
    assert backends[1]["conf"] == {"cert": {"secret": "c"}, "key": {"secret": "k"}}

    identity = Resource.create(
        "MeshIdentity",
        "id",
        {"provider": {"bundled": {"ca": {"privateKey": {"type": "InsecureInline", "insecureInline": {"value": "PEM"}}}}}},
        mesh="default",
    )
    spec = _item(identity)["spec"]
    assert spec["provider"]["bundled"]["ca"]["privateKey"] == {"type": "InsecureInline", "insecureInline": REDACTED}  # type: ignore[index]


def test_a_secret_shows_no_data_and_has_no_kri() -> None:
    secret = Resource.create("Secret", "s", {"data": "c2VjcmV0"}, mesh="default", flat=True)
    item = _item(secret)
    assert "data" not in item and "kri" not in item
    assert item["labels"] == {"kuma.io/mesh": "default"}


def test_labels_written_in_the_resource_win_over_computed_ones() -> None:
    gateway = Resource.create(
        "Dataplane", "gw", {"networking": {"gateway": {"type": "BUILTIN"}}}, mesh="m", flat=True, labels={"kuma.io/mesh": "x"}
    )
    assert _item(gateway)["labels"] == {"kuma.io/mesh": "x", "kuma.io/proxy-type": "gateway"}
    assert "labels" not in _item(Resource.create("Mesh", "m", {}, flat=True))  # a global kind gets none


def test_kri_uses_the_display_name_and_zone_labels() -> None:
    timeout = Resource.create(
        "MeshTimeout", "t-abc", {}, mesh="m", labels={"kuma.io/display-name": "t", "kuma.io/zone": "east", "k8s.kuma.io/namespace": "ns"}
    )
    assert _item(timeout)["kri"] == "kri_mt_m_east_ns_t_"
