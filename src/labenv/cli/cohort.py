"""`labenv cohort ...`: instructors provision, follow, advance, extend and remove a whole class."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from labenv import api, capacity, cohorts, names
from labenv.catalog.loader import default_catalog
from labenv.cli.common import KubeconfigOpt, NamespaceOpt, OutputOpt, with_kube
from labenv.cli.output import Output, console, draw, emit, err_console
from labenv.errors import InvalidInput, LabenvError
from labenv.kube.client import Kube

cohort_app = typer.Typer(help="Provision and drive a whole cohort of learners.", no_args_is_help=True)

FileArg = Annotated[Path | None, typer.Argument(help="Cohort file (YAML: name, course, unit, learners...).")]


def _from_options(
    file: Path | None,
    name: str | None,
    learners: Path | None,
    unit: str | None,
    course: str | None,
    ttl: str | None,
    warm_pool: int,
) -> tuple[str, api.CohortSpec]:
    catalog = default_catalog()
    if file is not None:
        return cohorts.load_file(catalog, file)
    if not (name and learners and unit):
        raise InvalidInput("cohort: give a FILE, or --name, --learners and --unit")
    spec = api.CohortSpec(
        course=course or catalog.default_course,
        unit=unit,
        ttl=ttl,
        learners=cohorts.read_learners(learners),
        warm_pool=warm_pool,
        instructor=cohorts.default_instructor(),
    )
    return name, cohorts.check_spec(catalog, name, spec)


@cohort_app.command()
def apply(
    file: FileArg = None,
    name: Annotated[str | None, typer.Option(help="Cohort name (without FILE).")] = None,
    learners: Annotated[Path | None, typer.Option(help="CSV of learner names (without FILE).")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit (without FILE).")] = None,
    course: Annotated[str | None, typer.Option(help="Course (without FILE).")] = None,
    ttl: Annotated[str | None, typer.Option(help="Session lifetime (without FILE).")] = None,
    warm_pool: Annotated[int, typer.Option(help="Warm sessions to keep (without FILE).")] = 0,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Follow until every session is Ready.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create or update a cohort and follow it until all its sessions are Ready.

    Example: [bold]labenv cohort apply fall.yaml[/bold] or
    [bold]labenv cohort apply --name fall --learners learners.csv --unit week21[/bold]
    """
    cohort_name, spec = _from_options(file, name, learners, unit, course, ttl, warm_pool)

    async def go(kube: Kube) -> dict[str, Any]:
        result = await cohorts.apply(kube, namespace, cohort_name, spec)
        if output == Output.TABLE:
            console.print(
                f"LabCohort [bold]{namespace}/{cohort_name}[/bold] applied: {len(spec.learners)} "
                f"learners on {spec.course}/{spec.unit}, warm pool {spec.warm_pool}."
            )
        return await _follow(kube, namespace, cohort_name, timeout, output) if wait else result

    _print_cohort(with_kube(go, kubeconfig), output)


async def _follow(kube: Kube, namespace: str, name: str, timeout: float, output: Output) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    show = output == Output.TABLE and err_console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{name}: sessions ready", total=None)
        async for latest in cohorts.follow(kube, namespace, name, timeout):
            status = latest.get("status") or {}
            bar.update(task, total=len(latest["spec"].get("learners", [])), completed=status.get("ready", 0))
    return latest


def _print_cohort(cohort: dict[str, Any], output: Output) -> None:
    status = cohort.get("status") or {}

    def table() -> None:
        spec = cohort["spec"]
        console.print(
            f"[bold]{cohort['metadata']['name']}[/bold]  {spec['course']}/{spec['unit']}  "
            f"phase={status.get('phase', 'Pending')}  ready={status.get('ready', 0)}/"
            f"{len(spec.get('learners', []))}  warm={status.get('warm', 0)}/{spec.get('warmPool', 0)}"
        )
        if status.get("phases"):
            draw("Sessions by phase", ["Phase", "Sessions"], sorted(status["phases"].items()))
        if status.get("failures"):
            draw(
                "Failures",
                ["Learner", "Session", "Reason"],
                [(f["learner"], f["session"], f["reason"]) for f in status["failures"]],
            )

    emit(cohort, output, table)
    if status.get("failures") and output == Output.TABLE:
        raise LabenvError(f"{len(status['failures'])} sessions failed (see the table above)")


@cohort_app.command()
def status(
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Counts by phase, warm sessions and failures with reasons."""

    async def go(kube: Kube) -> dict[str, Any]:
        return await cohorts.get(kube, namespace, name)

    _print_cohort(with_kube(go, kubeconfig), output)


@cohort_app.command()
def advance(
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    to: Annotated[str, typer.Option("--to", help="The unit to move every learner to, e.g. week22.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Move the cohort to another unit in place: namespaces, volumes and credentials of components
    that stay are kept."""

    async def go(kube: Kube) -> dict[str, Any]:
        result = await cohorts.advance(kube, default_catalog(), namespace, name, to)
        return await _follow(kube, namespace, name, timeout, output) if wait else result

    _print_cohort(with_kube(go, kubeconfig), output)


@cohort_app.command()
def extend(
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    by: Annotated[str, typer.Option("--by", help="How much longer: 2d, 12h.")],
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Make every session of the cohort live longer (within the cohort's maximum)."""

    async def go(kube: Kube) -> dict[str, Any]:
        return await cohorts.extend(kube, namespace, name, by)

    _print_cohort(with_kube(go, kubeconfig), output)


@cohort_app.command()
def delete(
    name: Annotated[str, typer.Argument(help="Cohort name.")],
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Delete the cohort and, with it, every session and lab namespace it owns."""

    async def go(kube: Kube) -> None:
        await cohorts.delete(kube, namespace, name)

    with_kube(go, kubeconfig)
    console.print(f"LabCohort {namespace}/{name} deleted; its sessions and namespaces are being removed.")


@cohort_app.command()
def plan(
    file: FileArg = None,
    name: Annotated[str | None, typer.Option(help="Cohort name (without FILE).")] = None,
    learners: Annotated[Path | None, typer.Option(help="CSV of learner names (without FILE).")] = None,
    unit: Annotated[str | None, typer.Option(help="Unit (without FILE).")] = None,
    course: Annotated[str | None, typer.Option(help="Course (without FILE).")] = None,
    warm_pool: Annotated[int, typer.Option(help="Warm sessions (without FILE).")] = 0,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Capacity preflight: the cohort's requests against the cluster's free allocatable capacity.
    Exits 1, with the numbers, when it does not fit."""
    cohort_name, spec = _from_options(file, name, learners, unit, course, None, warm_pool)
    need = capacity.cohort_needs(default_catalog(), spec)
    report = with_kube(capacity.check, kubeconfig, need)
    rows = [
        (r.resource, r.per_session, r.needed, r.available, "yes" if r.fits else "NO") for r in report.rows
    ]
    emit(
        {
            "cohort": cohort_name,
            "sessions": need.sessions,
            "fits": report.fits,
            "resources": [r.__dict__ for r in report.rows],
        },
        output,
        lambda: draw(
            f"{cohort_name}: {need.sessions} sessions of {spec.course}/{spec.unit}",
            ["Resource", "Per session", "Needed", "Available", "Fits"],
            rows,
        ),
    )
    if not report.fits:
        short = ", ".join(
            f"{r.resource} needs {r.needed}, {r.available} free" for r in report.rows if not r.fits
        )
        raise LabenvError(f"cohort {cohort_name!r} does not fit: {short}")
