"""What the operator calls to give a session its cloud resources and to take them away again.

Floor: like `labenv.reconcile`, this module reads the catalog's resolved unit (floor 2) and is
called by the reconciler (floor 3); the Pulumi programs themselves know no catalog.

How the reconciler uses it (the contract)
=========================================

One Pulumi stack per LabSession, named `session.<namespace>.<name>` (`SessionKey.stack`).

On every reconcile of a live session::

    plan = cloud_plan(resolved_unit, variant)          # pure; None: nothing in the cloud
    if plan is not None:
        1. Add the finalizer `labenv.io/cloud-stack` (FINALIZER) to the LabSession BEFORE the first
           `ensure_stacks`, so a crash during `up` still ends in a destroy.
        2. Create the generated Secret first (managed postgres takes its `postgres-password`).
        3. Skip in-namespace rendering of `plan.managed` components (`plan.replaces(name)`).
        4. outputs = await ensure_stacks(runner, plan, key, owner=..., settings=..., generated=...)
           Only when `stack_fingerprint(...)` differs from the session's annotation
           `labenv.io/cloud-stack-fingerprint` (FINGERPRINT_ANNOTATION) or the outputs are not
           stored yet: an `up` takes seconds with no change and minutes with one.
        5. Put `outputs` into the connection Secret (`labenv-connection`, what `labenv creds`
           prints) over the settings of the components in `plan.managed` (same names), store the
           fingerprint, and set the condition `stack_condition(None)`:
           CloudStackReady=True (reason StackUpToDate).
        On CloudStackError (or any LabenvError): set `stack_condition(exc)` (CloudStackReady=False,
        reason StackUpdateFailed, the one-line message), keep the session Provisioning and retry
        after `retry_delay(attempt)` (e.g. `raise kopf.TemporaryError(msg, delay=retry_delay(n))`).

When the LabSession has a deletionTimestamp and still carries FINALIZER::

    1. await destroy_stacks(runner, key) BEFORE deleting the lab namespace: the namespace holds
       the outputs (and a Terminating namespace blocks new work, PKO #1181).
    2. On success: clear CloudStackDestroyFailed, delete the namespace, then remove FINALIZER
       (last; a destroy of a stack that is already gone succeeds, so a retry after a crash
       between these steps is safe).
    3. On CloudStackDestroyError: KEEP the finalizer (never drop a failed destroy: PKO #1233),
       set `destroy_failed_condition(exc)` (CloudStackDestroyFailed=True, reason DestroyFailed,
       the one-line message) and retry after `retry_delay(attempt)`. Nothing else removes it; an
       admin who cleaned up by hand removes the finalizer themselves.

`labenv doctor` calls `await list_stacks(runner)` and reports the `SessionStack`s whose session
no longer exists (`orphans(stacks, existing)`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from labenv import names
from labenv.api import Condition
from labenv.catalog.model import ResolvedUnit
from labenv.cloud import naming, services
from labenv.cloud.config import (
    Cloud,
    CloudSettings,
    ObjectStoreSpec,
    Ownership,
    PostgresSpec,
    SandboxSpec,
    SessionStackArgs,
)
from labenv.cloud.errors import CloudConfigError, CloudStackDestroyError, CloudStackError
from labenv.cloud.runner import StackRunner, first_error_line
from labenv.errors import InvalidInput, LabenvError

FINALIZER = "labenv.io/cloud-stack"
FINGERPRINT_ANNOTATION = "labenv.io/cloud-stack-fingerprint"
CONDITION_READY = "CloudStackReady"
CONDITION_DESTROY_FAILED = "CloudStackDestroyFailed"
MANAGED_COMPONENTS = ("postgres", "object-store")
IAC_TOOLS = frozenset({"terraform", "pulumi", "cdktf-cli", "python-terraform"})
SANDBOX_OUTPUTS: dict[str, tuple[str, ...]] = {
    "aws": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"),
    "gcp": ("GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "CLOUDSDK_COMPUTE_REGION"),
}
SANDBOX_PREFIX = "CLOUD_"
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 1800.0

Variant = Literal["aws", "gcp"]


class CloudPlan(BaseModel):
    """What a session needs from a cloud: a sandbox (services) and/or managed components."""

    model_config = ConfigDict(frozen=True)
    cloud: Cloud
    # Catalog service names of the sandbox; empty: no sandbox.
    sandbox_services: tuple[str, ...] = ()
    state_bucket: bool = False
    # Components provisioned in the cloud instead of the namespace, with the unit's options.
    managed: tuple[str, ...] = ()
    options: dict[str, dict[str, Any]] = {}
    # `CLOUD_` when an in-namespace or managed component already publishes the sandbox's names.
    output_prefix: str = ""
    # Cloud needs this plan does not serve (another provider, `any`), for status and `labenv catalog`.
    unserved: tuple[str, ...] = ()

    @property
    def sandbox(self) -> bool:
        return bool(self.sandbox_services)

    def replaces(self, component: str) -> bool:
        return component in self.managed


class SessionKey(BaseModel):
    """Which LabSession: its stack is `session.<namespace>.<name>`."""

    model_config = ConfigDict(frozen=True)
    namespace: str
    name: str

    @property
    def stack(self) -> str:
        return naming.session_stack(self.namespace, self.name)


class SessionOwner(BaseModel):
    """Whose resources: the owner/cohort/expiry tags (expiry is the session's expiresAt)."""

    model_config = ConfigDict(frozen=True)
    learner: str
    cohort: str = "none"
    expires_at: datetime


class SessionStack(BaseModel):
    model_config = ConfigDict(frozen=True)
    stack: str
    namespace: str
    name: str


def cloud_plan(resolved: ResolvedUnit, variant: str | None) -> CloudPlan | None:
    """The cloud part of a session, or None. Pure; errors name the unit and the field.

    - the cloud is `variant` (a session's or cohort's `variant: aws|gcp`), else the first aws/gcp
      provider among the unit's `cloud:` needs (one provider per cohort);
    - a sandbox serves that provider's needs; `variant` also moves postgres and the object store
      out of the namespace into managed services.
    """
    where = f"{resolved.course.slug}/{resolved.unit.id}"
    if variant not in (None, "aws", "gcp"):
        raise InvalidInput(f"variant: {variant!r} is not one of aws, gcp")
    needs = resolved.unit.cloud
    cloud: Cloud | None = variant or next((n.provider for n in needs if n.provider in ("aws", "gcp")), None)  # type: ignore[assignment]
    if cloud is None:
        return None
    wanted = tuple(dict.fromkeys(s for n in needs if n.provider == cloud for s in n.services))
    try:
        services.aws_prefixes(wanted) if cloud == "aws" else services.gcp_apis_and_roles(wanted)
    except CloudConfigError as exc:
        raise CloudConfigError(f"{where}: {exc}") from None
    managed = tuple(c.name for c in resolved.components if variant and c.name in MANAGED_COMPONENTS)
    if not wanted and not managed:
        return None
    options = {name: dict(resolved.options.get(name, {})) for name in managed}
    _check_managed_options(where, cloud, options)
    published = {key for c in resolved.components for key in c.settings}
    clash = bool(wanted) and bool(published & set(SANDBOX_OUTPUTS[cloud]))
    return CloudPlan(
        cloud=cloud,
        sandbox_services=wanted,
        state_bucket=bool(wanted) and bool(IAC_TOOLS & set(resolved.unit.tools)),
        managed=managed,
        options=options,
        output_prefix=SANDBOX_PREFIX if clash else "",
        unserved=tuple(f"{n.provider}: {', '.join(n.services)}" for n in needs if n.provider != cloud),
    )


def _check_managed_options(where: str, cloud: Cloud, options: dict[str, dict[str, Any]]) -> None:
    store = options.get("object-store", {})
    if store.get("table_buckets"):
        raise InvalidInput(
            f"{where}: components.object-store.table_buckets: the managed ({cloud}) object store has no "
            "Iceberg catalog compatible with the in-cluster one; use the in-cluster variant"
        )
    postgres = options.get("postgres", {})
    if cloud == "aws" and postgres.get("extra_databases"):
        raise InvalidInput(
            f"{where}: components.postgres.extra_databases: RDS creates one database only; use the "
            "in-cluster or the gcp variant"
        )
    preload = set(postgres.get("preload_libraries") or ())
    if cloud == "gcp" and preload - {"pg_stat_statements"}:
        raise InvalidInput(
            f"{where}: components.postgres.preload_libraries: Cloud SQL preloads pg_stat_statements only"
        )


def stack_args(
    plan: CloudPlan,
    key: SessionKey,
    owner: SessionOwner,
    settings: CloudSettings,
    generated: dict[str, str],
) -> SessionStackArgs:
    """The program arguments of a session's stack (validated: settings missing -> one-line error)."""
    ownership = Ownership(
        owner=owner.learner,
        cohort=owner.cohort,
        expiry=owner.expires_at,
        session=f"{key.namespace}.{key.name}",
    )
    postgres = None
    if plan.replaces("postgres"):
        secret_key = names.generated_key("postgres", "password")
        if not generated.get(secret_key):
            raise CloudStackError(f"stack {key.stack}: the generated Secret has no {secret_key!r} yet")
        opts = plan.options.get("postgres", {})
        postgres = PostgresSpec(
            database=opts.get("database", "lab"),
            extra_databases=tuple(opts.get("extra_databases") or ()),
            preload_libraries=tuple(opts.get("preload_libraries") or ()),
            password=SecretStr(generated[secret_key]),
        )
    store = None
    if plan.replaces("object-store"):
        store = ObjectStoreSpec(buckets=tuple(plan.options.get("object-store", {}).get("buckets") or ()))
    sandbox = None
    if plan.sandbox:
        sandbox = SandboxSpec(
            services=plan.sandbox_services, state_bucket=plan.state_bucket, output_prefix=plan.output_prefix
        )
    try:
        return SessionStackArgs(
            cloud=plan.cloud,
            ownership=ownership,
            sandbox=sandbox,
            postgres=postgres,
            object_store=store,
            aws=settings.aws if plan.cloud == "aws" else None,
            gcp=settings.gcp if plan.cloud == "gcp" else None,
        )
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise CloudConfigError(f"stack {key.stack}: cloud settings: {message}") from None


def stack_fingerprint(args: SessionStackArgs) -> str:
    """A hash of everything the stack's resources depend on; store it and re-run `up` when it changes."""
    data = args.model_dump(mode="json")
    if args.postgres is not None:  # the password is generated once and never changes: hash its hash
        data["postgres"]["password"] = hashlib.sha256(
            args.postgres.password.get_secret_value().encode()
        ).hexdigest()
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


async def ensure_stacks(
    runner: StackRunner,
    plan: CloudPlan,
    key: SessionKey,
    *,
    owner: SessionOwner,
    settings: CloudSettings,
    generated: dict[str, str],
) -> dict[str, str]:
    """Create or update the session's stack; returns its outputs (setting name -> value) for its Secret.

    Raises CloudStackError (one line) on failure; the stack may be partly created: retry later.
    """
    args = stack_args(plan, key, owner, settings, generated)
    try:
        return await asyncio.to_thread(runner.up, key.stack, args)
    except LabenvError:
        raise
    except Exception as exc:
        raise CloudStackError(
            f"stack {key.stack}: up failed: {first_error_line(str(exc) or repr(exc))}"
        ) from exc


async def destroy_stacks(runner: StackRunner, key: SessionKey) -> None:
    """Destroy the session's stack (and remove it); a stack that does not exist is already destroyed.

    Raises CloudStackDestroyError (one line) when the cloud resources may still exist: the caller
    must keep the session's finalizer and retry.
    """
    try:
        await asyncio.to_thread(runner.destroy, key.stack)
    except CloudStackDestroyError:
        raise
    except Exception as exc:
        message = first_error_line(str(exc) or repr(exc))
        raise CloudStackDestroyError(f"stack {key.stack}: destroy failed: {message}") from exc


async def list_stacks(runner: StackRunner) -> list[SessionStack]:
    """The session stacks in the backend (other stacks, such as clusters, are left out)."""
    found = await asyncio.to_thread(runner.list_stacks)
    stacks = []
    for stack in found:
        parsed = naming.parse_session_stack(stack)
        if parsed is not None:
            stacks.append(SessionStack(stack=stack, namespace=parsed[0], name=parsed[1]))
    return stacks


def orphans(stacks: list[SessionStack], existing: set[tuple[str, str]]) -> list[SessionStack]:
    """Stacks whose (namespace, name) LabSession no longer exists: cloud resources nobody will destroy."""
    return [s for s in stacks if (s.namespace, s.name) not in existing]


def retry_delay(attempt: int) -> float:
    """Seconds before retry `attempt` (0-based): 30 s doubling to at most 30 minutes."""
    return float(min(RETRY_BASE_SECONDS * 2.0 ** max(attempt, 0), RETRY_MAX_SECONDS))


def stack_condition(error: Exception | None, generation: int = 0) -> Condition:
    if error is None:
        return Condition(
            type=CONDITION_READY,
            status="True",
            reason="StackUpToDate",
            message="cloud resources are up to date",
            observed_generation=generation,
        )
    return Condition(
        type=CONDITION_READY,
        status="False",
        reason="StackUpdateFailed",
        message=str(error),
        observed_generation=generation,
    )


def destroy_failed_condition(error: Exception | None, generation: int = 0) -> Condition:
    """CloudStackDestroyFailed: True with the message while a destroy keeps failing, False once done."""
    if error is None:
        return Condition(
            type=CONDITION_DESTROY_FAILED, status="False", reason="Destroyed", observed_generation=generation
        )
    return Condition(
        type=CONDITION_DESTROY_FAILED,
        status="True",
        reason="DestroyFailed",
        message=f"{error} (the finalizer {FINALIZER} stays until a destroy succeeds)",
        observed_generation=generation,
    )
