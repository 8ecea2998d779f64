"""Run a real program offline under `pulumi.runtime.set_mocks` and record what it would create.

`FakeCloud` answers every resource registration with its inputs plus the outputs the cloud would
compute (ARNs, endpoints, keys: fake, deterministic values) and records the inputs it was given,
so tests and `--dry-run` see exactly what the program asks the cloud for. Each run happens on its
own thread in a fresh context (Pulumi keeps its settings in context variables), one at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs
from pulumi.runtime.stack import register_stack_transformation, run_pulumi_func

ACCOUNT = "123456789012"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class MockResource:
    token: str
    name: str
    inputs: dict[str, Any]
    custom: bool
    # The Python class that registered it (from a stack transformation), for tag-ability checks.
    cls: type | None = None


@dataclass
class MockRun:
    resources: list[MockResource]
    outputs: dict[str, str]
    secrets: frozenset[str] = field(default_factory=frozenset)

    def of_type(self, token: str) -> list[MockResource]:
        return [r for r in self.resources if r.token == token]

    def one(self, token: str) -> MockResource:
        found = self.of_type(token)
        if len(found) != 1:
            raise AssertionError(f"expected one {token}, found {len(found)}")
        return found[0]

    def summary(self) -> list[tuple[str, int]]:
        """(resource type, count), in first-seen order: the resource graph at a glance."""
        return list(Counter(r.token for r in self.resources if r.custom).items())


def _fake_id(*parts: str, length: int = 16) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class FakeCloud(pulumi.runtime.Mocks):
    """Deterministic fake outputs for the resource types labenv's programs use."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, str, dict[str, Any], bool]] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        inputs = dict(args.inputs)
        self.registered.append((args.typ, args.name, inputs, bool(args.custom)))
        state = {**inputs, **self._computed(args.typ, args.name, inputs)}
        state.setdefault("name", args.name)
        return state.pop("__id", f"{args.name}-id"), state

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {
                "names": ["mock-1a", "mock-1b", "mock-1c"],
                "zoneIds": ["z1", "z2", "z3"],
                "id": "zones",
            }, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/admin",
                "userId": "A",
                "id": "me",
            }, []
        return {}, []

    @staticmethod
    def _computed(token: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        given = str(inputs.get("name") or name)
        if token in ("aws:iam/policy:Policy", "aws:iam/user:User", "aws:iam/role:Role"):
            kind = token.rsplit(":", maxsplit=1)[-1].lower()
            return {"arn": f"arn:aws:iam::{ACCOUNT}:{kind}{inputs.get('path', '/')}{given}"}
        if token == "aws:iam/accessKey:AccessKey":
            return {
                "__id": "AKIA" + _fake_id(name).upper(),
                "secret": "mock-secret-" + _fake_id(name, "s", length=24),
            }
        if token == "aws:s3/bucket:Bucket":
            return {"__id": inputs["bucket"], "arn": f"arn:aws:s3:::{inputs['bucket']}"}
        if token == "aws:rds/instance:Instance":
            address = f"{inputs['identifier']}.mock.rds.amazonaws.com"
            return {"address": address, "port": 5432, "endpoint": f"{address}:5432"}
        if token == "aws:eks/cluster:Cluster":
            ca = base64.b64encode(b"mock-ca").decode()
            return {
                "endpoint": f"https://{_fake_id(given)}.mock.eks.amazonaws.com",
                "certificateAuthority": {"data": ca},
            }
        if token == "gcp:organizations/project:Project":
            return {"number": str(int(_fake_id(given, length=8), 16))}
        if token == "gcp:serviceaccount/account:Account":
            email = f"{inputs['accountId']}@{inputs.get('project', 'mock')}.iam.gserviceaccount.com"
            return {
                "email": email,
                "name": f"projects/{inputs.get('project', 'mock')}/serviceAccounts/{email}",
            }
        if token == "gcp:serviceaccount/key:Key":
            key = {"type": "service_account", "client_email": "mock", "private_key": "mock"}
            return {"privateKey": base64.b64encode(json.dumps(key).encode()).decode()}
        if token == "gcp:storage/hmacKey:HmacKey":
            return {
                "accessId": "GOOG1E" + _fake_id(name).upper(),
                "secret": "mock-secret-" + _fake_id(name, "s"),
            }
        if token == "gcp:sql/databaseInstance:DatabaseInstance":
            return {"privateIpAddress": "10.99.0.5", "connectionName": f"mock:region:{given}"}
        if token == "gcp:container/cluster:Cluster":
            ca = base64.b64encode(b"mock-ca").decode()
            return {"endpoint": "203.0.113.10", "masterAuth": {"clusterCaCertificate": ca}}
        if token.startswith("aws:"):
            return {"arn": f"arn:aws:{token.split(':')[1].split('/', maxsplit=1)[0]}::{ACCOUNT}:{given}"}
        return {}


def run_under_mocks(program: Callable[[], Mapping[str, Any]], stack: str, project: str = "labenv") -> MockRun:
    """Run `program` as an `up` would, offline; returns the resources it registered and its outputs."""
    result: dict[str, Any] = {}
    failure: list[BaseException] = []

    def body() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        cloud = FakeCloud()
        classes: dict[tuple[str, str], type] = {}
        try:
            pulumi.runtime.set_mocks(cloud, project=project, stack=stack, preview=False)

            def remember(args: pulumi.ResourceTransformationArgs) -> None:
                classes[(args.type_, args.name)] = type(args.resource)

            register_stack_transformation(remember)

            async def main() -> None:
                outputs = dict(program())
                secret = await asyncio.gather(
                    *(pulumi.Output.from_input(v).is_secret() for v in outputs.values())
                )
                values = await pulumi.Output.all(*outputs.values()).future()
                result["outputs"] = {
                    k: "" if v is None else str(v) for k, v in zip(outputs, values or [], strict=True)
                }
                result["secrets"] = frozenset(k for k, s in zip(outputs, secret, strict=True) if s)

            loop.run_until_complete(run_pulumi_func(main))
            result["resources"] = [
                MockResource(typ, name, inputs, custom, classes.get((typ, name)))
                for typ, name, inputs, custom in cloud.registered
            ]
        except BaseException as exc:  # re-raised on the caller's thread
            failure.append(exc)
        finally:
            loop.close()

    with _LOCK:
        thread = threading.Thread(target=lambda: contextvars.Context().run(body), name=f"pulumi-mock-{stack}")
        thread.start()
        thread.join()
    if failure:
        raise failure[0]
    return MockRun(resources=result["resources"], outputs=result["outputs"], secrets=result["secrets"])
