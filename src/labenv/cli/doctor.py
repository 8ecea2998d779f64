"""`labenv doctor [--fix]`: list (and remove) lab namespaces, objects and cloud stacks no LabSession owns.

Registered on the main app as `doctor` (see `labenv.cli.main`). Exit code 0 when nothing is orphaned
(or everything found was removed with --fix), 1 when orphans were found and left in place.
"""

from __future__ import annotations

from typing import Annotated

import typer

from labenv import doctor, sessions
from labenv.cli.common import KubeconfigOpt, OutputOpt, with_kube
from labenv.cli.output import Output, console, draw, emit
from labenv.controller import cloud
from labenv.kube.client import Kube


def doctor_command(
    fix: Annotated[bool, typer.Option("--fix", help="Delete every orphan found.")] = False,
    kubeconfig: KubeconfigOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List lab namespaces, objects and cloud stacks no LabSession owns; [bold]--fix[/bold] removes them."""

    async def go(kube: Kube) -> tuple[doctor.Report, list[doctor.Orphan]]:
        await sessions.require_crd(kube)
        # Session stacks in the Pulumi backend, when $LABENV_CLOUD_CONFIG names the cloud settings.
        sources = [*doctor.stack_sources(), *cloud.doctor_sources(kube)]
        report = await doctor.audit(kube, sources)
        removed = await doctor.fix(kube, report, sources) if fix and report.orphans else []
        return report, removed

    report, removed = with_kube(go, kubeconfig)
    left = [o for o in report.orphans if o not in removed]
    data = {
        "clean": report.clean,
        "sessions": report.sessions,
        "labNamespaces": report.lab_namespaces,
        "orphans": [o.to_dict() for o in report.orphans],
        "removed": [o.to_dict() for o in removed],
    }

    def table() -> None:
        if report.clean:
            console.print(
                f"No orphans: {report.lab_namespaces} lab namespaces, {report.sessions} LabSessions, "
                "every labenv object and cloud stack has its session."
            )
            return
        rows = [
            (
                o.kind,
                o.namespace or o.provider or "",
                o.name,
                o.reason,
                "removed" if o in removed else "left",
            )
            for o in report.orphans
        ]
        draw("Orphans", ["Kind", "Namespace/provider", "Name", "Why", "Action"], rows)
        if left:
            console.print("Run [bold]labenv doctor --fix[/bold] to remove them.")

    emit(data, output, table)
    if left:
        raise typer.Exit(1)
