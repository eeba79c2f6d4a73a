"""Kuma's own examples (../shared/kuma-examples): valid ones give no errors, invalid ones give
errors at the fields Kuma reports.

Each example is validated as Kuma's README for the folder says: alone in a commit, with a Mesh
for each mesh it names. Field paths in INDEX.tsv use Kuma's dotted notation and, for the proto
kinds, a few names of Kuma's own (`config` for `conf`); `kuma_field_to_pointer` maps them.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from tests.support import validate_text

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "kuma-examples"
INDEX = EXAMPLES / "INDEX.tsv"

if not INDEX.exists():
    pytest.skip(
        f"Kuma's examples are not here ({EXAMPLES}); they live beside the project in the team's workspace, not in a user's clone",
        allow_module_level=True,
    )

# Kuma's validators name a few fields differently from the YAML the user writes; we report the
# field as written, and these map Kuma's name onto it (keys are normalized pointers).
ALIASES = {
    "/mtls/dpcert/rotation/expiration": "/mtls/backends/*/dpcert/rotation/expiration",
    "/networking/probes": "/probes",
}

# Same idea, for names with indexes or a misspelling in Kuma's path: (pattern, replacement).
REWRITES = (
    (r"/default/conf(?=/|$)", "/default"),  # MeshRetry: `default.conf.grpc` is `default.grpc`
    (r"/http/(abort|delay|responsebandwidth)/(\d+)(?=/|$)", r"/http/\2/\1"),  # MeshFaultInjection
    (r"/default/backends/backend/(\d+)/port$", r"/default/backends/\1/prometheus/port"),  # MeshMetric
    (r"/default/backends/backend/(\d+)(?=/|$)", r"/default/backends/\1"),
    (r"/default/applications/application/(\d+)$", r"/default/applications/\1/port"),
    # MeshTrafficPermission: `rules[0].allow[0]` is `rules[0].default.allow[0]`
    (r"(/rules/\d+)/(allow|allowwithshadowdeny|deny)(?=/|$)", r"\1/default/\2"),
    (r"^/networking/transparentproxing(?=/|$)", "/networking/transparentproxying"),  # Dataplane
    (r"^/availableservice(?=/|$)", "/availableservices"),  # ZoneIngress
)


def _rows() -> list[dict[str, str]]:
    with INDEX.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def kuma_field_to_pointer(field: str) -> str:
    """`spec.to[0].default` → `/spec/to/0/default`; `tags["kuma.io/service"]` → `/tags/kuma.io~1service`."""
    out = []
    for m in re.finditer(r'\["([^"]*)"\]|\[(\d+)\]|([^.\[\]]+)', field):
        key, index, name = m.groups()
        token = key if key is not None else index if index is not None else name
        out.append(token.replace("~", "~0").replace("/", "~1"))
    return "".join("/" + t for t in out)


def _norm(pointer: str) -> str:
    tokens = "/".join("conf" if t == "config" else t for t in pointer.lower().split("/"))
    for pattern, replacement in REWRITES:
        tokens = re.sub(pattern, replacement, tokens)
    return tokens


def _hits(expected: str, reported: list[str]) -> bool:
    want = _norm(ALIASES.get(_norm(expected), expected))
    pattern = re.compile("^" + re.escape(want).replace(r"\*", "[^/]+") + "(/.*)?$")
    for pointer in reported:
        got = _norm(pointer)
        if pattern.match(got):
            return True  # at the field or inside it
        if got and want.startswith(got + "/") and want.count("/") - got.count("/") == 1:
            return True  # at the field's parent (a rule about the combination of its fields)
    return False


def _expected_fields(expected_error: str) -> list[str]:
    fields = []
    for part in expected_error.split(" | "):
        field = part.split(":", 1)[0].strip().strip('"').replace('""', '"')
        if field:
            fields.append(field)
    return fields


ROWS = _rows()

# Examples whose label disagrees with what Kuma v2.14 itself does; each is checked to still
# behave as Kuma does (xfail strict: it fails the suite if it starts passing).
MISLABELLED = {
    "valid/doc-meshretry-backend-consumer-timeouts.yaml": (
        "illustrative docs snippet: MeshRetry's default has no numRetries; Kuma drops the unknown field "
        "and its validator then rejects the empty default (at least one of tcp, http, grpc)"
    ),
    "valid/doc-mesh-default-30.yaml": (
        "docs write `config:` for `conf:`; Kuma drops the unknown field and then refuses the provided CA "
        "without cert and key (mesh_manager: 'mtls.backends[0].conf.cert: has to be defined')"
    ),
    "valid/doc-dataplane-example.yaml": "docs fragment without networking; Kuma: 'networking: must be defined'",
    "valid/doc-dataplane-example-2.yaml": "docs fragment without networking; Kuma: 'networking: must be defined'",
    "valid/doc-meshhttproute-simple-http-3.yaml": (
        "mis-indented docs snippet (`path` beside a null `matches`); Kuma would drop `path` and match "
        "every request, which the author did not mean: we reject unknown fields on purpose"
    ),
    "valid/doc-meshgateway-edge-gateway-9.yaml": "unrendered docs placeholder `{{ k8s_service_selector_suffix }}` in a selector value, which Kuma's tag rules reject",
    "valid/doc-meshexternalservice-local-service.yaml": "unix socket endpoint without port: Kuma requires a port and an IP or DNS name",
    "valid/doc-meshidentity-identity-2.yaml": "`ca` indented under provider, not provider.bundled; Kuma drops it and requires bundled.ca",
    "valid/doc-hostnamegenerator-synced-kube-mesh-service.yaml": "unquoted YAML boolean in a string-to-string map, which Kuma's schema rejects",
    "valid/doc-meshaccesslog-example.yaml": "docs snippet without backends[].type and format.type, which Kuma's schema requires",
    "valid/doc-meshaccesslog-example-outbound.yaml": "docs snippet without backends[].type and format.type, which Kuma's schema requires",
    "valid/kt-meshaccesslog-opentelemetry-attribute-key-with-placeho.yaml": (
        "from the error table of Kuma's validator_test.go (L578): Kuma expects 'must be a static OpenTelemetry attribute name' on the key"
    ),
    "valid/kt-meshaccesslog-opentelemetry-attribute-keys-accumulate.yaml": (
        "from the error table of Kuma's validator_test.go (L622): Kuma expects violations on both keys"
    ),
}


def _params(valid: str) -> list[object]:
    return [
        pytest.param(
            r, id=r["file"], marks=[pytest.mark.xfail(strict=True, reason=MISLABELLED[r["file"]])] if r["file"] in MISLABELLED else []
        )
        for r in ROWS
        if r["valid"] == valid
    ]


@pytest.mark.parametrize("row", _params("yes"))
def test_kuma_valid_example_is_accepted(row: dict[str, str]) -> None:
    text = (EXAMPLES / row["file"]).read_text(encoding="utf-8")
    report = validate_text(text, path=row["file"])
    assert report.errors == (), "\n".join(p.render() for p in report.errors)


@pytest.mark.parametrize("row", _params("no"))
def test_kuma_invalid_example_is_rejected_at_kumas_fields(row: dict[str, str]) -> None:
    text = (EXAMPLES / row["file"]).read_text(encoding="utf-8")
    report = validate_text(text, path=row["file"])
    assert report.errors, f"{row['file']} was accepted; Kuma rejects it with: {row['expected_error']}"
    reported = [p.pointer for p in report.errors]
    missing = [f for f in _expected_fields(row["expected_error"]) if not _hits(kuma_field_to_pointer(f), reported)]
    assert not missing, f"{row['file']}: no error at {missing}; Kuma says: {row['expected_error']}\nwe said:\n" + "\n".join(
        p.render() for p in report.errors
    )
