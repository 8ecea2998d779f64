"""Two peered replicas of the operator: one works, the other waits; when the active one dies
(kill -9, no goodbye), the standby takes over once the dead one's peering record expires."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labenv.install import PEERING
from tests.integration.conftest import Cli, Operator, free_port

# Kopf starts every replica paused until it has read the peering object, and logs transitions only:
# a replica that starts second, below a higher priority, stays paused without a word.
RESUMED = "Resuming operations after the pause"


def replica(base: Operator, priority: int, log: Path) -> Operator:
    env = {
        **base.env,
        "LABENV_PEERING": PEERING,
        "LABENV_PEERING_PRIORITY": str(priority),
        "LABENV_METRICS_PORT": str(free_port()),
    }
    return Operator(env, log)


def session_writes(op: Operator) -> float:
    """Status writes this replica made to LabSessions (its metrics, read while it runs)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in op.metrics().splitlines()
        if line.startswith("labenv_api_requests_total{") and 'resource="labsessions/status"' in line
    )


def priorities(cli: Cli) -> list[int]:
    """Priorities of the replicas recorded in the peering object."""
    status: dict[str, Any] = cli.get("clusterkopfpeering", PEERING).get("status") or {}
    return [p["priority"] for p in status.values() if isinstance(p, dict)]


def logged(op: Operator, text: str) -> bool:
    return text in op.log.read_text(errors="replace")


@pytest.fixture
def replicas(cli: Cli, operator: Operator, tmp_path: Path) -> Iterator[tuple[Operator, Operator]]:
    """The suite's standalone operator steps aside (it ignores peering and would work beside them)."""
    operator.stop()
    active = replica(operator, 200, tmp_path / "active.log")
    standby = replica(operator, 100, tmp_path / "standby.log")
    try:
        active.start()
        cli.wait_for("the active replica's peering record", lambda: 200 in priorities(cli))
        standby.start()
        cli.wait_for("the standby's peering record", lambda: 100 in priorities(cli), timeout=90)
        yield active, standby
    finally:
        active.stop()
        standby.stop()
        operator.start()


def test_only_the_active_replica_works_and_the_standby_takes_over_after_a_kill(
    cli: Cli, replicas: tuple[Operator, Operator]
) -> None:
    active, standby = replicas
    cli.labenv("start", "week5", "--learner", "hana", "--wait", "--timeout", "180")
    assert session_writes(active) > 0
    assert session_writes(standby) == 0, "the paused replica wrote a session's status"

    active.kill()  # its record stays until the peering lifetime (30 s) runs out
    cli.wait_for("the standby to resume", lambda: logged(standby, RESUMED), timeout=120)
    out = cli.labenv("start", "week5", "--learner", "hiro", "--wait", "--timeout", "180", "--output", "json")
    assert json.loads(out.stdout)["status"]["phase"] == "Ready"
    assert session_writes(standby) > 0

    for learner in ("hana", "hiro"):
        cli.labenv("stop", f"{learner}-week5", "--wait")
