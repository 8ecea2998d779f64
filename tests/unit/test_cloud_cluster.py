"""The cluster bootstrap programs (EKS, GKE) under Pulumi's mocks."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime

import pytest
import yaml

from labenv.cloud import programs
from labenv.cloud.cluster_addons import ISTIO_VERSION, TRAEFIK
from labenv.cloud.cluster_sizing import node_pool_size
from labenv.cloud.config import Capacity, ClusterStackArgs, Ownership
from labenv.cloud.examples import EXAMPLE_AWS, EXAMPLE_GCP
from labenv.cloud.mocks import MockRun, run_under_mocks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PER_LEARNER = Capacity(cpu_millis=1200, memory_mib=3072)
OWNER = Ownership(
    owner="platform", cohort="spring", expiry=datetime(2027, 3, 1, tzinfo=UTC), session="cluster.spring"
)


def cluster(cloud: str, learners: int = 30, istio: bool = False) -> ClusterStackArgs:
    return ClusterStackArgs(
        cloud=cloud,  # type: ignore[arg-type]
        name="spring",
        ownership=OWNER,
        learners=learners,
        per_learner=PER_LEARNER,
        machine_type="m7i.xlarge" if cloud == "aws" else "e2-standard-4",
        istio=istio,
        admin_cidrs=("203.0.113.0/24",),
        admin_principals=("arn:aws:iam::123456789012:role/platform-admin",),
        chart_values={"operator": {"replicas": 2}},
        aws=EXAMPLE_AWS,
        gcp=EXAMPLE_GCP,
    )


def run(args: ClusterStackArgs) -> MockRun:
    return run_under_mocks(programs.build(args), stack=f"cluster.{args.cloud}.spring")


@pytest.fixture(scope="module")
def eks() -> MockRun:
    return run(cluster("aws", learners=30, istio=True))


@pytest.fixture(scope="module")
def gke() -> MockRun:
    return run(cluster("gcp", learners=30))


def releases(result: MockRun) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in result.of_type("kubernetes:helm.sh/v3:Release")}


def test_eks_node_group_is_sized_for_the_cohort(eks: MockRun) -> None:
    expected = node_pool_size(30, PER_LEARNER, "m7i.xlarge", istio=True)
    scaling = eks.one("aws:eks/nodeGroup:NodeGroup").inputs["scalingConfig"]
    assert scaling == {
        "desiredSize": expected.desired,
        "minSize": expected.minimum,
        "maxSize": expected.maximum,
    }
    bigger = (
        run(cluster("aws", learners=90, istio=True))
        .one("aws:eks/nodeGroup:NodeGroup")
        .inputs["scalingConfig"]
    )
    assert bigger["desiredSize"] > scaling["desiredSize"]
    assert eks.outputs["NODE_COUNT"] == str(expected.desired)


def test_eks_api_is_reachable_from_the_admins_only(eks: MockRun) -> None:
    cluster_inputs = eks.one("aws:eks/cluster:Cluster").inputs
    assert cluster_inputs["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster_inputs["accessConfig"]["authenticationMode"] == "API"
    assert cluster_inputs["deletionProtection"] is False
    entry = eks.one("aws:eks/accessEntry:AccessEntry").inputs
    assert entry["principalArn"].endswith(":role/platform-admin")
    nodes = eks.one("aws:eks/nodeGroup:NodeGroup").inputs
    private = {s.name for s in eks.of_type("aws:ec2/subnet:Subnet") if s.name.startswith("private-")}
    assert len(nodes["subnetIds"]) == len(private) == 2


def test_eks_enforces_network_policies_and_has_storage(eks: MockRun) -> None:
    addons = {a.inputs["addonName"]: a.inputs for a in eks.of_type("aws:eks/addon:Addon")}
    assert '"enableNetworkPolicy": "true"' in addons["vpc-cni"]["configurationValues"]
    assert (
        addons["aws-ebs-csi-driver"]["podIdentityAssociations"][0]["serviceAccount"]
        == "ebs-csi-controller-sa"
    )
    storage = eks.one("kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert storage["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    assert storage["parameters"]["encrypted"] == "true"


def test_eks_installs_ingress_istio_and_labenv(eks: MockRun) -> None:
    found = releases(eks)
    assert found["traefik"]["version"] == TRAEFIK.version
    assert {"istio-base", "istio-cni", "istiod", "istio-ingressgateway"} <= set(found)
    assert found["istiod"]["version"] == ISTIO_VERSION
    assert found["istiod"]["values"]["pilot"]["cni"]["enabled"] is True
    labenv = found["labenv"]
    assert labenv["chart"] == "charts/labenv" and labenv["namespace"] == "labenv"
    assert labenv["values"] == {"operator": {"replicas": 2}}


def test_eks_tags_every_taggable_resource(eks: MockRun) -> None:
    taggable = [
        r
        for r in eks.resources
        if r.custom and r.cls is not None and "tags" in inspect.signature(r.cls._internal_init).parameters
    ]
    assert len(taggable) >= 10
    for resource in taggable:
        assert (resource.inputs.get("tags") or {}).get("owner") == "platform", (
            f"{resource.token} {resource.name}"
        )


def test_kubeconfig_uses_exec_credentials(eks: MockRun, gke: MockRun) -> None:
    aws_config = yaml.safe_load(eks.outputs["KUBECONFIG_DATA"])
    assert aws_config["users"][0]["user"]["exec"]["command"] == "aws"
    assert "token" not in aws_config["users"][0]["user"]
    gcp_config = yaml.safe_load(gke.outputs["KUBECONFIG_DATA"])
    assert gcp_config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert gcp_config["clusters"][0]["cluster"]["server"] == "https://203.0.113.10"
    assert "KUBECONFIG_DATA" in eks.secrets and "KUBECONFIG_DATA" in gke.secrets


def test_gke_is_private_policed_and_sized(gke: MockRun) -> None:
    cluster_inputs = gke.one("gcp:container/cluster:Cluster").inputs
    assert cluster_inputs["deletionProtection"] is False
    assert cluster_inputs["datapathProvider"] == "ADVANCED_DATAPATH"
    assert cluster_inputs["privateClusterConfig"]["enablePrivateNodes"] is True
    assert cluster_inputs["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [
        {"cidrBlock": "203.0.113.0/24", "displayName": "labenv admins"}
    ]
    assert cluster_inputs["removeDefaultNodePool"] is True
    expected = node_pool_size(30, PER_LEARNER, "e2-standard-4")
    pool = gke.one("gcp:container/nodePool:NodePool").inputs
    assert pool["autoscaling"]["totalMinNodeCount"] == expected.minimum
    assert pool["autoscaling"]["totalMaxNodeCount"] == expected.maximum
    assert pool["nodeConfig"]["machineType"] == "e2-standard-4"
    assert pool["nodeConfig"]["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}


def test_gke_without_istio_installs_no_mesh(gke: MockRun) -> None:
    found = releases(gke)
    assert set(found) == {"traefik", "labenv"}


def test_open_admin_cidr_is_refused() -> None:
    with pytest.raises(ValueError, match="whole internet"):
        cluster("aws").model_copy(update={}).model_validate(
            {**cluster("aws").model_dump(), "admin_cidrs": ["0.0.0.0/0"]}
        )
