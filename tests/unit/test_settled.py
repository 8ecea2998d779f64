"""When `labenv start --wait` may stop waiting: the status must speak of the current spec."""

from __future__ import annotations

from typing import Any

import pytest

from labenv.sessions import settled


def session(phase: str | None, generation: int, observed: int | None) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase:
        status["phase"] = phase
    if observed is not None:
        status["observedGeneration"] = observed
    return {"metadata": {"name": "ada-week21", "generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("phase", "generation", "observed", "expected"),
    [
        ("Ready", 1, 1, True),
        ("Failed", 2, 2, True),
        ("Ready", 2, 1, False),  # just claimed from the warm pool or advanced: old Ready
        ("Provisioning", 1, 1, False),
        (None, 1, None, False),  # the operator has not looked yet
    ],
)
def test_settled_only_for_the_current_spec(
    phase: str | None, generation: int, observed: int | None, expected: bool
) -> None:
    assert settled(session(phase, generation, observed)) is expected
