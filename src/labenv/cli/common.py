"""Options and plumbing every command shares, so flags mean the same everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer

from labenv.cli.output import Output
from labenv.kube.client import Kube

T = TypeVar("T")

OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="Output format.")]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", envvar="LABENV_NAMESPACE", help="Namespace holding LabSessions.")
]
KubeconfigOpt = Annotated[
    str | None,
    typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (as kubectl finds it)."),
]
LearnerOpt = Annotated[
    str | None, typer.Option("--learner", "-l", help="Learner name (default: your user name, normalised).")
]


def with_kube(fn: Callable[..., Coroutine[Any, Any, T]], kubeconfig: str | None, *args: Any) -> T:
    """Run one command's API work on a fresh connection, closed afterwards."""

    async def go() -> T:
        async with await Kube.connect(kubeconfig) as kube:
            return await fn(kube, *args)

    return asyncio.run(go())
