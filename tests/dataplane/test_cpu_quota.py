"""The CPU quota reader against fake cgroup trees: the files a container sees, in a temp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.dataplane.cpu_quota import cpu_quota, parse_cfs, parse_cpu_max

V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_CPU_MOUNT = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
OTHER_MOUNTS = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "35 31 0:31 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory\n"
)


def tree(root: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    (root / "proc/self/mountinfo").write_text(OTHER_MOUNTS + mountinfo)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("150000 100000\n", 1.5),
        ("200000 100000", 2.0),
        ("50000 100000", 0.5),
        ("max 100000\n", None),
        ("", None),
        ("garbage", None),
        ("0 100000", None),
    ],
)
def test_cpu_max(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [("-1\n", "100000\n", None), ("250000", "100000", 2.5), ("100000", "100000", 1.0), ("x", "100000", None), ("100000", "0", None)],
)
def test_cfs_quota(quota: str, period: str, cpus: float | None) -> None:
    assert parse_cfs(quota, period) == cpus


def test_cgroup_v2_quota_of_the_process_own_cgroup(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "0::/kubepods/pod-1/ctr\n",
        V2_MOUNT,
        {
            "sys/fs/cgroup/kubepods/pod-1/ctr/cpu.max": "150000 100000\n",
            "sys/fs/cgroup/kubepods/pod-1/cpu.max": "max 100000\n",
        },
    )
    assert cpu_quota(root) == 1.5


def test_cgroup_v2_in_a_cgroup_namespace_reads_the_mount_point(tmp_path: Path) -> None:
    # Inside a container with its own cgroup namespace the process's cgroup is "/".
    root = tree(tmp_path, "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "300000 100000\n"})
    assert cpu_quota(root) == 3.0


def test_a_stricter_parent_cgroup_wins(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "0::/pod/ctr\n",
        V2_MOUNT,
        {
            "sys/fs/cgroup/pod/ctr/cpu.max": "max 100000\n",
            "sys/fs/cgroup/pod/cpu.max": "50000 100000\n",
            "sys/fs/cgroup/cpu.max": "400000 100000\n",
        },
    )
    assert cpu_quota(root) == 0.5


def test_cgroup_v1_cpu_controller(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
        V1_CPU_MOUNT,
        {
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpu_quota(root) == 2.0


def test_cgroup_v1_mount_showing_only_the_container_cgroup(tmp_path: Path) -> None:
    # Docker without a cgroup namespace: the mount's root is the container's cgroup itself.
    mount = "32 31 0:29 /docker/abc /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    root = tree(
        tmp_path,
        "4:cpu:/docker/abc\n",
        mount,
        {
            "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "100000\n",
            "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpu_quota(root) == 1.0


def test_hybrid_hierarchy_takes_the_quota_from_v1_when_v2_has_no_cpu_controller(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "4:cpu,cpuacct:/\n0::/\n",
        V2_MOUNT.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified ") + V1_CPU_MOUNT,
        {
            "sys/fs/cgroup/unified/cgroup.controllers": "",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "150000\n",
            "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpu_quota(root) == 1.5


@pytest.mark.parametrize(
    ("cgroup", "mountinfo", "files"),
    [
        ("0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "max 100000\n"}),
        (
            "4:cpu,cpuacct:/\n",
            V1_CPU_MOUNT,
            {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
        ),
        ("0::/\n", V2_MOUNT, {}),  # the cpu controller is not enabled: no cpu.max file
        (
            "0::/elsewhere\n",
            V2_MOUNT.replace(" / /sys", " /mine /sys"),
            {"sys/fs/cgroup/cpu.max": "100000 100000\n"},
        ),  # mount shows another cgroup
    ],
    ids=["v2-max", "v1-minus-one", "v2-no-cpu-controller", "cgroup-not-mounted"],
)
def test_no_quota(tmp_path: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> None:
    assert cpu_quota(tree(tmp_path, cgroup, mountinfo, files)) is None


def test_no_proc_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path) is None
