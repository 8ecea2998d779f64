"""The instructor flow on the local cluster: plan, apply, status, advance (upgrade in place),
extend, warm-pool claim, reset, delete; and cohort files that are refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = pytest.mark.integration


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def cohort(cli: Cli, name: str) -> dict[str, Any]:
    data: dict[str, Any] = cli.get("labcohort", name, "-n", SESSIONS_NAMESPACE)
    return data


def generated(cli: Cli, namespace: str) -> dict[str, str]:
    raw = cli.get("secret", "labenv-generated", "-n", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in raw.items()}


def test_instructor_flow(cli: Cli, operator: Operator, tmp_path: Path) -> None:
    write(tmp_path, "learners.csv", "learner\nann\nben\n")
    spec = write(
        tmp_path,
        "c1.yaml",
        "name: c1\ncourse: infra-36w\nunit: week19\nlearnersFile: learners.csv\n"
        "ttl: 8h\nwarmPool: 1\nlimits: {maxTtl: 12h}\n",
    )

    plan = json.loads(cli.labenv("cohort", "plan", str(spec), "--output", "json").stdout)
    assert plan["fits"] is True
    assert plan["sessions"] == 3

    applied = json.loads(cli.labenv("cohort", "apply", str(spec), "--output", "json", timeout=600).stdout)
    assert applied["status"]["phase"] == "Ready"
    assert (applied["status"]["ready"], applied["status"]["warm"]) == (2, 1)
    members = cli.get("labsessions", "-n", SESSIONS_NAMESPACE, "-l", "labenv.io/cohort=c1")["items"]
    assert sorted(m["metadata"]["name"] for m in members) == ["c1-ann", "c1-ben", "c1-pool-0"]
    assert all(m["metadata"]["ownerReferences"][0]["name"] == "c1" for m in members)
    shown = json.loads(cli.labenv("cohort", "status", "c1", "--output", "json").stdout)
    assert shown["status"]["phases"] == {"Ready": 2}

    # advance in place: postgres stays (same volume, same password), airflow joins
    claim_before = cli.get("pvc", "data-postgres-0", "-n", "lab-c1-ann")["metadata"]["uid"]
    secrets_before = generated(cli, "lab-c1-ann")
    advanced = json.loads(
        cli.labenv("cohort", "advance", "c1", "--to", "week20", "--output", "json", timeout=900).stdout
    )
    assert advanced["status"]["phase"] == "Ready"
    assert advanced["status"]["unit"] == "week20"
    ann = cli.get("labsession", "c1-ann", "-n", SESSIONS_NAMESPACE)
    assert ann["status"]["components"] == ["postgres", "airflow", "workspace"]
    assert cli.get("pvc", "data-postgres-0", "-n", "lab-c1-ann")["metadata"]["uid"] == claim_before
    after = generated(cli, "lab-c1-ann")
    assert {k: v for k, v in after.items() if k in secrets_before} == secrets_before

    # and on to a unit without postgres: its objects go, its volume stays, kafka arrives
    cli.labenv("cohort", "advance", "c1", "--to", "week21", timeout=900)
    assert not cli.exists("statefulset", "postgres", "-n", "lab-c1-ann")
    assert cli.exists("pvc", "data-postgres-0", "-n", "lab-c1-ann")
    assert cli.exists("statefulset", "kafka", "-n", "lab-c1-ann")

    # extend within the cohort maximum, and not beyond
    cli.labenv("cohort", "extend", "c1", "--by", "2h")
    assert cohort(cli, "c1")["spec"]["ttl"] == "10h"
    refused = cli.labenv("cohort", "extend", "c1", "--by", "5h", check=False)
    assert refused.returncode == 2
    assert "beyond the cohort's maximum of 12h" in refused.stderr
    learner_refused = cli.labenv("extend", "c1-ben", "--by", "3h", check=False)
    assert learner_refused.returncode == 2
    assert "beyond the maximum of 12h" in learner_refused.stderr

    # a walk-in learner gets the warm session, and the pool is refilled
    claimed = json.loads(
        cli.labenv("start", "week21", "--learner", "cid", "--wait", "--output", "json").stdout
    )
    assert claimed["metadata"]["name"] == "c1-pool-0"
    assert claimed["spec"]["learner"] == "cid"
    assert claimed["status"]["phase"] == "Ready"
    cli.wait_for(
        "the pool to be refilled", lambda: cli.exists("labsession", "c1-pool-1", "-n", SESSIONS_NAMESPACE)
    )

    # delete: every session and namespace goes
    cli.labenv("cohort", "delete", "c1")
    for ns in ("lab-c1-ann", "lab-c1-ben", "lab-c1-pool-0", "lab-c1-pool-1"):
        cli.wait_for(f"{ns} to go", lambda ns=ns: not cli.exists("namespace", ns), timeout=120)


def test_reset_recreates_a_component_with_a_fresh_volume(cli: Cli, operator: Operator) -> None:
    cli.labenv("start", "week5", "--learner", "rex", "--wait")
    old = cli.get("pvc", "data-postgres-0", "-n", "lab-rex-week5")["metadata"]["uid"]
    password = generated(cli, "lab-rex-week5")["postgres-password"]
    reset = json.loads(cli.labenv("reset", "rex-week5", "postgres", "--output", "json", timeout=300).stdout)
    assert reset["status"]["phase"] == "Ready"
    assert cli.get("pvc", "data-postgres-0", "-n", "lab-rex-week5")["metadata"]["uid"] != old
    assert generated(cli, "lab-rex-week5")["postgres-password"] == password
    cli.labenv("stop", "rex-week5")


@pytest.mark.parametrize(
    ("body", "csv", "message"),
    [
        ("name: bad\nunit: week21\nlearners: [ann, ann]\n", None, "learners: listed more than once: ann"),
        ("name: bad\nunit: week21\nlearners: [Ann]\n", None, "'Ann' is not a DNS-1123 label"),
        ("name: bad\nunit: week99\nlearners: [ann]\n", None, "unit: 'week99' is not a unit"),
        ("name: bad\nunit: week21\nlearners: []\n", None, "learners: the list is empty"),
        (
            "name: bad\nunit: week21\nlearnersFile: l.csv\n",
            "ann\nbob\nann\n",
            "l.csv line 3: learner 'ann' is already",
        ),
        (
            "name: bad\nunit: week21\nlearnersFile: l.csv\n",
            "ann\nkube-x\n",
            "l.csv line 2: learner: 'kube-x' is reserved",
        ),
        (
            "name: Bad_Name\nunit: week21\nlearners: [ann]\n",
            None,
            "name: 'Bad_Name' must be a DNS-1123 label",
        ),
        ("name: bad\nunit: week21\nlearners: [ann]\nttl: 0h\n", None, "ttl: '0h' must be longer than zero"),
    ],
)
def test_bad_cohort_files_change_nothing(
    cli: Cli, tmp_path: Path, body: str, csv: str | None, message: str
) -> None:
    if csv is not None:
        write(tmp_path, "l.csv", csv)
    result = cli.labenv("cohort", "apply", str(write(tmp_path, "bad.yaml", body)), check=False)
    # 5 for an unknown unit (not found), 2 for every other bad input
    assert result.returncode == (5 if "week99" in body else 2), result.stderr
    assert message in result.stderr
    assert not cli.exists("labcohort", "bad", "-n", SESSIONS_NAMESPACE)


def test_advance_to_another_course_and_foreign_cohorts_are_refused(
    cli: Cli, operator: Operator, tmp_path: Path
) -> None:
    spec = write(tmp_path, "own.yaml", "name: own\nunit: week1\nlearners: [olga]\ninstructor: alice\n")
    cli.labenv("cohort", "apply", str(spec), "--no-wait")
    other = cli.labenv("cohort", "advance", "own", "--to", "backend-ai-60d/week2", "--no-wait", check=False)
    assert other.returncode == 2
    assert "not in the cohort's course 'infra-36w'" in other.stderr
    theirs = write(tmp_path, "theirs.yaml", "name: own\nunit: week1\nlearners: [olga]\ninstructor: bob\n")
    taken = cli.labenv("cohort", "apply", str(theirs), "--no-wait", check=False)
    assert taken.returncode == 2
    assert "belongs to instructor 'alice'" in taken.stderr
    cli.labenv("cohort", "delete", "own")
