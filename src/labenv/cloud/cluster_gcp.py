"""A GKE cluster for labenv, sized for a cohort.

Creates a VPC with one subnet (secondary ranges for pods and services) and Cloud NAT for the
private nodes, a node service account with the minimal logging/monitoring/registry roles, a
regional GKE cluster (private nodes, control plane reachable from the admins' CIDRs only, Dataplane
V2 so NetworkPolicies are enforced, Workload Identity, REGULAR release channel, no deletion
protection so `labenv infra down` works), one autoscaled node pool sized by `cluster_sizing`, and
then `cluster_addons`.
"""

from __future__ import annotations

import math

import pulumi
import pulumi_gcp as gcp

from labenv.cloud import cluster_addons, kubeconfig, naming
from labenv.cloud.cluster_sizing import node_pool_size
from labenv.cloud.config import ClusterStackArgs, GcpSettings

Outputs = dict[str, pulumi.Input[str]]
ZONES_PER_REGION = 3
NODE_ROLES = ("roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/artifactregistry.reader")


def gcp_cluster(args: ClusterStackArgs, settings: GcpSettings, provider: gcp.Provider) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    labels = args.ownership.labels()
    name = naming.short("labenv", args.name, max_len=40)
    project = settings.project
    network = gcp.compute.Network(
        "network", name=name, project=project, auto_create_subnetworks=False, opts=opts
    )
    subnet = gcp.compute.Subnetwork(
        "subnet",
        name=name,
        project=project,
        region=settings.region,
        network=network.id,
        ip_cidr_range="10.70.0.0/20",
        private_ip_google_access=True,
        secondary_ip_ranges=[
            {"range_name": "pods", "ip_cidr_range": "10.72.0.0/14"},
            {"range_name": "services", "ip_cidr_range": "10.76.0.0/20"},
        ],
        opts=opts,
    )
    router = gcp.compute.Router(
        "router", name=name, project=project, region=settings.region, network=network.id, opts=opts
    )
    gcp.compute.RouterNat(
        "nat",
        name=name,
        project=project,
        region=settings.region,
        router=router.name,
        nat_ip_allocate_option="AUTO_ONLY",
        source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
        opts=opts,
    )
    nodes_account = gcp.serviceaccount.Account(
        "nodes",
        project=project,
        account_id=naming.short(name, "nodes", max_len=30),
        display_name="labenv GKE nodes",
        opts=opts,
    )
    for role in NODE_ROLES:
        gcp.projects.IAMMember(
            f"nodes-{role.rsplit('.', 1)[-1]}",
            project=project,
            role=role,
            member=nodes_account.email.apply(lambda email: f"serviceAccount:{email}"),
            opts=opts,
        )
    cluster = gcp.container.Cluster(
        "cluster",
        name=name,
        project=project,
        location=settings.region,
        network=network.id,
        subnetwork=subnet.id,
        remove_default_node_pool=True,
        initial_node_count=1,
        deletion_protection=False,
        release_channel={"channel": "REGULAR"},
        min_master_version=args.kubernetes_version,
        datapath_provider="ADVANCED_DATAPATH",
        ip_allocation_policy={
            "cluster_secondary_range_name": "pods",
            "services_secondary_range_name": "services",
        },
        private_cluster_config={
            "enable_private_nodes": True,
            "enable_private_endpoint": False,
            "master_ipv4_cidr_block": "172.16.0.32/28",
        },
        master_authorized_networks_config={
            "cidr_blocks": [
                {"cidr_block": cidr, "display_name": "labenv admins"} for cidr in args.admin_cidrs
            ]
        },
        workload_identity_config={"workload_pool": f"{project}.svc.id.goog"},
        resource_labels=labels,
        opts=opts,
    )
    size = node_pool_size(args.learners, args.per_learner, args.machine_type, args.istio)
    pool = gcp.container.NodePool(
        "nodes",
        name="labs",
        project=project,
        location=settings.region,
        cluster=cluster.name,
        initial_node_count=math.ceil(size.desired / ZONES_PER_REGION),
        autoscaling={
            "total_min_node_count": size.minimum,
            "total_max_node_count": size.maximum,
            "location_policy": "BALANCED",
        },
        management={"auto_repair": True, "auto_upgrade": True},
        node_config={
            "machine_type": args.machine_type,
            "disk_size_gb": 50,
            "disk_type": "pd-balanced",
            "service_account": nodes_account.email,
            "oauth_scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            "labels": {"labenv.io/pool": "labs"},
            "resource_labels": labels,
            "workload_metadata_config": {"mode": "GKE_METADATA"},
            "shielded_instance_config": {"enable_secure_boot": True, "enable_integrity_monitoring": True},
        },
        opts=opts,
    )
    config: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(cluster.name, cluster.endpoint, cluster.master_auth.cluster_ca_certificate).apply(
            lambda parts: kubeconfig.gke(parts[0], parts[1], parts[2] or "")
        )
    )
    release = cluster_addons.install(args, config, depends_on=[pool], istio_platform="gke")
    return {
        "KUBECONFIG_DATA": config,
        "CLUSTER_NAME": cluster.name,
        "CLUSTER_ENDPOINT": cluster.endpoint,
        "NODE_MACHINE_TYPE": args.machine_type,
        "NODE_COUNT": str(size.desired),
        "LABENV_RELEASE": release.name.apply(lambda n: n or "labenv"),
    }
