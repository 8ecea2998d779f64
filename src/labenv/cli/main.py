"""`labenv`: the command line for learners, instructors and admins.

Commands parse input, call `labenv.sessions` (or the catalog), and print. Errors are one line on
stderr with a non-zero exit code (see `labenv --help` for the codes).
"""

from __future__ import annotations

import shlex
import sys
from contextlib import nullcontext
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.live import Live
from rich.table import Table

from labenv import __version__, api, names, sessions
from labenv.catalog.loader import Catalog, default_catalog
from labenv.cli.access import kubeconfig_command
from labenv.cli.cluster import cluster_app
from labenv.cli.cohort import cohort_app
from labenv.cli.common import KubeconfigOpt, LearnerOpt, NamespaceOpt, OutputOpt, with_kube
from labenv.cli.doctor import doctor_command
from labenv.cli.infra import infra_app
from labenv.cli.output import Output, console, draw, emit, err_console
from labenv.errors import LabenvError
from labenv.kube.client import Kube

T = TypeVar("T")

EXIT_CODES = """Exit codes: 0 ok, 1 failed or timed out, 2 invalid input, 3 invalid catalog,
4 cluster unreachable or CRD missing, 5 not found."""

app = typer.Typer(
    name="labenv",
    help=f"Provisioned lab environments on Kubernetes.\n\n{EXIT_CODES}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(cohort_app, name="cohort", help="Provision and drive a whole cohort of learners.")
app.add_typer(infra_app, name="infra", help="A cloud cluster (EKS or GKE) to run labenv on, with Pulumi.")
app.add_typer(
    cluster_app, name="cluster", help="The local control plane (etcd, API server, KWOK) for demos and tests."
)


def run() -> None:
    """Console entry point: LabenvError -> one line on stderr and its exit code."""
    try:
        app()
    except LabenvError as exc:
        err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


class Variant(StrEnum):
    AWS = "aws"
    GCP = "gcp"


def _learner(value: str | None) -> str:
    return names.normalise_learner(value) if value else names.default_learner()


def _catalog() -> Catalog:
    return default_catalog()


# --- learners ------------------------------------------------------------------------------------


@app.command()
def start(
    unit: Annotated[str, typer.Argument(help="Unit id or alias, e.g. week21, infra-36w/week21, day12.")],
    learner: LearnerOpt = None,
    course: Annotated[
        str | None,
        typer.Option(
            "--course", "-c", envvar="LABENV_COURSE", help="Course slug (default: the catalog's default)."
        ),
    ] = None,
    ttl: Annotated[
        str, typer.Option(help="How long the lab lives: 8h, 90m, 2d (max 30d).")
    ] = api.DEFAULT_TTL,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until Ready, showing progress.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 600,
    variant: Annotated[
        Variant | None,
        typer.Option(
            help="Run postgres and the object store as managed services of this cloud (and serve the "
            "unit's cloud needs there); the operator needs cloud settings (docs/cloud.md)."
        ),
    ] = None,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Start your lab for a unit, or return the one you already have.

    Example: [bold]labenv start week21 --wait[/bold]
    """
    name, spec = sessions.plan_session(
        _catalog(),
        sessions.StartRequest(unit, _learner(learner), course, ttl, variant.value if variant else None),
    )

    async def go(kube: Kube) -> Any:
        started = await sessions.start(kube, namespace, name, spec)
        if output == Output.TABLE:
            verb = "created" if started.created else "already exists"
            console.print(f"LabSession [bold]{namespace}/{name}[/bold] {verb} ({spec.course}/{spec.unit}).")
        session = started.session
        if wait:
            session = await _wait(kube, session, timeout, output)
        return session

    session = with_kube(go, kubeconfig)
    _print_session(session, output)
    if wait and sessions.phase_of(session) != "Ready":
        raise LabenvError(f"session {name!r} failed: {sessions.message_of(session)}")


async def _wait(kube: Kube, session: dict[str, Any], timeout: float, output: Output) -> dict[str, Any]:
    """Follow the session until it settles: a live table on a terminal, progress lines otherwise."""
    latest, last_line = session, ""
    live = Live(_progress(session), console=err_console, refresh_per_second=4, transient=True)
    with live if output == Output.TABLE and err_console.is_terminal else nullcontext():
        async for latest in sessions.wait_until_settled(kube, session, timeout):
            line = f"{latest['metadata']['name']}: {sessions.phase_of(latest)}: {sessions.message_of(latest)}"
            if live.is_started:
                live.update(_progress(latest))
            elif line != last_line:
                err_console.print(line, highlight=False, soft_wrap=True)
                last_line = line
    return latest


def _progress(session: dict[str, Any]) -> Table:
    status = session.get("status") or {}
    grid = Table(title=f"{session['metadata']['name']}: {sessions.phase_of(session)}", title_justify="left")
    for column in ("Component", "Ready", "Reason", "Message"):
        grid.add_column(column)
    for c in status.get("conditions", []):
        grid.add_row(
            c["type"].removesuffix("Ready") or "Ready", c["status"], c["reason"], c.get("message", "")
        )
    return grid


def _print_session(session: dict[str, Any], output: Output) -> None:
    status = session.get("status") or {}

    def table() -> None:
        meta, spec = session["metadata"], session["spec"]
        console.print(
            f"[bold]{meta['name']}[/bold]  learner={spec['learner']}  unit={spec['course']}/"
            f"{spec['unit']}  phase={sessions.phase_of(session)}  expires={status.get('expiresAt', '-')}"
        )
        if status.get("conditions"):
            console.print(_progress(session))
        if status.get("endpoints"):
            draw(
                "Endpoints",
                ["Component", "Name", "URL"],
                [(e["component"], e["name"], e["url"]) for e in status["endpoints"]],
            )
        console.print(f"Connection settings: [bold]labenv creds {meta['name']}[/bold]")

    emit(session, output, table)


@app.command()
def status(
    name: Annotated[
        str | None, typer.Argument(help="Session name or unit (default: all your sessions).")
    ] = None,
    learner: LearnerOpt = None,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Show one session in detail, or all of yours."""
    if name is None:
        list_(
            learner=learner or names.default_learner(),
            all_learners=False,
            namespace=namespace,
            kubeconfig=kubeconfig,
            output=output,
        )
        return

    async def go(kube: Kube) -> dict[str, Any]:
        return await sessions.find(kube, _catalog(), namespace, name, _learner(learner))

    _print_session(with_kube(go, kubeconfig), output)


@app.command("list")
def list_(
    learner: LearnerOpt = None,
    all_learners: Annotated[bool, typer.Option("--all", "-A", help="Every learner's sessions.")] = False,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List lab sessions (yours by default; --all for everyone's)."""
    who = None if all_learners else _learner(learner)

    async def go(kube: Kube) -> list[dict[str, Any]]:
        return await sessions.list_sessions(kube, namespace, who)

    items = with_kube(go, kubeconfig)
    rows = [
        (
            s["metadata"]["name"],
            s["spec"]["learner"],
            f"{s['spec']['course']}/{s['spec']['unit']}",
            sessions.phase_of(s),
            (s.get("status") or {}).get("expiresAt", ""),
        )
        for s in items
    ]
    emit(
        {"items": items},
        output,
        lambda: (
            draw(None, ["Name", "Learner", "Unit", "Phase", "Expires"], rows)
            if rows
            else console.print("No sessions. Start one with [bold]labenv start week21[/bold].")
        ),
    )


@app.command()
def creds(
    name: Annotated[str, typer.Argument(help="Session name or unit.")],
    learner: LearnerOpt = None,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: Annotated[str, typer.Option("--output", "-o", help="env (shell exports), json or yaml.")] = "env",
) -> None:
    """Print the lab's connection settings, e.g. [bold]eval "$(labenv creds week21)"[/bold]."""

    async def go(kube: Kube) -> dict[str, str]:
        session = await sessions.find(kube, _catalog(), namespace, name, _learner(learner))
        return await sessions.credentials(kube, session)

    values = with_kube(go, kubeconfig)
    if output == "env":
        sys.stdout.write("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
        return
    try:
        fmt = Output(output)
    except ValueError:
        raise typer.BadParameter("output: use env, json or yaml") from None
    emit(values, fmt, lambda: draw(None, ["Setting", "Value"], sorted(values.items())))


@app.command()
def stop(
    name: Annotated[str, typer.Argument(help="Session name or unit.")],
    learner: LearnerOpt = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the namespace is gone.")] = False,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Delete a session and everything in its namespace."""

    async def go(kube: Kube) -> str:
        session = await sessions.find(kube, _catalog(), namespace, name, _learner(learner))
        await sessions.stop(kube, session, wait)
        return str(session["metadata"]["name"])

    stopped = with_kube(go, kubeconfig)
    console.print(f"LabSession {namespace}/{stopped} deleted{' and its namespace is gone' if wait else ''}.")


@app.command()
def extend(
    name: Annotated[str, typer.Argument(help="Session name or unit.")],
    by: Annotated[str, typer.Option("--by", help="How much longer: 2h, 90m, 1d.")],
    learner: LearnerOpt = None,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Make a session live longer (within its cohort's maximum, or 30 days)."""

    async def go(kube: Kube) -> dict[str, Any]:
        session = await sessions.find(kube, _catalog(), namespace, name, _learner(learner))
        return await sessions.extend(kube, session, by)

    session = with_kube(go, kubeconfig)
    emit(
        session,
        output,
        lambda: console.print(
            f"{session['metadata']['name']}: ttl is now {session['spec']['ttl']} (expiry updates shortly)."
        ),
    )


@app.command()
def reset(
    name: Annotated[str, typer.Argument(help="Session name or unit.")],
    component: Annotated[
        str, typer.Argument(help="The component to recreate with fresh data, e.g. postgres.")
    ],
    learner: LearnerOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until the session is Ready again.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 600,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Recreate one component of a lab with fresh data: its volumes are deleted, credentials kept."""

    async def go(kube: Kube) -> dict[str, Any]:
        session = await sessions.find(kube, _catalog(), namespace, name, _learner(learner))
        session = await sessions.reset(kube, _catalog(), session, component)
        if not wait:
            return session
        await sessions.wait_for_reset(kube, session, timeout)
        return await _wait(
            kube, await sessions.get(kube, namespace, session["metadata"]["name"]), timeout, output
        )

    _print_session(with_kube(go, kubeconfig), output)


# --- catalog -------------------------------------------------------------------------------------


@app.command()
def catalog(
    course: Annotated[str | None, typer.Argument(help="Course slug; omit to list courses.")] = None,
    unit: Annotated[str | None, typer.Option("--unit", "-u", help="Show one unit in detail.")] = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Show courses, their units, components and sizing."""
    from labenv.cli import catalog_view

    catalog_view.show(_catalog(), course, unit, output)


# --- admin ---------------------------------------------------------------------------------------


@app.command()
def install(
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
) -> None:
    """Install the CRDs and the LabSession namespace (the Helm chart does this on real clusters)."""
    from labenv import install as installer

    with_kube(installer.install, kubeconfig, namespace)
    console.print(f"CRDs installed; LabSessions live in namespace [bold]{namespace}[/bold].")


app.command("kubeconfig")(kubeconfig_command)
app.command("doctor")(doctor_command)

operator_app = typer.Typer(help="Run the operator.", no_args_is_help=True)
app.add_typer(operator_app, name="operator")


@operator_app.command("run")
def operator_run(
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
    liveness: Annotated[
        str | None, typer.Option(help="Serve Kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    ] = None,
) -> None:
    """Run the operator in the foreground (what the container runs)."""
    from labenv.controller.run import main

    main(liveness=liveness, verbose=verbose)


@app.command()
def version() -> None:
    """Print labenv's version."""
    console.print(__version__)
