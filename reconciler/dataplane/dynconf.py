"""Read the configuration the control plane hands the dataplane's services through Envoy.

Kuma's control plane has no channel to kuma-dp besides Envoy: it adds a listener
`_kuma:dynamicconfig` on the Unix socket `kuma-mesh-metric-config.sock` in the work directory
(reconciler/policies/meshmetric/dynconf.py) whose routes answer with JSON documents and an
`Etag`; kuma-dp polls them with `If-None-Match` and gets 304 while nothing changed
(app/kuma-dp/pkg/dataplane/configfetcher). This is that fetch, with the standard library's
http.client over a connected Unix socket (Kuma's client also times out after 5 s).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconciler.policies.meshmetric.dynconf import SOCKET

__all__ = ["SOCKET", "fetch_dynamic_config", "unix_path"]

_SUN_PATH_MAX = 100
"""sockaddr_un holds 108 bytes with the NUL; keep a margin."""


@contextmanager
def unix_path(path: Path) -> Iterator[str]:
    """A name to bind or connect a Unix socket at `path` by, even when `path` is longer than
    sockaddr_un allows (deep test and work directories): through an open descriptor of its
    directory, `/proc/self/fd/<n>/<name>` (Linux). Use it only inside the `with`."""
    text = str(path)
    if len(text.encode()) <= _SUN_PATH_MAX:
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            with unix_path(self._path) as name:
                sock.connect(name)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def fetch_dynamic_config(
    work_dir: Path, path: str = "/meshmetric", etag: str | None = None, timeout: float = 2.0
) -> tuple[dict[str, Any] | None, str | None]:
    """GET `path` from the dynamic-config listener of the Envoy running in `work_dir`.

    Returns
    - `(document, its etag)` when the listener serves a document (200);
    - `(None, etag)`, the `etag` given, when it is unchanged (304 to our If-None-Match);
    - `(None, None)` when there is nothing: no listener (no socket, nobody accepting: the
      proxy has no MeshMetric with a backend), no such route (404), or a body that is not a
      JSON object.
    So a caller keeps its current config exactly when the returned etag equals the one it
    sent and is not None.
    """
    connection = _UnixConnection(work_dir / SOCKET, timeout)
    try:
        headers = {"If-None-Match": etag} if etag else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status == 304:
            return None, etag
        if response.status != 200:
            return None, None
        try:
            document = json.loads(body)
        except ValueError:
            return None, None
        return (document, response.getheader("Etag")) if isinstance(document, dict) else (None, None)
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        connection.close()
