"""Bad input gets a one-line error naming the field, a non-zero exit, and nothing half-created."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = pytest.mark.integration


def count_sessions(cli: Cli) -> int:
    return len(cli.get("labsessions", "-A")["items"])


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["start", "week99"], 5, "unit: 'week99' is not a unit of course 'infra-36w'"),
        (["start", "nope/week1"], 5, "course: unknown course 'nope'"),
        (["start", "week21", "--learner", "kube-system"], 2, "learner: 'kube-system' is reserved"),
        (["start", "week21", "--learner", "default"], 2, "learner: 'default' is reserved"),
        (["start", "week21", "--ttl", "0h"], 2, "ttl: '0h' must be longer than zero"),
        (["start", "week21", "--ttl", "-3h"], 2, "ttl: '-3h' is not a duration"),
        (["start", "week21", "--ttl", "400d"], 2, "ttl: '400d' is longer than the maximum"),
        (["status", "nobody-week3"], 5, "session: 'nobody-week3' not found"),
    ],
)
def test_cli_refuses_bad_input_before_writing(cli: Cli, args: list[str], code: int, message: str) -> None:
    before = count_sessions(cli)
    extra = [] if "--learner" in args else ["--learner", "zed"]
    result = cli.labenv(*args, *extra, check=False)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert count_sessions(cli) == before


def test_unreachable_cluster_is_one_line(cli: Cli, tmp_path: object) -> None:
    env = {**cli.env, "KUBECONFIG": "/nonexistent/kubeconfig"}
    result = Cli(env, cli.kubectl_path).labenv("list", check=False)
    assert result.returncode == 4
    assert len(result.stderr.strip().splitlines()) == 1


def lab_session(**spec: object) -> str:
    body = {
        "apiVersion": "labenv.io/v1alpha1",
        "kind": "LabSession",
        "metadata": {"name": str(spec.pop("name", "bad")), "namespace": SESSIONS_NAMESPACE},
        "spec": {"learner": "ada", "course": "infra-36w", "unit": "week21", **spec},
    }
    return json.dumps(body)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"learner": "Ada"}, "spec.learner"),
        ({"learner": "kube-ada"}, "spec.learner"),
        ({"ttl": "0s"}, "spec.ttl"),
        ({"ttl": "1000h"}, "spec.ttl"),
        ({"ttl": "2d"}, "spec.ttl"),
        ({"unit": ""}, "spec.unit"),
        ({"name": "x" * 60}, "metadata.name"),
    ],
)
def test_api_server_rejects_invalid_specs_naming_the_field(
    cli: Cli, spec: dict[str, object], field: str
) -> None:
    result = cli.kubectl("apply", "-f", "-", stdin=lab_session(**spec), check=False)
    assert result.returncode != 0
    assert field in result.stderr


def test_unknown_unit_applied_with_kubectl_fails_the_session_and_creates_nothing(
    cli: Cli, operator: Operator
) -> None:
    cli.kubectl("apply", "-f", "-", stdin=lab_session(name="ghost-week99", learner="ghost", unit="week99"))
    try:
        failed = cli.wait_for(
            "the Failed phase",
            lambda: (
                (cli.get("labsession", "ghost-week99", "-n", SESSIONS_NAMESPACE).get("status") or {}).get(
                    "phase"
                )
                == "Failed"
            ),
        )
        assert failed
        status = cli.get("labsession", "ghost-week99", "-n", SESSIONS_NAMESPACE)["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "InvalidEnvironment"
        assert "week99" in ready["message"]
        assert not cli.exists("namespace", "lab-ghost-week99")
    finally:
        cli.kubectl("delete", "labsession", "ghost-week99", "-n", SESSIONS_NAMESPACE)
