"""`labenv cluster ...`: the local control plane (etcd, apiserver, KCM, scheduler, KWOK) on 127.0.0.1.

Errors are LabenvError and reach the user through the main entry point (`labenv.cli.main.run`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from labenv.cli.output import Output, console, draw, emit

if TYPE_CHECKING:  # the package pulls in `cryptography`: import it only for cluster commands
    from labenv.localcluster import ClusterStatus, LocalCluster


def _cluster(name: str, nodes: int = 2) -> LocalCluster:
    from labenv.localcluster import LocalCluster

    return LocalCluster(name, nodes=nodes)


cluster_app = typer.Typer(
    help="A local Kubernetes control plane built from Go modules, with KWOK fake nodes (no Docker).",
    no_args_is_help=True,
)

Name = Annotated[str, typer.Option("--name", help="Cluster name; each name has its own state and ports.")]


@cluster_app.command()
def up(
    name: Name = "labenv",
    nodes: Annotated[int, typer.Option(min=1, help="Fake (KWOK) nodes to create.")] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for readiness, builds excluded.")] = 180.0,
) -> None:
    """Build missing binaries, start the cluster (or reuse it if healthy) and wait until it is usable."""
    status = _cluster(name, nodes).up(timeout=timeout)
    typer.echo(f"cluster {name} is up: export KUBECONFIG={status.kubeconfig}")


@cluster_app.command()
def down(
    name: Name = "labenv",
    purge: Annotated[bool, typer.Option(help="Also delete certificates, etcd data and logs.")] = False,
) -> None:
    """Stop every component of the cluster; succeeds when nothing is running."""
    _cluster(name).down(purge=purge)
    typer.echo(f"cluster {name} is down" + (" and purged" if purge else ""))


@cluster_app.command()
def status(
    name: Name = "labenv",
    output: Annotated[Output, typer.Option("--output", "-o", help="Output format.")] = Output.TABLE,
) -> None:
    """Show processes, API readiness and nodes; exits 1 unless the cluster is healthy."""
    result = _cluster(name).status()
    emit(result.to_dict(), output, lambda: _draw(result))
    if not result.healthy:
        raise typer.Exit(1)


@cluster_app.command()
def build() -> None:
    """Build (or reuse) the pinned binaries without starting anything."""
    from labenv.localcluster import ensure_toolchain

    toolchain = ensure_toolchain()
    typer.echo(f"binaries ready; kubectl is {toolchain.kubectl}")


@cluster_app.command()
def kubeconfig(name: Name = "labenv") -> None:
    """Print the path of the cluster's admin kubeconfig."""
    typer.echo(_cluster(name).kubeconfig)


def _draw(result: ClusterStatus) -> None:
    rows = [(p.name, p.pid or "-", "yes" if p.alive else "NO", p.log) for p in result.processes]
    draw(f"cluster {result.name}", ("component", "pid", "alive", "log"), rows)
    nodes = ", ".join(f"{n.name} ({'Ready' if n.ready else 'NotReady'})" for n in result.nodes)
    console.print(
        f"API {result.server or '-'}: {'ready' if result.api_ready else 'not ready'}", highlight=False
    )
    console.print(f"nodes: {nodes or '-'}", highlight=False)
    console.print(f"kubeconfig: {result.kubeconfig}", highlight=False)
    console.print("healthy" if result.healthy else "[red]not healthy[/red]", highlight=False)
