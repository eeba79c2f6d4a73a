"""Real parts for end-to-end tests: the control plane, Envoy sidecars, HTTP workloads and a git
remote, all as processes and sockets on 127.0.0.1 with free ports. Every wait is bounded and
every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import atexit
import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import git

__all__ = [
    "free_port",
    "wait_until",
    "http_get",
    "Workload",
    "ControlPlaneProcess",
    "EnvoyProcess",
    "ConfigRemote",
    "REPO_ROOT",
    "route_configs",
    "outbound_listeners",
    "wait_settled",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


_PORTS_FROM = 30000
"""Ports the tests hand out start here, under the kernel's ephemeral range: above the
example's 15000-19999, the demo test's blocks (6000-14999) and the blocks the demo suggests
(20000-29999)."""
_next_port: list[int] = []


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_slice() -> range:
    """This pytest-xdist worker's own ports, below the kernel's ephemeral range.

    A port from bind(port 0) is an ephemeral one, which the kernel may give to any outgoing
    connection (an Envoy's, git's, gRPC's) between the moment it is chosen and the moment the
    process it was chosen for binds it; and two workers could be given the same one.
    """
    end = _ephemeral_start()
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    worker = int((os.environ.get("PYTEST_XDIST_WORKER", "gw0") or "gw0").removeprefix("gw") or 0)
    size = (end - _PORTS_FROM) // workers
    if size < 100:
        return range(0)
    start = _PORTS_FROM + (worker % workers) * size
    return range(start, start + size)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, from this worker's slice: in turn, so that
    a port comes back only after the whole slice has been handed out."""
    ports = _port_slice()
    if ports:
        if not _next_port:
            _next_port.append(random.randrange(len(ports)))
        for _ in range(len(ports)):
            port = ports[_next_port[0] % len(ports)]
            _next_port[0] += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:  # the thing we wait for may not be up yet
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_error})" if last_error else ""))


def http_get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


class Workload:
    """An HTTP service on 127.0.0.1 that answers with its name and counts requests."""

    def __init__(
        self, name: str, port: int | None = None, behaviour: Callable[[http.server.BaseHTTPRequestHandler], bool] | None = None
    ) -> None:
        self.name = name
        self.port = port or free_port()
        self.requests: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        workload = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # header and body are separate writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                workload.requests[self.path] += 1
                workload.headers.append(dict(self.headers))
                if behaviour is not None and behaviour(self):
                    return
                body = f"{workload.name}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Workload:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def total(self) -> int:
        return sum(self.requests.values())


class _Process:
    def __init__(self, args: list[str], log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")  # noqa: SIM115 (the child process writes to it)
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


_IDENTITY_FILES = ("xds-tls/ca.pem", "dataplane-tokens/1.pem")
_identity: Path | None = None


def _seed_identity(state_dir: Path) -> None:
    """Give a state directory without one the session's control-plane identity (copied, mode 0600)."""
    global _identity
    if _identity is None:
        from reconciler.ca.signing_keys import SigningKeys
        from reconciler.ca.xds_tls import load_or_create

        _identity = Path(tempfile.mkdtemp(prefix="reconciler-identity-"))
        atexit.register(shutil.rmtree, _identity, True)
        SigningKeys.open(_identity)
        load_or_create(_identity, ("localhost",))
    if any((state_dir / rel).exists() for rel in _IDENTITY_FILES):
        return
    for rel in _IDENTITY_FILES:
        target = state_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o755 if rel.startswith("xds-tls") else 0o700)
        shutil.copyfile(_identity / rel, target)
        target.chmod(0o600)


class ControlPlaneProcess(_Process):
    """`reconciler serve` on free ports; the same ports across restarts.

    As in production, xDS is served over TLS and proxies need a dataplane token; EnvoyProcess
    issues the token and passes the CA certificate by itself. `dataplane_auth=False` and
    `xds_tls=False` (or `--dataplane-auth none` / `--xds-tls none` in `extra`) turn them off.

    Like replicas given one control-plane identity (the xDS CA and the token signing key, see
    docs/security.md), every control plane of a test session starts from the same identity
    unless `shared_identity=False`: one started on a fresh state directory still admits the
    Envoys of another, and they still trust it.
    """

    def __init__(
        self,
        repo: Path | str,
        state_dir: Path,
        *,
        extra: Iterable[str] = (),
        xds_port: int | None = None,
        api_port: int | None = None,
        dataplane_auth: bool = True,
        xds_tls: bool = True,
        shared_identity: bool = True,
    ) -> None:
        self.xds_port = xds_port or free_port()
        self.api_port = api_port or free_port()
        self.state_dir = state_dir
        extra = list(extra)
        given = dict(zip(extra, extra[1:], strict=False))
        self.dataplane_auth = dataplane_auth and given.get("--dataplane-auth", "dpToken") != "none"
        self.xds_tls = xds_tls and given.get("--xds-tls", "builtin") != "none"
        self.keys_dir = given.get("--keys-dir")
        """`serve --keys-dir`: tokens are issued from the shared keys directory, as every replica accepts them."""
        if not dataplane_auth and "--dataplane-auth" not in given:
            extra += ["--dataplane-auth", "none"]
        if not xds_tls and "--xds-tls" not in given:
            extra += ["--xds-tls", "none"]
        args = [
            PYTHON,
            "-m",
            "reconciler",
            "-v",
            "serve",
            "--repo",
            str(repo),
            "--state-dir",
            str(state_dir),
            "--address",
            "127.0.0.1",
            "--xds-port",
            str(self.xds_port),
            "--api-port",
            str(self.api_port),
            "--poll-interval",
            "0.5",
            *extra,
        ]
        state_dir.mkdir(parents=True, exist_ok=True)
        if shared_identity:
            _seed_identity(state_dir)
        super().__init__(args, state_dir / "control-plane.log")

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def xds(self) -> str:
        return f"127.0.0.1:{self.xds_port}"

    @property
    def ca_cert(self) -> Path | None:
        """The CA certificate that verifies the xDS server (written when serve starts); None without TLS."""
        return self.state_dir / "xds-tls" / "ca.crt" if self.xds_tls else None

    def issue_token(self, name: str | None = None, mesh: str = "default", *, tags: Iterable[str] = (), valid_for: str = "24h") -> str:
        """A dataplane token from `reconciler token issue --state-dir <this control plane's state>` (or `--keys-dir`)."""
        keys = ["--keys-dir", self.keys_dir] if self.keys_dir else ["--state-dir", str(self.state_dir)]
        args = [PYTHON, "-m", "reconciler", "token", "issue", *keys, "--mesh", mesh, "--valid-for", valid_for]
        if name:
            args += ["--name", name]
        for t in tags:
            args += ["--tags", t]
        result = subprocess.run(args, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise AssertionError(f"reconciler token issue failed: {result.stderr}")
        return result.stdout.strip()

    def start(self, wait: bool = True) -> None:
        super().start()
        if wait:
            wait_until(lambda: self.status() is not None, 30, what=f"control plane API on {self.api}\n{self.output()[-3000:]}")

    def status(self) -> dict[str, Any] | None:
        if not self.alive():
            raise AssertionError(f"control plane exited:\n{self.output()[-3000:]}")
        try:
            with urllib.request.urlopen(self.api + "/status", timeout=2) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except (urllib.error.URLError, OSError):
            return None

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.api + path, timeout=5) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body.decode()

    def wait_applied(self, sha: str, proxies: Iterable[str] = (), timeout: float = 20.0) -> dict[str, Any]:
        """Until `sha` is applied and each named proxy has pushed and ACKed its config."""
        wanted = list(proxies)

        def done() -> dict[str, Any] | None:
            status = self.status()
            if not status or status["lastAppliedRevision"].rpartition(":")[2] != sha:
                return None
            if all(status["proxies"].get(p, {}).get("synced") for p in wanted):
                return status
            return None

        try:
            return wait_until(done, timeout, what=f"revision {sha[:12]} applied and ACKed by {wanted}")  # type: ignore[no-any-return]
        except AssertionError as e:
            status = self.status() or {}
            proxies = {p: status.get("proxies", {}).get(p, "not connected") for p in wanted}
            raise AssertionError(
                f"{e}\nlast applied: {status.get('lastAppliedRevision')}\nproxies: {json.dumps(proxies, indent=1)[:4000]}"
            ) from None

    def wait_attempted(self, sha: str, timeout: float = 20.0) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            status = self.status()
            return status if status and status["lastAttemptedRevision"].rpartition(":")[2] == sha else None

        return wait_until(done, timeout, what=f"revision {sha[:12]} attempted")  # type: ignore[no-any-return]


# Set RLIMIT_NOFILE (soft and hard) and become `python -m ...`: as `ulimit -n N` would.
_UNDER_NOFILE = (
    "import os, resource, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


class EnvoyProcess(_Process):
    """A sidecar run by `reconciler run-dataplane`.

    When the control plane wants tokens, the sidecar presents `token`, or by default one
    issued for `mesh`.`name` (`issue_token=False`: none); over TLS it verifies the server with
    `ca_cert`, by default the control plane's CA certificate.
    """

    def __init__(
        self,
        cp: ControlPlaneProcess,
        work: Path,
        *,
        name: str,
        mesh: str = "default",
        admin_port: int | None = None,
        dataplane_file: Path | None = None,
        mode: str = "sotw",
        extra: Iterable[str] = (),
        token: str | None = None,
        issue_token: bool = True,
        ca_cert: Path | str | None = None,
        nofile: int | None = None,
    ) -> None:
        self.name = name
        self.admin_port = admin_port or free_port()
        work.mkdir(parents=True, exist_ok=True)
        # `nofile`: run-dataplane (and so Envoy) starts under this open-files limit, soft and hard.
        launcher = [PYTHON, "-c", _UNDER_NOFILE, str(nofile)] if nofile is not None else [PYTHON]
        args = [
            *launcher,
            "-m",
            "reconciler",
            "run-dataplane",
            "--cp-address",
            cp.xds,
            "--admin-port",
            str(self.admin_port),
            "--xds-mode",
            mode,
            "--work-dir",
            str(work / name),
            "--log-level",
            "info",
        ]
        # The API tells run-dataplane the listeners it sizes Envoy's workers by (never port 5681 here).
        args += ["--api-address", cp.api]
        # Old filter chains drain for 1 s instead of Kuma's 30 s, so tests settle quickly.
        args += ["--drain-time", "1s"]
        if dataplane_file is not None:
            args += ["--dataplane-file", str(dataplane_file)]
        else:
            args += ["--mesh", mesh, "--name", name]
        if token is None and issue_token and cp.dataplane_auth:
            token = cp.issue_token(name, mesh)
        self.token = token
        if token is not None:
            token_file = work / f"{name}.token"
            token_file.unlink(missing_ok=True)
            token_file.touch(mode=0o600)
            token_file.write_text(token + "\n")
            args += ["--dataplane-token-file", str(token_file)]
        if ca_cert is not None or cp.ca_cert is not None:
            args += ["--ca-cert", str(ca_cert or cp.ca_cert)]
        else:
            args += ["--xds-tls", "none"]
        super().__init__(args + list(extra), work / f"{name}.envoy.log")

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, wait: bool = True) -> None:
        super().start()
        if wait:
            wait_until(self.ready, 30, what=f"envoy {self.name} ready\n{self.output()[-3000:]}")

    def ready(self) -> bool:
        if not self.alive():
            raise AssertionError(f"envoy {self.name} exited:\n{self.output()[-3000:]}")
        try:
            return http_get(self.admin + "/ready", timeout=1)[1].strip() == "LIVE"
        except (urllib.error.URLError, OSError):
            return False

    def config_dump(self) -> dict[str, Any]:
        return json.loads(http_get(self.admin + "/config_dump")[1])  # type: ignore[no-any-return]

    def stats(self, prefix: str = "") -> dict[str, int]:
        text = http_get(self.admin + "/stats?filter=" + prefix)[1]
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(": ")
            if v.strip().isdigit():
                out[k] = int(v)
        return out

    def listeners_settled(self) -> bool:
        """No listener warming and no old filter chain still draining its connections: until
        then a pooled connection may still be served by the previous configuration."""
        stats = self.stats("listener_manager.total_")
        gauges = ("total_listeners_warming", "total_listeners_draining", "total_filter_chains_draining")
        return all(stats.get(f"listener_manager.{g}") == 0 for g in gauges)


@contextmanager
def serving(
    cp: ControlPlaneProcess, envoy_dir: Path, names: Iterable[str], first: str, *, mesh: str = "default", timeout: float = 30.0
) -> Iterator[dict[str, EnvoyProcess]]:
    """Start the control plane and one Envoy per Dataplane name, and wait until every proxy
    applied revision `first`; stop them all on the way out, whatever happened."""
    envoys: dict[str, EnvoyProcess] = {}
    cp.start()
    try:
        for name in names:
            envoys[name] = EnvoyProcess(cp, envoy_dir, name=name)
            envoys[name].start()
        cp.wait_applied(first, [f"{mesh}.{name}" for name in envoys], timeout=timeout)
        yield envoys
    finally:
        for envoy in envoys.values():
            envoy.stop()
        cp.stop()


def wait_settled(envoys: Iterable[EnvoyProcess], timeout: float = 10.0) -> None:
    """Until no listener of these Envoys is warming or draining: a policy change replaces the
    listener that carries the routes, and a pooled connection on the old filter chain is
    closed when its drain time ends."""
    envoys = list(envoys)
    wait_until(lambda: all(e.listeners_settled() for e in envoys), timeout, what="listeners warmed and old filter chains drained")


def outbound_listeners(config_dump: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each outbound's listener by its Kuma name (`outbound:<address>:<port>`), in either
    outbound shape: in the compact one, the filter chain of that name of the listener
    `outbounds`, as a listener with that one chain."""
    out: dict[str, dict[str, Any]] = {}
    for config in config_dump["configs"]:
        for item in config.get("dynamic_listeners", []):
            listener = (item.get("active_state") or {}).get("listener")
            if not listener:
                continue
            if item["name"] == "outbounds":
                for chain in listener.get("filter_chains", []):
                    out[chain["name"]] = {**listener, "name": chain["name"], "filter_chains": [chain]}
            elif item["name"].startswith("outbound:"):
                out[item["name"]] = listener
    return out


def route_configs(config_dump: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every route configuration Envoy holds, by name: those over RDS and those inline in an
    HTTP connection manager of a listener (sidecar listeners carry theirs inline)."""
    out: dict[str, dict[str, Any]] = {}
    for config in config_dump["configs"]:
        for item in config.get("dynamic_route_configs", []):
            out[item["route_config"]["name"]] = item["route_config"]
        for item in config.get("dynamic_listeners", []):
            listener = (item.get("active_state") or {}).get("listener") or {}
            for chain in listener.get("filter_chains", []):
                for f in chain.get("filters", []):
                    inline = (f.get("typed_config") or {}).get("route_config")
                    if inline:
                        out[inline["name"]] = inline
    return out


class ConfigRemote:
    """A bare repository (what `serve` watches) and a work clone that pushes to it."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.bare = root / "config.git"
        self.work = root / "work"
        self.branch = branch
        git(root, "init", "-q", "--bare", "-b", branch, str(self.bare))
        git(root, "init", "-q", "-b", branch, str(self.work))
        git(self.work, "remote", "add", "origin", str(self.bare))

    def replace_directory(self, directory: str, files: Mapping[str, str] | None) -> dict[str, str | None]:
        """Changes for `push` that leave `directory` holding exactly `files` ({stem: YAML})."""
        out: dict[str, str | None] = {f"{directory}/{path.name}": None for path in (self.work / directory).glob("*.yaml")}
        out.update({f"{directory}/{name}.yaml": text for name, text in (files or {}).items()})
        return out

    def push(self, files: Mapping[str, str | None], message: str = "change") -> str:
        """Write (None deletes) files, commit and `git push`; returns the new commit."""
        for rel, content in files.items():
            target = self.work / rel
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        result = git(self.work, "push", "-q", "origin", f"HEAD:refs/heads/{self.branch}", check=False)
        if result.returncode != 0:
            raise AssertionError(f"git push failed: {result.stderr}")
        return git(self.work, "rev-parse", "HEAD").stdout.strip()

    def head(self) -> str:
        return git(self.work, "rev-parse", "HEAD").stdout.strip()
