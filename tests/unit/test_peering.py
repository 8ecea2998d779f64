"""Which replica sweeps: the one Kopf's peering lets run, by the records in the peering object."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from labenv.controller.peering import leads

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def record(priority: int, seen_ago: float, lifetime: int = 30) -> dict[str, object]:
    return {
        "priority": priority,
        "lifetime": lifetime,
        "lastseen": (NOW - timedelta(seconds=seen_ago)).isoformat(),
    }


def test_the_highest_live_priority_leads_and_the_others_wait() -> None:
    peers = {"a": record(200, 5), "b": record(100, 5)}
    assert leads(peers, 200, NOW)
    assert not leads(peers, 100, NOW)


def test_a_replica_that_stopped_renewing_its_record_no_longer_blocks_after_its_lifetime() -> None:
    peers = {"a": record(200, 31), "b": record(100, 5)}
    assert leads(peers, 100, NOW)


def test_a_record_removed_on_shutdown_does_not_count() -> None:
    peers = {"a": record(200, 0, lifetime=0), "b": record(100, 5)}
    assert leads(peers, 100, NOW)


def test_equal_priorities_pause_both_as_kopf_does() -> None:
    peers = {"a": record(100, 5), "b": record(100, 5)}
    assert not leads(peers, 100, NOW)


def test_alone_or_before_the_first_record_it_leads() -> None:
    assert leads({}, 100, NOW)
    assert leads({"a": record(100, 1)}, 100, NOW)
