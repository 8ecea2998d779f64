"""What the bootstrap installs into a new cluster with pulumi_kubernetes Helm releases.

- a default StorageClass where the cloud has none marked default (EKS: gp3 on the EBS CSI driver),
  because every stateful component uses volumeClaimTemplates;
- the ingress controller: Traefik (ingress-nginx was retired in March 2026), the default IngressClass;
- Istio when a course needs it (a component with `requires_apis: [networking.istio.io/v1]`): base,
  the CNI plugin (sidecars under Pod Security `restricted` need it), istiod with RuntimeDefault
  seccomp for the proxies, and the shared ingress gateway whose pods carry `istio: ingressgateway`
  (the selector the `istio` component's Gateway uses);
- labenv itself from its chart (`charts/labenv`), after all of the above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from labenv.cloud.config import ClusterStackArgs


@dataclass(frozen=True)
class Chart:
    name: str
    repo: str
    version: str


# traefik/traefik-helm-chart: release 39.0.9 (2026-05-04, Traefik Proxy v3.6).
TRAEFIK = Chart("traefik", "https://traefik.github.io/charts", "39.0.9")
# Istio 1.31.0 (31 August 2026; shared/reference/components-platform.md section 8).
ISTIO_REPO = "https://istio-release.storage.googleapis.com/charts"
ISTIO_VERSION = "1.31.0"


def install(
    args: ClusterStackArgs,
    kubeconfig: pulumi.Input[str],
    depends_on: list[pulumi.Resource],
    storage_class: dict[str, Any] | None = None,
    istio_platform: str | None = None,
) -> k8s.helm.v3.Release:
    """Install the prerequisites and labenv; returns labenv's Helm release."""
    provider = k8s.Provider(
        "cluster",
        kubeconfig=kubeconfig,
        enable_server_side_apply=True,
        opts=pulumi.ResourceOptions(depends_on=depends_on),
    )
    opts = pulumi.ResourceOptions(provider=provider)
    prerequisites: list[pulumi.Resource] = []
    if storage_class is not None:
        prerequisites.append(
            k8s.storage.v1.StorageClass(
                "default-storage",
                metadata={
                    "name": "labenv-default",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                provisioner=storage_class["provisioner"],
                parameters=storage_class["parameters"],
                reclaim_policy="Delete",
                volume_binding_mode="WaitForFirstConsumer",
                allow_volume_expansion=True,
                opts=opts,
            )
        )
    prerequisites.append(
        _release(
            "ingress",
            TRAEFIK,
            "traefik",
            {
                "ingressClass": {"enabled": True, "isDefaultClass": True},
                "providers": {"kubernetesIngress": {"enabled": True}},
            },
            opts,
        )
    )
    if args.istio:
        prerequisites.extend(_istio(opts, istio_platform))
    return k8s.helm.v3.Release(
        "labenv",
        name="labenv",
        chart=args.chart_path,
        namespace="labenv",
        create_namespace=True,
        values=args.chart_values,
        atomic=True,
        timeout=600,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=prerequisites),
    )


def _release(
    name: str,
    chart: Chart,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    release: str = "",
) -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release(
        name,
        name=release or chart.name,
        chart=chart.name,
        version=chart.version,
        repository_opts={"repo": chart.repo},
        namespace=namespace,
        create_namespace=True,
        values=values,
        atomic=True,
        timeout=600,
        opts=opts,
    )


def _istio(opts: pulumi.ResourceOptions, platform: str | None) -> list[pulumi.Resource]:
    platform_values: dict[str, Any] = {"global": {"platform": platform}} if platform else {}
    base = _release(
        "istio-base", Chart("base", ISTIO_REPO, ISTIO_VERSION), "istio-system", {}, opts, "istio-base"
    )
    after_base = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[base]))
    cni = _release(
        "istio-cni",
        Chart("cni", ISTIO_REPO, ISTIO_VERSION),
        "istio-system",
        platform_values,
        after_base,
        "istio-cni",
    )
    istiod = _release(
        "istiod",
        Chart("istiod", ISTIO_REPO, ISTIO_VERSION),
        "istio-system",
        {
            **platform_values,
            "pilot": {"cni": {"enabled": True}},
            "global": {
                **platform_values.get("global", {}),
                "proxy": {"seccompProfile": {"type": "RuntimeDefault"}},
            },
        },
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[base, cni])),
    )
    gateway = _release(
        "istio-ingressgateway",
        Chart("gateway", ISTIO_REPO, ISTIO_VERSION),
        "istio-ingress",
        {},
        pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[istiod])),
        release="istio-ingressgateway",
    )
    return [base, cni, istiod, gateway]
