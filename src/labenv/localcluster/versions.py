"""Pinned versions of everything the local control plane is built from: change them here only.

Pairings (sources in /work/shared/reference/control-plane.md):
- kwok v0.8.0 supports Kubernetes up to 1.36 (`supported_releases.txt`) and pairs 1.34-1.36 with etcd
  v3.6.10 (`pkg/kwokctl/components/etcd_version.go`).
- k8s.io/kubernetes v1.36.3 publishes its staging modules as v0.36.3; v1.36.5+ are not on the proxy here.
- k/k 1.36 and kwok v0.8.0 declare `go 1.26.0`, so older Go toolchains cannot build them.
- Helm v4.3.1 (`go list -m -versions helm.sh/helm/v4`: newest on the proxy) declares `go 1.26.0` and has no
  replace directives, so a plain wrapper module builds it. It is a client only: it renders and installs
  `charts/labenv` and talks to any API server (its client-go v0.37 supports 1.36 within version skew).
"""

from __future__ import annotations

KUBERNETES = "v1.36.3"
ETCD = "v3.6.10"
KWOK = "v0.8.0"
HELM = "v4.3.1"
GO_MINIMUM = (1, 26)
