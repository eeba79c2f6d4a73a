"""Test helpers: real git repositories in temp dirs, validation of YAML text, resource YAML, and
Envoy config generated for a proxy with its consistency checked (`generate_checked`)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.errors import Problem
from reconciler.model import Snapshot
from reconciler.source.loader import load_file
from reconciler.validate import Report, validate

if TYPE_CHECKING:
    from reconciler.views.proxy import ProxyView
    from reconciler.xds.resources import ProxyResources

__all__ = [
    "GitRepo",
    "git",
    "validate_text",
    "snapshot_of_text",
    "meshes_for",
    "problem_dicts",
    "dataplane_yaml",
    "gateway_yaml",
    "served_listener",
    "assert_consistent",
    "generate_checked",
    "mesh",
    "ALLOW_ALL",
    "self_signed_ec_ca",
]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(cwd: Path | str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, text=True, capture_output=True, check=check)


class GitRepo:
    """A real repository with a work tree, driven with the `git` command."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", branch)
        git(path, "config", "commit.gpgsign", "false")

    def write(self, files: Mapping[str, str | bytes | None]) -> None:
        """Write (or with None, delete) files relative to the work tree."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                if target.exists() or target.is_symlink():
                    target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")

    def commit(self, files: Mapping[str, str | bytes | None] | None = None, message: str = "change") -> str:
        if files:
            self.write(files)
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD").stdout.strip()


def meshes_for(text: str, snapshot: Snapshot) -> str:
    """Mesh documents for every mesh the snapshot's resources name but do not define."""
    defined = {r.name for r in snapshot if r.type == "Mesh"}
    needed = sorted({r.mesh for r in snapshot if r.mesh} - defined)
    return "".join(f"---\ntype: Mesh\nname: {m}\n" for m in needed)


def snapshot_of_text(text: str, path: str = "input.yaml", add_meshes: bool = True) -> Snapshot:
    first = load_file(path, text.encode())
    snap = Snapshot(None, first.resources, first.problems, 1)
    if add_meshes:
        extra = meshes_for(text, snap)
        if extra:
            more = load_file("meshes.yaml", extra.encode())
            snap = Snapshot(None, first.resources + more.resources, first.problems + more.problems, 2)
    return snap


def validate_text(text: str, path: str = "input.yaml", add_meshes: bool = True) -> Report:
    """Validate YAML text as one file of a commit, adding a Mesh for each mesh it names."""
    return validate(snapshot_of_text(text, path, add_meshes))


def problem_dicts(problems: tuple[Problem, ...] | list[Problem]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for p in problems:
        doc: dict[str, object] = {"line": p.line, "pointer": p.pointer, "message": p.message}
        if p.severity != "error":
            doc["severity"] = p.severity
        out.append(doc)
    return out


def gateway_yaml(port: int, to: str, *, name: str = "edge", dataplane: str = "edge-1", mesh: str = "default") -> str:
    """A builtin gateway (its Dataplane, whose `kuma.io/service` is `name`) with one HTTP listener on
    `port`, and a MeshHTTPRoute `<name>-to-<to>` sending every path to the MeshService `to`."""
    return f"""\
type: Dataplane
mesh: {mesh}
name: {dataplane}
networking:
  address: 127.0.0.1
  gateway:
    type: BUILTIN
    tags: {{kuma.io/service: {name}}}
---
type: MeshGateway
mesh: {mesh}
name: {name}
selectors:
  - match: {{kuma.io/service: {name}}}
conf:
  listeners:
    - port: {port}
      protocol: HTTP
---
type: MeshHTTPRoute
name: {name}-to-{to}
mesh: {mesh}
spec:
  targetRef: {{kind: MeshGateway, name: {name}}}
  to:
    - targetRef: {{kind: Mesh}}
      rules:
        - matches: [{{path: {{type: PathPrefix, value: /}}}}]
          default:
            backendRefs: [{{kind: MeshService, name: {to}}}]
"""


def dataplane_yaml(
    name: str,
    service: str,
    inbound_port: int,
    service_port: int,
    outbounds: Mapping[str, int] | None = None,
    *,
    protocol: str = "http",
    tags: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    admin_port: int | None = None,
    mesh: str = "default",
) -> str:
    """A Universal Dataplane on 127.0.0.1 with one inbound and an outbound per `{service: port}`."""
    text = f"type: Dataplane\nmesh: {mesh}\nname: {name}\n"
    if labels:
        text += "labels:\n" + "".join(f"  {k}: {v}\n" for k, v in labels.items())
    text += "networking:\n  address: 127.0.0.1\n"
    if admin_port is not None:
        text += f"  admin:\n    port: {admin_port}\n"
    text += f"""\
  inbound:
    - port: {inbound_port}
      servicePort: {service_port}
      tags:
        kuma.io/service: {service}
        kuma.io/protocol: {protocol}
"""
    text += "".join(f"        {k}: {v}\n" for k, v in (tags or {}).items())
    if outbounds:
        text += "  outbound:\n" + "".join(
            f"    - port: {port}\n      tags:\n        kuma.io/service: {svc}\n" for svc, port in outbounds.items()
        )
    return text


def served_listener(outbound_listener: str) -> str:
    """The Envoy listener that serves the outbound listener of this (Kuma) name: `outbounds`
    when this test run gives every proxy the compact outbound shape (`make test` runs the
    Envoy tests a second time with RECONCILER_COMPACT_OUTBOUNDS=1)."""
    return "outbounds" if os.environ.get("RECONCILER_COMPACT_OUTBOUNDS") else outbound_listener


def assert_consistent(resources: ProxyResources, what: str = "proxy") -> ProxyResources:
    """`resources`, after checking that every EDS, RDS, SDS and cluster name they refer to is
    served (reconciler/xds/consistency.py)."""
    from reconciler.xds.consistency import problems

    found = problems(resources)
    assert not found, f"{what}: inconsistent Envoy config:\n" + "\n".join(found)
    return resources


def generate_checked(view: ProxyView) -> ProxyResources:
    """`generate(view)`, asserting the result is consistent: use it wherever a test generates."""
    from reconciler.xds.generate import generate

    return assert_consistent(generate(view), view.node_id)


RENDER_MODULES = ("reconciler.render", "reconciler.reconcile")
"""Where the engine's render path calls `generate`: reconcile.py, or render.py once issue 17's
one render path lands (the first of these that has it)."""


def engine_generation_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For a fixture: every proxy config the engine generates while the test runs is checked
    for consistency, and the test fails at teardown if one was not (the engine itself turns
    exceptions into rejected commits, so the check records instead of raising)."""
    import importlib
    import importlib.util

    from reconciler.xds.consistency import problems

    module = next(
        importlib.import_module(m)
        for m in RENDER_MODULES
        if importlib.util.find_spec(m) and hasattr(importlib.import_module(m), "generate")
    )
    real = module.generate
    found: list[str] = []

    def generate(view: ProxyView) -> ProxyResources:
        resources: ProxyResources = real(view)
        found.extend(f"{view.node_id}: {p}" for p in problems(resources))
        return resources

    monkeypatch.setattr(module, "generate", generate)
    yield
    assert not found, "inconsistent Envoy config generated:\n" + "\n".join(found)


def mesh_timeout(name: str, default: str, mesh: str = "default") -> str:
    """A MeshTimeout from the whole mesh to the whole mesh; `default` is its conf's YAML, e.g.
    "connectionTimeout: 3s" or "http:\n  requestTimeout: 5s"."""
    conf = "".join(f"        {line}\n" for line in default.splitlines())
    return (
        f"type: MeshTimeout\nmesh: {mesh}\nname: {name}\nspec:\n  targetRef:\n    kind: Mesh\n  to:\n"
        f"    - targetRef:\n        kind: Mesh\n      default:\n{conf}"
    )


def mesh(name: str = "default", mtls: bool = False, backend: str = "ca-1") -> str:
    text = f"type: Mesh\nname: {name}\n"
    if mtls:
        text += f"mtls:\n  enabledBackend: {backend}\n  backends:\n    - name: {backend}\n      type: builtin\n"
    return text


ALLOW_ALL = """\
type: MeshTrafficPermission
mesh: default
name: allow-all
spec:
  targetRef:
    kind: Mesh
  from:
    - targetRef:
        kind: Mesh
      default:
        action: Allow
"""


HTTPBIN_EXTERNAL = """\
type: MeshExternalService
mesh: default
name: httpbin
spec:
  match: {type: HostnameGenerator, port: 443, protocol: tcp}
  endpoints: [{address: httpbin.org, port: 443}]
"""
"""A MeshExternalService on port 443 (its hostname comes from a HostnameGenerator)."""


def mesh_passthrough(name: str, mode: str, *matches: tuple[str, str, int, str]) -> str:
    """A MeshPassthrough on the whole mesh with `passthroughMode: mode` and an `appendMatch`
    entry per (type, value, port, protocol)."""
    text = f"type: MeshPassthrough\nmesh: default\nname: {name}\nspec:\n  targetRef:\n    kind: Mesh\n  default:\n"
    text += f"    passthroughMode: {mode}\n"
    if matches:
        text += "    appendMatch:\n" + "".join(
            f"      - type: {kind}\n        value: {value}\n        port: {port}\n        protocol: {protocol}\n"
            for kind, value, port, protocol in matches
        )
    return text


def self_signed_ec_ca(common_name: str) -> tuple[bytes, bytes]:
    """A CA a user would provide: ECDSA P-256, valid 2020-2040; (certificate PEM, PKCS#8 key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2040, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), pem
