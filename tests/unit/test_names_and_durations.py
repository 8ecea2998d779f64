from __future__ import annotations

from datetime import timedelta

import pytest

from labenv import api, names
from labenv.errors import InvalidInput


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Ada.Lovelace", "ada-lovelace"), ("  bob__99 ", "bob-99"), ("ÉMILE", "mile"), ("a" * 60, "a" * 40)],
)
def test_user_names_become_dns_labels(raw: str, expected: str) -> None:
    assert names.normalise_learner(raw) == expected


@pytest.mark.parametrize(
    ("learner", "complaint"),
    [
        ("", "must not be empty"),
        ("Ada", "not a DNS-1123 label"),
        ("-ada", "not a DNS-1123 label"),
        ("default", "reserved"),
        ("kube-system", "reserved"),
        ("a" * 41, "longer than 40"),
    ],
)
def test_bad_learner_names_are_refused_with_the_field_named(learner: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=f"^learner: .*{complaint}"):
        names.check_learner(learner)


def test_session_names_are_short_for_the_default_course_and_scoped_otherwise() -> None:
    assert names.session_name("ada", "infra-36w", "week21", "infra-36w") == "ada-week21"
    assert names.session_name("ada", "backend-ai-60d", "week2", "infra-36w") == "ada-backend-ai-60d-week2"
    assert names.lab_namespace("ada-week21") == "lab-ada-week21"
    assert names.condition_type("schema-registry") == "SchemaRegistryReady"


@pytest.mark.parametrize(
    ("text", "hours"), [("8h", 8), ("90m", 1.5), ("2d", 48), ("1h30m", 1.5), ("30d", 720)]
)
def test_durations_parse(text: str, hours: float) -> None:
    assert api.parse_duration(text) == timedelta(hours=hours)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("0h", "longer than zero"),
        ("-1h", "not a duration"),
        ("31d", "maximum"),
        ("8 hours", "not a duration"),
        ("", "not a"),
    ],
)
def test_bad_durations_name_the_field(text: str, complaint: str) -> None:
    with pytest.raises(InvalidInput, match=f"^ttl: .*{complaint}"):
        api.parse_duration(text)


def test_durations_are_stored_in_the_form_the_crd_accepts() -> None:
    assert api.format_duration(timedelta(days=2)) == "48h"
    assert api.format_duration(timedelta(minutes=90)) == "1h30m"
