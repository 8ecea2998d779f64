"""`labenv infra up|down`: a cloud cluster (EKS or GKE) to run labenv on, with Pulumi.

`up` sizes the node pool for a cohort from the catalog (the heaviest unit of the chosen courses),
installs the ingress controller, Istio when a course needs it, and labenv's Helm chart, and writes
the kubeconfig. `--dry-run` runs the same program offline under Pulumi's mocks and prints the
resource graph instead. Without `--dry-run` the Pulumi CLI is required; when it is missing the
command fails with one line naming what to install. Errors are LabenvError and reach the user
through the main entry point (`labenv.cli.main.run`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from labenv.catalog.loader import Catalog, default_catalog
from labenv.catalog.model import SupportMode
from labenv.cli.output import Output, console, draw, emit, err_console
from labenv.cloud import naming
from labenv.cloud.cluster_sizing import DEFAULT_MACHINE, node_pool_size
from labenv.cloud.config import (
    AwsSettings,
    Capacity,
    Cloud,
    CloudSettings,
    ClusterStackArgs,
    GcpSettings,
    Ownership,
    load_settings,
)
from labenv.cloud.examples import example_settings
from labenv.errors import InvalidInput
from labenv.reconcile.tenancy import quota_totals

infra_app = typer.Typer(
    help="A cloud cluster (EKS or GKE) to run labenv on, created with Pulumi.", no_args_is_help=True
)

CloudOpt = Annotated[str, typer.Option("--cloud", help="aws (EKS) or gcp (GKE).")]
NameOpt = Annotated[str, typer.Option("--name", help="Cluster name (one Pulumi stack per cloud and name).")]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Cloud settings YAML (default: $LABENV_CLOUD_CONFIG).")
]
ISTIO_API = "networking.istio.io"
MIB = Decimal(2**20)


def _cloud(value: str) -> Cloud:
    if value not in ("aws", "gcp"):
        raise InvalidInput(f"--cloud: {value!r} is not one of aws, gcp")
    return "aws" if value == "aws" else "gcp"


def cohort_needs(catalog: Catalog, courses: list[str]) -> tuple[Capacity, bool]:
    """Requests of one learner's heaviest lab across `courses`, and whether any unit needs Istio."""
    cpu = memory = Decimal(0)
    istio = False
    for slug in courses:
        course = catalog.course(slug)
        for unit in course.units:
            if unit.support.mode == SupportMode.UNSUPPORTED:
                continue
            resolved = catalog.resolve_unit(course, unit)
            totals = quota_totals(resolved.components)
            cpu = max(cpu, totals["requests.cpu"])
            memory = max(memory, totals["requests.memory"])
            istio = istio or any(
                api.startswith(ISTIO_API) for c in resolved.components for api in c.requires_apis
            )
    return Capacity(cpu_millis=int(cpu * 1000), memory_mib=int(memory / MIB) + 1), istio


def cluster_args(
    cloud: Cloud,
    name: str,
    settings: CloudSettings,
    courses: list[str],
    learners: int,
    machine_type: str | None,
    admin_cidrs: list[str],
    admin_principals: list[str],
    chart_path: str,
) -> ClusterStackArgs:
    catalog = default_catalog()
    per_learner, istio = cohort_needs(catalog, courses or [catalog.default_course])
    provider_settings = settings.for_cloud(cloud)
    try:
        return ClusterStackArgs(
            cloud=cloud,
            name=name,
            ownership=Ownership(
                owner="platform",
                cohort=naming.short(name, max_len=63),
                # A cluster has no session expiry; the tag marks when an admin should review it.
                expiry=datetime.now(UTC) + timedelta(days=180),
                session=f"cluster.{name}",
            ),
            learners=learners,
            per_learner=per_learner,
            machine_type=machine_type or DEFAULT_MACHINE[cloud],
            istio=istio,
            admin_cidrs=tuple(admin_cidrs),
            admin_principals=tuple(admin_principals),
            chart_path=chart_path,
            aws=provider_settings if isinstance(provider_settings, AwsSettings) else None,
            gcp=provider_settings if isinstance(provider_settings, GcpSettings) else None,
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InvalidInput(f"infra up: {field}: {str(err['msg']).removeprefix('Value error, ')}") from None


def _settings(config: Path | None, dry_run: bool) -> CloudSettings:
    if config is None and not os.environ.get("LABENV_CLOUD_CONFIG") and dry_run:
        err_console.print("note: no cloud settings given; the dry run uses example settings", highlight=False)
        return example_settings()
    return load_settings(config)


@infra_app.command()
def up(
    cloud: CloudOpt,
    name: NameOpt = "labenv",
    course: Annotated[
        list[str] | None,
        typer.Option("--course", help="Courses to size for (repeat; default: the default course)."),
    ] = None,
    learners: Annotated[int, typer.Option(min=1, max=2000, help="Learners working at the same time.")] = 30,
    machine_type: Annotated[
        str | None, typer.Option(help="Node machine type (default m7i.xlarge / e2-standard-4).")
    ] = None,
    admin_cidr: Annotated[
        list[str] | None,
        typer.Option("--admin-cidr", help="CIDR allowed to reach the Kubernetes API (repeat)."),
    ] = None,
    admin_principal: Annotated[
        list[str] | None,
        typer.Option("--admin-principal", help="IAM principal ARN given cluster-admin (EKS; repeat)."),
    ] = None,
    chart: Annotated[
        str, typer.Option(help="labenv's Helm chart (a path or chart reference).")
    ] = "charts/labenv",
    config: ConfigOpt = None,
    kubeconfig_out: Annotated[Path | None, typer.Option(help="Where to write the kubeconfig.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Run the program under mocks; create nothing.")
    ] = False,
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.TABLE,
) -> None:
    """Create (or update) a cluster sized for a cohort, install labenv on it, write its kubeconfig.

    Example: [bold]labenv infra up --cloud aws --learners 40 --admin-cidr 203.0.113.0/24 --dry-run[/bold]
    """
    chosen = _cloud(cloud)
    if not dry_run:
        from labenv.cloud.runner import require_cloud_extras, require_pulumi_cli

        require_cloud_extras()
        require_pulumi_cli()
    settings = _settings(config, dry_run)
    cidrs = admin_cidr or (["192.0.2.0/24"] if dry_run else [])
    if not cidrs:
        raise InvalidInput("--admin-cidr: required: the networks allowed to reach the cluster's API")
    args = cluster_args(
        chosen, name, settings, course or [], learners, machine_type, cidrs, admin_principal or [], chart
    )
    stack = naming.cluster_stack(chosen, name)
    if dry_run:
        _dry_run(stack, args, output)
        return
    from labenv.cloud.runner import AutomationStackRunner

    outputs = AutomationStackRunner(settings).up(stack, args)
    target = kubeconfig_out or Path(f"kubeconfig-{chosen}-{name}")
    target.write_text(outputs.get("KUBECONFIG_DATA", ""))
    target.chmod(0o600)
    typer.echo(
        f"cluster {outputs.get('CLUSTER_NAME', name)} is up ({outputs.get('NODE_COUNT')} nodes): "
        f"export KUBECONFIG={target}"
    )


@infra_app.command()
def down(cloud: CloudOpt, name: NameOpt = "labenv", config: ConfigOpt = None) -> None:
    """Destroy the cluster stack (the cluster, its network and everything installed on it)."""
    chosen = _cloud(cloud)
    from labenv.cloud.runner import AutomationStackRunner, require_cloud_extras, require_pulumi_cli

    require_cloud_extras()
    require_pulumi_cli()
    settings = load_settings(config)
    AutomationStackRunner(settings).destroy(naming.cluster_stack(chosen, name))
    typer.echo(f"cluster stack {naming.cluster_stack(chosen, name)} is destroyed")


def _dry_run(stack: str, args: ClusterStackArgs, output: Output) -> None:
    from labenv.cloud import programs
    from labenv.cloud.mocks import run_under_mocks
    from labenv.cloud.runner import require_cloud_extras

    require_cloud_extras()
    run = run_under_mocks(programs.build(args), stack=stack)
    size = node_pool_size(args.learners, args.per_learner, args.machine_type, args.istio)
    releases = [r.inputs.get("name", r.name) for r in run.of_type("kubernetes:helm.sh/v3:Release")]
    data: dict[str, Any] = {
        "stack": stack,
        "cloud": args.cloud,
        "learners": args.learners,
        "perLearner": {
            "cpu": f"{args.per_learner.cpu_millis}m",
            "memory": f"{args.per_learner.memory_mib}Mi",
        },
        "machineType": args.machine_type,
        "nodes": {"min": size.minimum, "desired": size.desired, "max": size.maximum},
        "istio": args.istio,
        "helmReleases": releases,
        "resources": [{"type": t, "count": n} for t, n in run.summary()],
        "outputs": sorted(run.outputs),
    }

    def table() -> None:
        console.print(
            f"[bold]{stack}[/bold] (dry run under mocks: nothing was created)\n"
            f"{args.learners} learners x {args.per_learner.cpu_millis}m / {args.per_learner.memory_mib}Mi -> "
            f"{size.desired} x {args.machine_type} (min {size.minimum}, max {size.maximum}); "
            f"Helm releases: {', '.join(releases)}",
            highlight=False,
        )
        draw(None, ["resource type", "count"], run.summary())

    emit(data, output, table)


__all__ = ["infra_app"]
