"""The GCP session programs under Pulumi's mocks: project sandbox, Cloud SQL, GCS with HMAC keys."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from labenv.catalog.loader import default_catalog
from labenv.cloud import programs
from labenv.cloud.config import ObjectStoreSpec, Ownership, PostgresSpec, SandboxSpec, SessionStackArgs
from labenv.cloud.examples import EXAMPLE_GCP
from labenv.cloud.mocks import MockRun, run_under_mocks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OWNER = Ownership(
    owner="ada",
    cohort="spring-2026",
    expiry=datetime(2026, 10, 1, 18, tzinfo=UTC),
    session="labenv.ada-week17",
)
LABELS = {"owner": "ada", "cohort": "spring-2026", "expiry": "2026-10-01t18-00-00z", "managed-by": "labenv"}


@pytest.fixture(scope="module")
def full() -> MockRun:
    args = SessionStackArgs(
        cloud="gcp",
        ownership=OWNER,
        gcp=EXAMPLE_GCP,
        sandbox=SandboxSpec(
            services=("compute-engine", "gcs", "iam", "cloud-sql"), state_bucket=True, output_prefix="CLOUD_"
        ),
        postgres=PostgresSpec(
            database="oltp", extra_databases=("warehouse",), password=SecretStr("generated-pw")
        ),
        object_store=ObjectStoreSpec(buckets=("lake",)),
    )
    return run_under_mocks(programs.build(args), stack="session.labenv.ada-week17")


def test_learner_project_under_the_folder_with_billing_and_labels(full: MockRun) -> None:
    project = full.one("gcp:organizations/project:Project").inputs
    assert project["folderId"] == "folders/000000000000"
    assert project["billingAccount"] == EXAMPLE_GCP.billing_account
    assert project["deletionPolicy"] == "DELETE" and project["autoCreateNetwork"] is False
    assert 6 <= len(project["projectId"]) <= 30 and project["projectId"].startswith("lab-")
    apis = {s.inputs["service"] for s in full.of_type("gcp:projects/service:Service")}
    assert {
        "compute.googleapis.com",
        "storage.googleapis.com",
        "sqladmin.googleapis.com",
        "iam.googleapis.com",
    } <= apis


def test_learner_roles_end_at_the_session_expiry(full: MockRun) -> None:
    members = full.of_type("gcp:projects/iAMMember:IAMMember")
    assert {m.inputs["role"] for m in members} >= {
        "roles/compute.admin",
        "roles/storage.admin",
        "roles/cloudsql.admin",
    }
    for member in members:
        assert member.inputs["member"].startswith("serviceAccount:learner@")
        assert member.inputs["condition"]["expression"] == 'request.time < timestamp("2026-10-01T18:00:00Z")'
        assert not member.inputs["role"].startswith(("roles/owner", "roles/editor"))


def test_regions_and_sizes_are_limited(full: MockRun) -> None:
    locations = full.one("gcp:orgpolicy/policy:Policy").inputs
    assert locations["name"].endswith("/policies/gcp.resourceLocations")
    assert locations["spec"]["rules"][0]["values"]["allowedValues"] == ["in:europe-west1-locations"]
    quota = full.one("gcp:serviceusage/consumerQuotaOverride:ConsumerQuotaOverride").inputs
    assert quota["overrideValue"] == str(EXAMPLE_GCP.max_cpus_per_region)
    assert quota["dimensions"] == {"region": "europe-west1"}


def test_budget_alerts_at_each_threshold(full: MockRun) -> None:
    budget = full.one("gcp:billing/budget:Budget").inputs
    assert budget["amount"]["specifiedAmount"] == {"currencyCode": "USD", "units": "25"}
    assert [r["thresholdPercent"] for r in budget["thresholdRules"]] == [0.5, 0.8, 1.0, 1.0]
    assert budget["thresholdRules"][-1]["spendBasis"] == "FORECASTED_SPEND"
    assert budget["budgetFilter"]["projects"][0].startswith("projects/")
    channel = full.one("gcp:monitoring/notificationChannel:NotificationChannel").inputs
    assert channel["labels"] == {"email_address": "ops@example.org"}
    assert budget["allUpdatesRule"]["monitoringNotificationChannels"] == ["sandbox-alert-0-id"]


def test_buckets_uniform_private_versioned_destroyable(full: MockRun) -> None:
    buckets = full.of_type("gcp:storage/bucket:Bucket")
    assert {b.inputs["name"] for b in buckets} == {
        "labenv-labenv-ada-week17-tfstate",
        "labenv-labenv-ada-week17-lake",
    }
    for bucket in buckets:
        assert bucket.inputs["uniformBucketLevelAccess"] is True
        assert bucket.inputs["publicAccessPrevention"] == "enforced"
        assert bucket.inputs["versioning"] == {"enabled": True}
        assert bucket.inputs["forceDestroy"] is True


def test_object_store_identity_has_hmac_keys_on_its_buckets_only(full: MockRun) -> None:
    hmac = full.one("gcp:storage/hmacKey:HmacKey").inputs
    grants = full.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
    assert {g.inputs["bucket"] for g in grants} == {"labenv-labenv-ada-week17-lake"}
    assert {g.inputs["member"] for g in grants} == {f"serviceAccount:{hmac['serviceAccountEmail']}"}
    assert not any(g.inputs["member"] in ("allUsers", "allAuthenticatedUsers") for g in grants)
    assert full.outputs["AWS_ENDPOINT_URL"] == "https://storage.googleapis.com"
    assert full.outputs["AWS_ACCESS_KEY_ID"].startswith("GOOG1E")


def test_cloud_sql_is_private_and_destroyable(full: MockRun) -> None:
    sql = full.one("gcp:sql/databaseInstance:DatabaseInstance").inputs
    ip = sql["settings"]["ipConfiguration"]
    assert ip["ipv4Enabled"] is False and not ip.get("authorizedNetworks")
    assert ip["sslMode"] == "ENCRYPTED_ONLY" and ip["privateNetwork"] == EXAMPLE_GCP.network
    assert sql["deletionProtection"] is False
    assert sql["settings"]["userLabels"]["owner"] == "ada"
    assert {d.inputs["name"] for d in full.of_type("gcp:sql/database:Database")} == {"oltp", "warehouse"}
    assert full.one("gcp:sql/user:User").inputs["name"] == "lab"


def test_labels_on_every_labelled_resource(full: MockRun) -> None:
    labelled = [
        r
        for r in full.resources
        if r.custom and r.cls is not None and "labels" in inspect.signature(r.cls._internal_init).parameters
    ]
    assert len(labelled) >= 3
    for resource in labelled:
        key = "userLabels" if resource.token.startswith("gcp:monitoring/notificationChannel") else "labels"
        labels = resource.inputs.get(key) or {}
        missing = {k: v for k, v in LABELS.items() if labels.get(k) != v}
        assert not missing, f"{resource.token} {resource.name} lacks {missing}"


def test_same_setting_names_as_the_in_cluster_components(full: MockRun) -> None:
    components = default_catalog().components
    for name in ("postgres", "object-store"):
        assert set(components[name].settings) <= set(full.outputs), name
    assert full.outputs["DATABASE_URL"] == "postgresql://lab:generated-pw@10.99.0.5:5432/oltp?sslmode=require"
    credentials = json.loads(full.outputs["CLOUD_GOOGLE_CREDENTIALS"])
    assert credentials["type"] == "service_account"
    assert {"CLOUD_GOOGLE_CREDENTIALS", "DATABASE_URL", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY"} <= full.secrets
    assert (
        full.outputs["CLOUD_GOOGLE_CLOUD_PROJECT"]
        == full.one("gcp:organizations/project:Project").inputs["projectId"]
    )


def _inputs(run: MockRun, token: str) -> list[dict[str, Any]]:
    return [r.inputs for r in run.of_type(token)]


def test_machine_type_constraint_is_enforced_when_configured() -> None:
    args = SessionStackArgs(
        cloud="gcp",
        ownership=OWNER,
        gcp=EXAMPLE_GCP.model_copy(update={"machine_type_constraint": "custom.labenvSmallMachines"}),
        sandbox=SandboxSpec(services=("compute-engine",)),
    )
    run = run_under_mocks(programs.build(args), stack="session.labenv.ada-week12")
    names = {p["name"].rsplit("/", 1)[-1] for p in _inputs(run, "gcp:orgpolicy/policy:Policy")}
    assert names == {"gcp.resourceLocations", "custom.labenvSmallMachines"}
