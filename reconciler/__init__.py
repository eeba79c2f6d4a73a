"""mesh-reconciler: a GitOps control plane for a Kuma-compatible service mesh."""

__version__ = "0.1.0"
