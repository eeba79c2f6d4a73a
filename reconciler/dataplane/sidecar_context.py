"""What a service run beside Envoy knows of its proxy (services.py starts them with it). A module
of its own so the services themselves can name it without importing services.py, which lists them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SidecarContext"]


@dataclass(frozen=True, slots=True)
class SidecarContext:
    work_dir: Path
    """Absolute; Envoy's working directory, where the config's relative socket paths resolve."""
    admin_address: str
    """Envoy's admin `host:port` (its stats for the metrics services)."""
    mesh: str
    name: str
