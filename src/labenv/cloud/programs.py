"""The Pulumi programs labenv runs, chosen by the arguments' `kind`: one place that composes them.

A program is a function of its typed arguments that creates resources and returns the stack's
outputs (setting name -> value). `build(args)` gives the zero-argument callable that the
Automation API (inline program) and the mocks both run.
"""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_aws as aws
import pulumi_gcp as gcp

from labenv.cloud.aws_managed import aws_object_store, aws_postgres
from labenv.cloud.aws_sandbox import aws_sandbox
from labenv.cloud.cluster_aws import aws_cluster
from labenv.cloud.cluster_gcp import gcp_cluster
from labenv.cloud.config import AwsSettings, ClusterStackArgs, GcpSettings, ProgramArgs, SessionStackArgs
from labenv.cloud.gcp_managed import gcp_object_store, gcp_postgres
from labenv.cloud.gcp_sandbox import gcp_sandbox

Outputs = dict[str, pulumi.Input[str]]


def aws_provider(settings: AwsSettings) -> aws.Provider:
    return aws.Provider("aws", region=settings.region)


def gcp_provider(settings: GcpSettings) -> gcp.Provider:
    return gcp.Provider("gcp", project=settings.project, region=settings.region)


def _merge(outputs: Outputs, more: Outputs, part: str) -> None:
    clash = sorted(set(outputs) & set(more))
    if clash:
        raise ValueError(
            f"{part}: publishes {', '.join(clash)} already published by another part of the stack"
        )
    outputs.update(more)


def session_program(args: SessionStackArgs) -> Outputs:
    """A session's stack: managed components first (they own the plain setting names), then the sandbox."""
    outputs: Outputs = {"LABENV_CLOUD_PROVIDER": args.cloud}
    if args.cloud == "aws":
        assert args.aws is not None  # checked by SessionStackArgs
        provider = aws_provider(args.aws)
        if args.postgres:
            _merge(outputs, aws_postgres(args.postgres, args.aws, args.ownership, provider), "postgres")
        if args.object_store:
            _merge(
                outputs,
                aws_object_store(args.object_store, args.aws, args.ownership, provider),
                "object-store",
            )
        if args.sandbox:
            _merge(outputs, aws_sandbox(args.sandbox, args.aws, args.ownership, provider), "sandbox")
    else:
        assert args.gcp is not None
        gprovider = gcp_provider(args.gcp)
        if args.postgres:
            _merge(outputs, gcp_postgres(args.postgres, args.gcp, args.ownership, gprovider), "postgres")
        if args.object_store:
            _merge(
                outputs,
                gcp_object_store(args.object_store, args.gcp, args.ownership, gprovider),
                "object-store",
            )
        if args.sandbox:
            _merge(outputs, gcp_sandbox(args.sandbox, args.gcp, args.ownership, gprovider), "sandbox")
    return outputs


def cluster_program(args: ClusterStackArgs) -> Outputs:
    if args.cloud == "aws":
        if args.aws is None:
            raise ValueError("aws: settings are required for an EKS cluster")
        return aws_cluster(args, args.aws, aws_provider(args.aws))
    if args.gcp is None:
        raise ValueError("gcp: settings are required for a GKE cluster")
    return gcp_cluster(args, args.gcp, gcp_provider(args.gcp))


def build(args: ProgramArgs) -> Callable[[], Outputs]:
    """The program for `args`, as the zero-argument callable Pulumi runs."""
    if isinstance(args, SessionStackArgs):
        return lambda: session_program(args)
    return lambda: cluster_program(args)


def exporting(program: Callable[[], Outputs]) -> Callable[[], None]:
    """For the Automation API: run `program` and export each output (secrets stay secret)."""

    def run() -> None:
        for name, value in program().items():
            pulumi.export(name, value)

    return run
