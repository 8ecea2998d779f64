"""A real Kubernetes control plane on 127.0.0.1 for labenv demos and tests, built from Go modules.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK fake kubelets run as local
processes; nothing uses Docker and nothing is downloaded except Go modules.
"""

from labenv.localcluster.cluster import ClusterStatus, LocalCluster
from labenv.localcluster.toolchain import Toolchain, ensure_toolchain, toolchain_paths

__all__ = ["ClusterStatus", "LocalCluster", "Toolchain", "ensure_toolchain", "toolchain_paths"]
