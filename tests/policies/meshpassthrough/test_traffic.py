"""MeshPassthrough with real traffic: a transparently proxied application reaches only what the
policy lists when the Mesh's passthrough is off.

The test makes two network namespaces on a private subnet (tests/netns/harness.py): `client`
runs a real Envoy (as user nobody) and iptables redirecting the client's TCP to the subnet to
Envoy's port 15001, as `reconciler transparent-proxy install` does; `server` runs plain HTTP
servers outside any mesh. Envoy's config is the transparent proxy's passthrough listener as
configure_passthrough rewrites it, plus the clusters it returns. The harness removes the
namespaces (and with them every link and rule) on every exit path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.dataplane.envoy_binary import EnvoyNotFound, find_envoy
from reconciler.policies.meshpassthrough.envoy import IPV4, NO_MATCH_MESSAGE, configure_passthrough, passthrough_cluster
from reconciler.policies.meshproxypatch.envoyjson import to_json
from tests.e2e.harness import wait_until
from tests.netns.harness import Network, skip_reason
from tests.policies.meshpassthrough.cases import catch_all_listener
from tests.support import self_signed_ec_ca

SUBNET = "10.231.7"
CLIENT_IP, SERVER_IP = f"{SUBNET}.1", f"{SUBNET}.2"
SERVER_PORTS = (8080, 8081, 8082)
TLS_PORT = 8443
NOBODY = 65534
REDIRECT_PORT = 15001
ADMIN_PORT = 9901  # inside the client namespace: nothing else listens there

_SERVER = """
import http.server, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"server {self.server.server_port} host {self.headers.get('Host')}".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
servers = [http.server.ThreadingHTTPServer((sys.argv[1], int(p)), H) for p in sys.argv[2:]]
for s in servers[1:]: threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"""

_TLS_SERVER = """
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
listener = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
def serve(conn):
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(16)
            tls.sendall(b"tls server")
    except Exception:
        pass
while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

_TLS_CLIENT = """
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname=sys.argv[3]) as tls:
            tls.sendall(b"hello")
            print("ok", tls.recv(100).decode(), sep="\\n", end="")
except Exception as e:
    print("refused", type(e).__name__, sep="\\n", end="")
"""

_CLIENT = """
import http.client, sys
host, port, header = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    c = http.client.HTTPConnection(host, port, timeout=3)
    c.request("GET", "/", headers={"Host": header})
    r = c.getresponse()
    print(r.status, r.read().decode(errors="replace"), sep="\\n", end="")
except Exception as e:
    print("refused", type(e).__name__, sep="\\n", end="")
"""


def _missing() -> str | None:
    reason = skip_reason()
    if reason is not None:
        return reason
    if shutil.which("setpriv") is None:
        return "needs `setpriv` (Debian: util-linux)"
    try:
        find_envoy()
    except EnvoyNotFound as e:
        return f"no Envoy binary: {e}"
    return None


pytestmark = [pytest.mark.envoy, pytest.mark.skipif(_missing() is not None, reason=_missing() or "")]


@contextmanager
def _namespaces() -> Iterator[tuple[str, str]]:
    with Network(subnet=f"{SUBNET}.0/24") as net:
        client, server = net.add("client"), net.add("server")
        assert (client.address, server.address) == (CLIENT_IP, SERVER_IP)
        # The application's TCP to the subnet goes to Envoy; Envoy's own (user nobody) does not.
        client.run(
            ["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", f"{SUBNET}.0/24",
             "-m", "owner", "!", "--uid-owner", str(NOBODY), "-j", "REDIRECT", "--to-ports", str(REDIRECT_PORT)]
        )  # fmt: skip
        yield client.name, server.name


@contextmanager
def _process(args: list[str], ready: str | None = None) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if ready is not None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert ready in line, f"{args[0]} did not start: {line}"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    cert, key = self_signed_ec_ca("external.test")
    folder = tmp_path_factory.mktemp("tls-server")
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    with _namespaces() as (client, server):
        server_args = ["ip", "netns", "exec", server, sys.executable, "-c", _SERVER, SERVER_IP, *map(str, SERVER_PORTS)]
        tls_args = ["ip", "netns", "exec", server, sys.executable, "-c", _TLS_SERVER, SERVER_IP, str(TLS_PORT)]
        with _process(server_args, ready="ready"), _process([*tls_args, str(folder / "cert.pem"), str(folder / "key.pem")], ready="ready"):
            yield client, server


def _get(client: str, port: int, host: str = "") -> tuple[str, str]:
    args = ["ip", "netns", "exec", client, sys.executable, "-c", _CLIENT, SERVER_IP, str(port), host or f"{SERVER_IP}:{port}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
    status, _, body = done.stdout.partition("\n")
    return status, body


def _tls(client: str, server_name: str) -> str:
    args = ["ip", "netns", "exec", client, sys.executable, "-c", _TLS_CLIENT, SERVER_IP, str(TLS_PORT), server_name]
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout.split("\n")[0]


@contextmanager
def _sidecar(client: str, conf: dict[str, Any] | None, mesh_passthrough: bool) -> Iterator[None]:
    """Envoy in the client namespace with the passthrough listener after MeshPassthrough."""
    given = [passthrough_cluster(IPV4)] if mesh_passthrough else []
    done = configure_passthrough(conf, mesh_passthrough, catch_all_listener(IPV4, "0.0.0.0", REDIRECT_PORT, original_dst=True), None, given)
    bootstrap = {
        "node": {"id": "passthrough-traffic", "cluster": "passthrough-traffic"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": ADMIN_PORT}}},
        "static_resources": {"listeners": [to_json(done.ipv4)], "clusters": [to_json(c) for c in done.clusters]},
    }
    folder = Path(tempfile.mkdtemp(prefix="mpt-envoy-"))
    try:
        folder.chmod(0o755)  # Envoy runs as nobody
        config = folder / "envoy.json"
        config.write_text(json.dumps(bootstrap), encoding="utf-8")
        config.chmod(0o644)
        args = [
            "ip", "netns", "exec", client, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            find_envoy(), "-c", str(config), "--disable-hot-restart", "--log-level", "warn", "--concurrency", "1",
        ]  # fmt: skip
        with _process(args) as envoy:

            def ready() -> bool:
                assert envoy.poll() is None, "envoy exited"
                admin = ["ip", "netns", "exec", client, sys.executable, "-c", _CLIENT, "127.0.0.1", str(ADMIN_PORT), "127.0.0.1"]
                out = subprocess.run(admin, capture_output=True, text=True, timeout=10, check=False).stdout
                return out.startswith("200")

            wait_until(ready, timeout=20, interval=0.2, what="Envoy in the client namespace to be ready")
            yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_without_a_policy_the_mesh_passthrough_lets_everything_out(network: tuple[str, str]) -> None:
    client, _ = network
    with _sidecar(client, None, mesh_passthrough=True):
        assert _get(client, 8082) == ("200", f"server 8082 host {SERVER_IP}:8082")
        assert _tls(client, "api.other.test") == "ok"


def test_passthrough_off_only_listed_destinations_leave(network: tuple[str, str]) -> None:
    client, _ = network
    conf = {
        "passthroughMode": "Matched",
        "appendMatch": [
            {"type": "IP", "value": SERVER_IP, "port": 8080, "protocol": "tcp"},
            {"type": "Domain", "value": "allowed.test", "port": 8081, "protocol": "http"},
            {"type": "Domain", "value": "*.allowed.test", "port": TLS_PORT, "protocol": "tls"},
        ],
    }
    with _sidecar(client, conf, mesh_passthrough=False):
        assert _get(client, 8080) == ("200", f"server 8080 host {SERVER_IP}:8080")
        assert _get(client, 8081, "allowed.test") == ("200", "server 8081 host allowed.test")
        assert _get(client, 8081, "allowed.test:8081") == ("200", "server 8081 host allowed.test:8081")
        # A listed port but an unlisted host: the sidecar answers itself, Kuma's 503.
        assert _get(client, 8081, "other.test") == ("503", NO_MATCH_MESSAGE)
        # Nothing lists port 8082: Envoy has no chain for it and closes the connection.
        started = time.monotonic()
        assert _get(client, 8082)[0] == "refused"
        assert time.monotonic() - started < 10
        # TLS by SNI: a name the wildcard covers leaves, another name on the same port does not.
        assert _tls(client, "api.allowed.test") == "ok"
        assert _tls(client, "api.other.test") == "refused"


def test_passthrough_mode_all_reopens_a_closed_mesh(network: tuple[str, str]) -> None:
    client, _ = network
    with _sidecar(client, {"passthroughMode": "All"}, mesh_passthrough=False):
        assert _get(client, 8082) == ("200", f"server 8082 host {SERVER_IP}:8082")
    with _sidecar(client, {"passthroughMode": "None"}, mesh_passthrough=True):
        assert _get(client, 8082)[0] == "refused"
