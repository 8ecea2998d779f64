"""`labenv kubeconfig NAME`: a kubeconfig for the lab's own learner identity, valid while the lab lives.

Registered on the main app as `kubeconfig` (see `labenv.cli.main`); errors are LabenvError and reach
the user through `labenv.cli.main.run`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml

from labenv import api, learner_access, names, sessions
from labenv.catalog.loader import default_catalog
from labenv.cli.common import KubeconfigOpt, LearnerOpt, NamespaceOpt, with_kube
from labenv.cli.output import err_console
from labenv.errors import InvalidInput
from labenv.kube.client import Kube


def kubeconfig_command(
    name: Annotated[str, typer.Argument(help="Session name or unit.")],
    learner: LearnerOpt = None,
    max_duration: Annotated[
        str,
        typer.Option(
            "--max-duration",
            help="Longest token lifetime; it ends with the session in any case (API minimum 10m).",
        ),
    ] = "24h",
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write the kubeconfig here (mode 0600), not stdout.")
    ] = None,
    namespace: NamespaceOpt = names.DEFAULT_SESSION_NAMESPACE,
    kubeconfig: KubeconfigOpt = None,
    output: Annotated[str, typer.Option("--output", "-o", help="yaml or json.")] = "yaml",
) -> None:
    """Print a kubeconfig for your lab's [bold]learner[/bold] identity, limited to the lab's namespace.

    The token comes from the TokenRequest API and expires with the session (or after --max-duration).
    Example: [bold]labenv kubeconfig week21 -f lab.kubeconfig[/bold], then
    [bold]kubectl --kubeconfig lab.kubeconfig get pods[/bold]
    """
    if output not in ("yaml", "json"):
        raise InvalidInput(f"output: {output!r} is not yaml or json")
    cap = api.parse_duration(max_duration, "max-duration")
    who = names.normalise_learner(learner) if learner else names.default_learner()

    async def go(kube: Kube) -> learner_access.LearnerKubeconfig:
        session = await sessions.find(kube, default_catalog(), namespace, name, who)
        return await learner_access.issue(kube, session, cap)

    issued = with_kube(go, kubeconfig)
    text = (
        json.dumps(issued.config, indent=2) + "\n"
        if output == "json"
        else yaml.safe_dump(issued.config, sort_keys=False)
    )
    summary = issued.summary()
    note = (
        f"kubeconfig for {summary['user']}: token expires {summary['tokenExpiresAt']} "
        f"(session expires {summary['sessionExpiresAt']})"
    )
    if file is None:
        sys.stdout.write(text)
        err_console.print(note, highlight=False, soft_wrap=True)
        return
    file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(file, 0o600)  # an existing file keeps its mode through O_CREAT
    err_console.print(f"{note}; written to {file}", highlight=False, soft_wrap=True)
