"""An EKS cluster for labenv, sized for a cohort.

Creates a VPC over two zones (public subnets for load balancers, private subnets for nodes, one NAT
gateway), the cluster and node IAM roles with AWS's managed policies, the EKS cluster (API access
from the admins' CIDRs only, API authentication mode, audit logs), a managed node group sized by
`cluster_sizing`, the VPC CNI with network-policy enforcement (labenv's isolation relies on
NetworkPolicies), the EBS CSI driver through EKS Pod Identity, and then `cluster_addons`.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pulumi
import pulumi_aws as aws

from labenv.cloud import aws_policies, cluster_addons, kubeconfig, naming
from labenv.cloud.cluster_sizing import node_pool_size
from labenv.cloud.config import AwsSettings, ClusterStackArgs

Outputs = dict[str, pulumi.Input[str]]
VPC_CIDR = "10.60.0.0/16"
ZONES = 2
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def aws_cluster(args: ClusterStackArgs, settings: AwsSettings, provider: aws.Provider) -> Outputs:
    opts = pulumi.ResourceOptions(provider=provider)
    tags = args.ownership.tags()
    name = naming.short("labenv", args.name, max_len=40)
    public, private = _network(name, tags, provider)
    cluster_role = _role(
        "cluster-role", f"{name}-cluster", "eks.amazonaws.com", ["AmazonEKSClusterPolicy"], tags, opts
    )
    node_role = _role(
        "node-role",
        f"{name}-nodes",
        "ec2.amazonaws.com",
        ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"],
        tags,
        opts,
    )
    cluster = aws.eks.Cluster(
        "cluster",
        name=name,
        version=args.kubernetes_version,
        role_arn=cluster_role.arn,
        vpc_config={
            "subnet_ids": [s.id for s in (*private, *public)],
            "endpoint_private_access": True,
            "endpoint_public_access": True,
            "public_access_cidrs": list(args.admin_cidrs),
        },
        access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": True},
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        deletion_protection=False,
        tags=tags,
        opts=opts,
    )
    for index, principal in enumerate(args.admin_principals):
        entry = aws.eks.AccessEntry(
            f"admin-{index}",
            cluster_name=cluster.name,
            principal_arn=principal,
            type="STANDARD",
            tags=tags,
            opts=opts,
        )
        aws.eks.AccessPolicyAssociation(
            f"admin-{index}",
            cluster_name=cluster.name,
            principal_arn=principal,
            policy_arn=ADMIN_POLICY,
            access_scope={"type": "cluster"},
            opts=pulumi.ResourceOptions(provider=provider, depends_on=[entry]),
        )
    size = node_pool_size(args.learners, args.per_learner, args.machine_type, args.istio)
    cni = aws.eks.Addon(
        "vpc-cni",
        cluster_name=cluster.name,
        addon_name="vpc-cni",
        configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
        resolve_conflicts_on_update="OVERWRITE",
        tags=tags,
        opts=opts,
    )
    nodes = aws.eks.NodeGroup(
        "nodes",
        cluster_name=cluster.name,
        node_group_name="labs",
        node_role_arn=node_role.arn,
        subnet_ids=[s.id for s in private],
        instance_types=[args.machine_type],
        ami_type="AL2023_x86_64_STANDARD",
        capacity_type="ON_DEMAND",
        disk_size=50,
        scaling_config={"desired_size": size.desired, "min_size": size.minimum, "max_size": size.maximum},
        update_config={"max_unavailable": 1},
        labels={"labenv.io/pool": "labs"},
        tags=tags,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[cni]),
    )
    pod_identity = aws.eks.Addon(
        "pod-identity-agent",
        cluster_name=cluster.name,
        addon_name="eks-pod-identity-agent",
        tags=tags,
        opts=opts,
    )
    ebs_role = _role(
        "ebs-csi-role",
        f"{name}-ebs-csi",
        "pods.eks.amazonaws.com",
        ["service-role/AmazonEBSCSIDriverPolicy"],
        tags,
        opts,
        session_tags=True,
    )
    ebs = aws.eks.Addon(
        "ebs-csi",
        cluster_name=cluster.name,
        addon_name="aws-ebs-csi-driver",
        pod_identity_associations=[{"role_arn": ebs_role.arn, "service_account": "ebs-csi-controller-sa"}],
        tags=tags,
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[nodes, pod_identity]),
    )
    config: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
            lambda parts: kubeconfig.eks(parts[0], parts[1], parts[2], settings.region)
        )
    )
    release = cluster_addons.install(
        args,
        config,
        depends_on=[nodes, ebs],
        storage_class={"provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3", "encrypted": "true"}},
    )
    return {
        "KUBECONFIG_DATA": config,
        "CLUSTER_NAME": cluster.name,
        "CLUSTER_ENDPOINT": cluster.endpoint,
        "NODE_MACHINE_TYPE": args.machine_type,
        "NODE_COUNT": str(size.desired),
        "LABENV_RELEASE": release.name.apply(lambda n: n or "labenv"),
    }


def _network(
    name: str, tags: dict[str, str], provider: aws.Provider
) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.Subnet]]:
    opts = pulumi.ResourceOptions(provider=provider)
    zones = aws.get_availability_zones_output(
        state="available", opts=pulumi.InvokeOutputOptions(provider=provider)
    )
    vpc = aws.ec2.Vpc(
        "vpc",
        cidr_block=VPC_CIDR,
        enable_dns_hostnames=True,
        enable_dns_support=True,
        tags={**tags, "Name": name},
        opts=opts,
    )
    gateway = aws.ec2.InternetGateway("internet", vpc_id=vpc.id, tags=tags, opts=opts)
    public: list[aws.ec2.Subnet] = []
    private: list[aws.ec2.Subnet] = []
    for index in range(ZONES):
        zone = zones.names.apply(_nth(index))
        public.append(
            aws.ec2.Subnet(
                f"public-{index}",
                vpc_id=vpc.id,
                cidr_block=f"10.60.{index}.0/24",
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "kubernetes.io/role/elb": "1"},
                opts=opts,
            )
        )
        private.append(
            aws.ec2.Subnet(
                f"private-{index}",
                vpc_id=vpc.id,
                cidr_block=f"10.60.{16 * (index + 1)}.0/20",
                availability_zone=zone,
                tags={**tags, "kubernetes.io/role/internal-elb": "1"},
                opts=opts,
            )
        )
    address = aws.ec2.Eip("nat", domain="vpc", tags=tags, opts=opts)
    nat = aws.ec2.NatGateway("nat", allocation_id=address.id, subnet_id=public[0].id, tags=tags, opts=opts)
    routes = {
        "public": aws.ec2.RouteTable(
            "public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            tags=tags,
            opts=opts,
        ),
        "private": aws.ec2.RouteTable(
            "private",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            tags=tags,
            opts=opts,
        ),
    }
    for kind, subnets in (("public", public), ("private", private)):
        for index, subnet in enumerate(subnets):
            aws.ec2.RouteTableAssociation(
                f"{kind}-{index}", subnet_id=subnet.id, route_table_id=routes[kind].id, opts=opts
            )
    return public, private


def _nth(index: int) -> Callable[[list[str]], str]:
    return lambda names: names[index]


def _role(
    resource: str,
    name: str,
    service: str,
    managed: list[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    session_tags: bool = False,
) -> aws.iam.Role:
    trust = aws_policies.assume_role_policy(service)
    if session_tags:  # EKS Pod Identity assumes roles with session tags
        trust["Statement"][0]["Action"] = ["sts:AssumeRole", "sts:TagSession"]
    role = aws.iam.Role(
        resource,
        name=naming.short(name, max_len=64),
        path=aws_policies.IAM_PATH,
        assume_role_policy=json.dumps(trust),
        tags=tags,
        opts=opts,
    )
    for policy in managed:
        aws.iam.RolePolicyAttachment(
            f"{resource}-{policy.rsplit('/', 1)[-1]}",
            role=role.name,
            policy_arn=f"arn:aws:iam::aws:policy/{policy}",
            opts=opts,
        )
    return role
