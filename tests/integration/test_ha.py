"""Two operator replicas do not fight: Kopf peering keeps one active, and the other takes over."""

from __future__ import annotations

import pytest

from tests.integration.conftest import SESSIONS_NAMESPACE, Cli, Operator

pytestmark = pytest.mark.integration


def test_standby_replica_takes_over_when_the_active_one_stops(
    cli: Cli, operator: Operator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    operator.stop()  # the shared standalone operator would not take part in peering
    logs = tmp_path_factory.mktemp("ha")
    active = Operator(
        {
            **operator.env,
            "LABENV_PEERING": "labenv",
            "LABENV_PEERING_PRIORITY": "200",
            "LABENV_METRICS_PORT": "0",
        },
        logs / "active.log",
    )
    standby = Operator(
        {
            **operator.env,
            "LABENV_PEERING": "labenv",
            "LABENV_PEERING_PRIORITY": "100",
            "LABENV_METRICS_PORT": "0",
        },
        logs / "standby.log",
    )
    try:
        active.start()
        standby.start()
        cli.wait_for(
            "the standby to pause",
            lambda: "Pausing operations in favour of" in standby.log.read_text(),
            timeout=60,
        )
        cli.labenv("start", "week1", "--learner", "hana", "--wait", "--timeout", "120")

        active.stop()
        cli.wait_for(
            "the standby to resume", lambda: "Resuming operations" in standby.log.read_text(), timeout=90
        )
        cli.labenv("start", "week1", "--learner", "hugo", "--wait", "--timeout", "120")
        cli.labenv("stop", "hana-week1", "--wait")
        assert not cli.exists("namespace", "lab-hana-week1")
        assert cli.exists("labsession", "hugo-week1", "-n", SESSIONS_NAMESPACE)
        cli.labenv("stop", "hugo-week1", "--wait")
    finally:
        active.stop()
        standby.stop()
        operator.start()
