"""The CPU quota of the cgroup this process runs in (a container's CPU limit), read from files.

Envoy sizes its worker pool by the host's CPUs, not by the container's quota, so a sidecar
limited to one CPU on a 64-core node would start 64 workers, each holding a socket per
listener. Both cgroup versions are read: v2's `cpu.max` ("max 100000" or "150000 100000")
and v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us` (quota -1: none). The process's cgroup
comes from /proc/self/cgroup and is found under the mount that /proc/self/mountinfo names
for it. A parent cgroup can be stricter than the process's own, so the whole chain up to the
mount is read and the smallest quota wins.

`root` lets tests point the reader at a fake tree (root/proc/self/..., root/sys/fs/cgroup/...).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["cpu_quota", "parse_cpu_max", "parse_cfs"]


@dataclass(frozen=True)
class _Mount:
    root: str  # the cgroup path the mount shows at its mount point
    point: str
    version: int
    controllers: frozenset[str]


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max`; None when unlimited or unreadable."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """CPUs allowed by cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us`; None when unlimited."""
    try:
        quota, period = int(quota_text.strip()), int(period_text.strip())
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cpu_quota(root: Path = Path("/")) -> float | None:
    """CPUs this process may use by its cgroups' quotas (e.g. 1.5), or None without a quota."""
    try:
        memberships = (root / "proc/self/cgroup").read_text()
        mounts = _mounts((root / "proc/self/mountinfo").read_text())
    except OSError:
        return None  # not Linux, or /proc hidden: no quota we can see
    quotas = [q for directory, top, version in _cgroup_dirs(memberships, mounts, root) for q in _chain_quotas(directory, top, version)]
    return min(quotas) if quotas else None


def _mounts(mountinfo: str) -> list[_Mount]:
    out = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if len(fields) < sep + 4 or sep < 5:
            continue
        fstype, super_options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            out.append(_Mount(_unescape(fields[3]), _unescape(fields[4]), 2, frozenset()))
        elif fstype == "cgroup":
            out.append(_Mount(_unescape(fields[3]), _unescape(fields[4]), 1, frozenset(super_options.split(","))))
    return out


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _cgroup_dirs(memberships: str, mounts: list[_Mount], root: Path) -> Iterator[tuple[Path, Path, int]]:
    """(directory of the process's cgroup, its mount point, version) for the unified hierarchy
    and for v1's cpu controller."""
    for line in memberships.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        if hierarchy == "0" and controllers == "":
            candidates = [m for m in mounts if m.version == 2]
            version = 2
        elif "cpu" in controllers.split(","):
            candidates = [m for m in mounts if m.version == 1 and "cpu" in m.controllers]
            version = 1
        else:
            continue
        for mount in candidates:
            relative = _relative(path, mount.root)
            if relative is not None:
                top = root / mount.point.lstrip("/")
                yield top / relative, top, version
                break


def _relative(path: str, mount_root: str) -> str | None:
    """`path` below the mount's root; None when the mount does not show this cgroup."""
    p, r = PurePosixPath(path), PurePosixPath(mount_root)
    if p == r:
        return ""
    try:
        return str(p.relative_to(r))
    except ValueError:
        # With a cgroup namespace the process sees its own cgroup as "/" while the mount
        # may show the host's path; the mount point is then the process's cgroup.
        return "" if path == "/" else None


def _chain_quotas(directory: Path, top: Path, version: int) -> Iterator[float]:
    """Quotas of `directory` and of each parent up to the mount point `top`."""
    current = directory
    while True:
        quota = _read_quota(current, version)
        if quota is not None:
            yield quota
        if current == top or current.parent == current:
            return
        current = current.parent


def _read_quota(directory: Path, version: int) -> float | None:
    try:
        if version == 2:
            return parse_cpu_max((directory / "cpu.max").read_text())
        return parse_cfs((directory / "cpu.cfs_quota_us").read_text(), (directory / "cpu.cfs_period_us").read_text())
    except OSError:
        return None
