"""The policy registry: one ordered list of kinds, every policy package in it, the validation
side loading nothing of Envoy, and plugins applied in Kuma's order."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import reconciler.policies
from reconciler.kinds import Kind, get_kind
from reconciler.policies.plugins import plugins
from reconciler.policies.registry import PLUGIN_ORDER, policy_kinds

POLICIES_DIR = Path(reconciler.policies.__file__).parent
PACKAGES = sorted(p.name for p in POLICIES_DIR.iterdir() if (p / "__init__.py").exists() and p.name != "core")


def test_every_policy_package_is_registered_once_in_kumas_order() -> None:
    assert sorted(kind.lower() for kind in PLUGIN_ORDER) == PACKAGES
    assert len(set(PLUGIN_ORDER)) == len(PLUGIN_ORDER)
    assert [kind.name for kind in policy_kinds()] == list(PLUGIN_ORDER)
    # Fault injection before rate limit, both before the routes: the order of HTTP filters.
    assert PLUGIN_ORDER.index("MeshFaultInjection") < PLUGIN_ORDER.index("MeshRateLimit") < PLUGIN_ORDER.index("MeshHTTPRoute")


def test_each_package_exports_its_kind_from_validation_and_its_plugin_from_envoy() -> None:
    for package in PACKAGES:
        kind: Kind = importlib.import_module(f"reconciler.policies.{package}.validation").KIND
        assert kind.name.lower() == package
        assert kind.policy
        assert get_kind(kind.name) is kind, "the kinds registry serves the policy's own KIND"
        if (POLICIES_DIR / package / "envoy.py").exists():
            envoy = importlib.import_module(f"reconciler.policies.{package}.envoy")
            assert envoy.PLUGIN.kind == kind.name
            assert envoy.PLUGIN in plugins()
        for module_name in ("validation", "envoy", "defaults"):
            if (POLICIES_DIR / package / f"{module_name}.py").exists():
                module = importlib.import_module(f"reconciler.policies.{package}.{module_name}")
                assert "__getattr__" not in vars(module), f"{package}.{module_name}: one way to declare a plugin, a constant"


def test_plugins_follow_the_registry_order() -> None:
    kinds = [plugin.kind for plugin in plugins()]
    assert kinds == [kind for kind in PLUGIN_ORDER if kind in kinds]
    with_envoy = {p for p in PACKAGES if (POLICIES_DIR / p / "envoy.py").exists()}
    assert {kind.lower() for kind in kinds} == with_envoy


def test_policy_validation_loads_neither_envoy_protos_nor_the_mesh_model() -> None:
    # A fresh interpreter: what the validation side of every policy pulls in.
    code = (
        "import sys\n"
        "from reconciler.policies.registry import policy_kinds\n"
        "assert all(kind.validate is not None for kind in policy_kinds())\n"
        "loaded = sorted(m for m in sys.modules if m == 'envoy' or m.startswith(('envoy.', 'reconciler.mesh', 'reconciler.xds',"
        " 'reconciler.policies.plugins')) or m.endswith('.envoy'))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
