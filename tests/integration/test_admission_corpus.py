"""Admission-time validation: the CRD schemas and their CEL rules refuse malformed objects, naming the
field, before anything is stored, so nothing is ever provisioned from them.

The corpus is a list of `Case(kind, body, field)`: hand-picked edge cases plus hypothesis-generated
values for each constrained field (deterministic: derandomized, a fixed number of examples). Every
object is sent as `kubectl apply --server-side` would send it; LabCohort cases run when its CRD is in
the chart.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from labenv.install import crds_dir
from tests.integration.conftest import SESSIONS_NAMESPACE, Cli

pytestmark = pytest.mark.integration

COHORT_CRD = Path(crds_dir()) / "labcohorts.labenv.io.yaml"
HAS_COHORTS = COHORT_CRD.exists()
# The cloud variant (spec.variant) is newer than the rest of the schema.
HAS_VARIANTS = "variant:" in (Path(crds_dir()) / "labsessions.labenv.io.yaml").read_text()
GENERATED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=20,
    # No shrinking: a refused-value test that fails reports the value as generated, and CI time stays
    # bounded (each example is an API request).
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SLUG = re.compile(r"[a-z][a-z0-9-]*[a-z0-9]")
TTL = re.compile(r"([0-9]+(s|m|h))+")
RESERVED = {"default", "kube", "system", "labenv"}
RESERVED_PREFIXES = ("kube-", "openshift-", "system-")
MAX_TTL_SECONDS = 720 * 3600
_names = itertools.count()
# Valid for the schema but in no course: should a case be admitted by mistake, the operator marks it
# Failed and provisions nothing, so one admission bug cannot disturb the rest of the test run.
UNIT = "week99"


@dataclass(frozen=True)
class Case:
    kind: str
    body: dict[str, Any]
    field: str  # what the refusal must name
    label: str = ""
    # For CEL transition rules: this (valid) object is stored first, `body` is the refused change.
    before: dict[str, Any] | None = None


@dataclass
class Tally:
    """Distinct cases sent and refused (hypothesis replays a failing example: counted once)."""

    tried: set[tuple[str, str, str]] = field(default_factory=set)
    refused: set[tuple[str, str, str]] = field(default_factory=set)
    names: set[tuple[str, str]] = field(default_factory=set)


TALLY = Tally()


def fresh_name(prefix: str = "corpus") -> str:
    return f"{prefix}-{next(_names)}"


def session(spec: Any = None, name: str | None = None, **changes: Any) -> dict[str, Any]:
    base = {"learner": "corpus", "course": "infra-36w", "unit": UNIT, "ttl": "8h"}
    body_spec = {**base, **changes} if spec is None else spec
    return {
        "apiVersion": "labenv.io/v1alpha1",
        "kind": "LabSession",
        "metadata": {"name": name or fresh_name(), "namespace": SESSIONS_NAMESPACE},
        "spec": body_spec,
    }


def cohort(spec: Any = None, name: str | None = None, **changes: Any) -> dict[str, Any]:
    base = {"course": "infra-36w", "unit": UNIT, "learners": ["corpus"], "ttl": "8h"}
    body_spec = {**base, **changes} if spec is None else spec
    return {
        "apiVersion": "labenv.io/v1alpha1",
        "kind": "LabCohort",
        "metadata": {"name": name or fresh_name("cc"), "namespace": SESSIONS_NAMESPACE},
        "spec": body_spec,
    }


def without(body: dict[str, Any], key: str) -> dict[str, Any]:
    result = copy.deepcopy(body)
    result["spec"].pop(key)
    return result


# --- what is valid (mirrors the CRDs; a generated value that is valid after all is filtered out) ---


def valid_learner(s: str) -> bool:
    return (
        1 <= len(s) <= 40
        and LABEL.fullmatch(s) is not None
        and s not in RESERVED
        and not s.startswith(RESERVED_PREFIXES)
    )


def valid_slug(s: str) -> bool:
    return 2 <= len(s) <= 24 and SLUG.fullmatch(s) is not None


def valid_ttl(s: str) -> bool:
    if len(s) > 16 or not TTL.fullmatch(s):
        return False
    seconds = sum(int(n) * {"s": 1, "m": 60, "h": 3600}[u] for n, u in re.findall(r"([0-9]+)(s|m|h)", s))
    return 0 < seconds <= MAX_TTL_SECONDS


def valid_session_name(s: str) -> bool:
    return 1 <= len(s) <= 59 and LABEL.fullmatch(s) is not None


# --- hand-picked cases ----------------------------------------------------------------------------

SESSION_CASES: list[Case] = [
    # learner
    Case("LabSession", session(learner="Ada"), "spec.learner", "upper case"),
    Case("LabSession", session(learner="-ada"), "spec.learner", "leading dash"),
    Case("LabSession", session(learner="ada-"), "spec.learner", "trailing dash"),
    Case("LabSession", session(learner="a_da"), "spec.learner", "underscore"),
    Case("LabSession", session(learner="a.da"), "spec.learner", "dot"),
    Case("LabSession", session(learner="ada lovelace"), "spec.learner", "space"),
    Case("LabSession", session(learner="adä"), "spec.learner", "non-ASCII"),
    Case("LabSession", session(learner=""), "spec.learner", "empty"),
    Case("LabSession", session(learner="a" * 41), "spec.learner", "41 characters"),
    Case("LabSession", session(learner="default"), "spec.learner", "reserved default"),
    Case("LabSession", session(learner="kube"), "spec.learner", "reserved kube"),
    Case("LabSession", session(learner="system"), "spec.learner", "reserved system"),
    Case("LabSession", session(learner="labenv"), "spec.learner", "reserved labenv"),
    Case("LabSession", session(learner="kube-system"), "spec.learner", "kube- prefix"),
    Case("LabSession", session(learner="openshift-ada"), "spec.learner", "openshift- prefix"),
    Case("LabSession", session(learner="system-ada"), "spec.learner", "system- prefix"),
    Case("LabSession", session(learner=42), "spec.learner", "a number"),
    Case("LabSession", session(learner=["ada"]), "spec.learner", "a list"),
    Case("LabSession", session(learner={"name": "ada"}), "spec.learner", "an object"),
    Case("LabSession", session(learner=True), "spec.learner", "a boolean"),
    # course and unit
    Case("LabSession", session(course="Infra-36w"), "spec.course", "course upper case"),
    Case("LabSession", session(course="36w"), "spec.course", "course starts with a digit"),
    Case("LabSession", session(course="x"), "spec.course", "course of 1 character"),
    Case("LabSession", session(course="c" * 25), "spec.course", "course of 25 characters"),
    Case("LabSession", session(course="infra/36w"), "spec.course", "course with a slash"),
    Case("LabSession", session(course=36), "spec.course", "course a number"),
    Case("LabSession", session(unit=""), "spec.unit", "unit empty"),
    Case("LabSession", session(unit="Week5"), "spec.unit", "unit upper case"),
    Case("LabSession", session(unit="5week"), "spec.unit", "unit starts with a digit"),
    Case("LabSession", session(unit="week5-"), "spec.unit", "unit trailing dash"),
    Case("LabSession", session(unit="infra-36w/week5"), "spec.unit", "unit with its course"),
    Case("LabSession", session(unit="w" * 25), "spec.unit", "unit of 25 characters"),
    Case("LabSession", session(unit=5), "spec.unit", "unit a number"),
    # ttl
    Case("LabSession", session(ttl="0s"), "spec.ttl", "zero"),
    Case("LabSession", session(ttl="0h0m0s"), "spec.ttl", "zero in parts"),
    Case("LabSession", session(ttl="721h"), "spec.ttl", "just over 30 days"),
    Case("LabSession", session(ttl="720h1s"), "spec.ttl", "one second over"),
    Case("LabSession", session(ttl="43201m"), "spec.ttl", "over, in minutes"),
    Case("LabSession", session(ttl="9999999999h"), "spec.ttl", "beyond a Go duration"),
    Case("LabSession", session(ttl="2d"), "spec.ttl", "days"),
    Case("LabSession", session(ttl="1.5h"), "spec.ttl", "fraction"),
    Case("LabSession", session(ttl="-1h"), "spec.ttl", "negative"),
    Case("LabSession", session(ttl="8"), "spec.ttl", "no unit"),
    Case("LabSession", session(ttl="h"), "spec.ttl", "no number"),
    Case("LabSession", session(ttl="8H"), "spec.ttl", "upper-case unit"),
    Case("LabSession", session(ttl="8 h"), "spec.ttl", "space"),
    Case("LabSession", session(ttl=""), "spec.ttl", "empty"),
    Case("LabSession", session(ttl="1h1h1h1h1h1h1h1h1h"), "spec.ttl", "17 characters"),
    Case("LabSession", session(ttl=3600), "spec.ttl", "a number"),
    # structure
    Case("LabSession", session(colour="blue"), "spec.colour", "unknown spec field"),
    Case("LabSession", session(Learner="ada"), "spec.Learner", "field name in the wrong case"),
    Case("LabSession", session(overrides={"extra": {}}), "spec.overrides.extra", "unknown overrides field"),
    Case(
        "LabSession",
        session(overrides={"components": {"kafka": "big"}}),
        "spec.overrides.components.kafka",
        "override not an object",
    ),
    Case(
        "LabSession",
        session(overrides={"components": {f"c{i}": {} for i in range(17)}}),
        "spec.overrides.components",
        "17 overrides",
    ),
    Case("LabSession", session(overrides=["kafka"]), "spec.overrides", "overrides a list"),
    Case("LabSession", without(session(), "learner"), "spec.learner", "no learner"),
    Case("LabSession", without(session(), "course"), "spec.course", "no course"),
    Case("LabSession", without(session(), "unit"), "spec.unit", "no unit"),
    Case("LabSession", session(spec={}), "spec.learner", "empty spec"),
    Case("LabSession", session(spec="week5"), "spec", "spec a string"),
    Case("LabSession", {k: v for k, v in session().items() if k != "spec"}, "spec", "no spec"),
    # metadata.name becomes the namespace lab-<name>: a DNS label of at most 63 characters
    Case("LabSession", session(name="n" * 60), "metadata.name", "name of 60 characters"),
    Case("LabSession", session(name="n" * 254), "metadata.name", "name of 254 characters"),
    Case("LabSession", session(name="Bad_Name"), "metadata.name", "name not DNS"),
    Case(
        "LabSession",
        session(name="ada.week5"),
        "metadata.name",
        "name with a dot: lab-ada.week5 is no namespace",
    ),
]
TRANSITION_CASES: list[Case] = [
    Case(
        "LabSession",
        session(name="corpus-move", learner="other", unit="week99"),
        "spec.learner",
        "learner changed after creation",
        before=session(name="corpus-move", unit="week99"),
    ),
    Case(
        "LabSession",
        session(name="corpus-move", course="backend-ai-60d", unit="week99"),
        "spec.course",
        "course changed after creation",
        before=session(name="corpus-move", unit="week99"),
    ),
]
VARIANT_CASES: list[Case] = [
    Case("LabSession", session(variant="azure"), "spec.variant", "unknown cloud"),
    Case("LabSession", session(variant="AWS"), "spec.variant", "cloud in upper case"),
    Case(
        "LabSession",
        session(name="corpus-cloud", variant="aws"),
        "spec.variant",
        "moved to a cloud after creation",
        before=session(name="corpus-cloud"),
    ),
]
COHORT_CASES: list[Case] = [
    Case("LabCohort", cohort(name="c" * 19), "metadata.name", "name of 19 characters"),
    Case("LabCohort", cohort(name="cc.dotted"), "metadata.name", "name with a dot"),
    Case("LabCohort", cohort(course="Infra"), "spec.course", "course upper case"),
    Case("LabCohort", cohort(unit="week 5"), "spec.unit", "unit with a space"),
    Case("LabCohort", without(cohort(), "course"), "spec.course", "no course"),
    Case("LabCohort", without(cohort(), "unit"), "spec.unit", "no unit"),
    Case("LabCohort", cohort(learners=["Ada"]), "spec.learners", "learner upper case"),
    Case("LabCohort", cohort(learners=["a" * 41]), "spec.learners", "learner of 41 characters"),
    Case("LabCohort", cohort(learners=["ok", "default"]), "spec.learners", "reserved learner"),
    Case("LabCohort", cohort(learners=["kube-ada"]), "spec.learners", "kube- learner"),
    Case("LabCohort", cohort(learners=["pool-1"]), "spec.learners", "pool- learner"),
    Case(
        "LabCohort",
        cohort(learners=["system-ada"]),
        "spec.learners",
        "system- learner (refused by LabSession)",
    ),
    Case(
        "LabCohort",
        cohort(learners=["openshift-ada"]),
        "spec.learners",
        "openshift- learner (refused by LabSession)",
    ),
    Case("LabCohort", cohort(learners=["ada", "ada"]), "spec.learners", "duplicate learner"),
    Case("LabCohort", cohort(learners=[f"l{i}" for i in range(501)]), "spec.learners", "501 learners"),
    Case("LabCohort", cohort(learners="ada"), "spec.learners", "learners a string"),
    Case("LabCohort", cohort(learners=[], warmPool=0), "spec.learners", "nobody and no pool"),
    Case("LabCohort", cohort(warmPool=51), "spec.warmPool", "pool of 51"),
    Case("LabCohort", cohort(warmPool=-1), "spec.warmPool", "negative pool"),
    Case("LabCohort", cohort(warmPool="3"), "spec.warmPool", "pool a string"),
    Case("LabCohort", cohort(ttl="0s"), "spec.ttl", "zero ttl"),
    Case("LabCohort", cohort(ttl="721h"), "spec.ttl", "ttl over 30 days"),
    Case("LabCohort", cohort(ttl="1d"), "spec.ttl", "ttl in days"),
    Case("LabCohort", cohort(endsAt="2030-01-01T00:00:00Z"), "spec", "ttl and endsAt"),
    Case("LabCohort", cohort(endsAt="tomorrow", ttl=None), "spec.endsAt", "endsAt not a time"),
    Case("LabCohort", cohort(limits={"maxTtl": "forever"}), "spec.limits.maxTtl", "maxTtl not a duration"),
    Case("LabCohort", cohort(instructor="i" * 64), "spec.instructor", "instructor of 64 characters"),
    Case("LabCohort", cohort(seats=30), "spec.seats", "unknown field"),
]
COHORT_VARIANT_CASES: list[Case] = [
    Case("LabCohort", cohort(variant="azure"), "spec.variant", "unknown cloud"),
    Case(
        "LabCohort",
        cohort(name="cc-cloud", variant="gcp"),
        "spec.variant",
        "moved to a cloud after creation",
        before=cohort(name="cc-cloud"),
    ),
]
COHORT_TRANSITIONS: list[Case] = [
    Case(
        "LabCohort",
        cohort(name="cc-move", course="backend-ai-60d", unit="week99"),
        "spec.course",
        "course changed after creation",
        before=cohort(name="cc-move", unit="week99"),
    ),
]


def corpus() -> list[Case]:
    cases = [*SESSION_CASES, *TRANSITION_CASES, *(VARIANT_CASES if HAS_VARIANTS else [])]
    if HAS_COHORTS:
        cases += [*COHORT_CASES, *COHORT_TRANSITIONS, *(COHORT_VARIANT_CASES if HAS_VARIANTS else [])]
    return cases


# --- running a case -------------------------------------------------------------------------------


def apply(cli: Cli, body: dict[str, Any]) -> Any:
    # `ttl=None` in a case means "leave ttl out" (server-side apply would read null as unset anyway).
    spec = body.get("spec")
    if isinstance(spec, dict):
        body = {**body, "spec": {k: v for k, v in spec.items() if v is not None}}
    return cli.kubectl(
        "apply", "--server-side", "--field-manager=corpus", "-f", "-", stdin=json.dumps(body), check=False
    )


def plural(kind: str) -> str:
    return {"LabSession": "labsessions", "LabCohort": "labcohorts"}[kind]


def check_refused(cli: Cli, case: Case) -> None:
    name = case.body["metadata"]["name"]
    key = (case.kind, name, case.label)
    TALLY.tried.add(key)
    TALLY.names.add((case.kind, name))
    result = apply(cli, case.body)
    if result.returncode == 0:
        if case.before is None:
            cli.kubectl("delete", plural(case.kind), name, "-n", SESSIONS_NAMESPACE, check=False)
        pytest.fail(f"{case.kind} {case.label!r} was accepted: {json.dumps(case.body)[:300]}")
    TALLY.refused.add(key)
    assert case.field in result.stderr, (
        f"{case.label}: the refusal does not name {case.field}: {result.stderr}"
    )


def case_id(case: Case) -> str:
    return f"{case.kind}:{case.label}"


@pytest.fixture(scope="module", autouse=True)
def _nothing_left(cli: Cli) -> Iterator[None]:
    yield
    for kind, name in sorted(TALLY.names):
        cli.kubectl("delete", plural(kind), name, "-n", SESSIONS_NAMESPACE, "--ignore-not-found", check=False)


@pytest.mark.parametrize("case", [c for c in corpus() if c.before is None], ids=case_id)
def test_invalid_object_is_refused_naming_the_field(cli: Cli, case: Case) -> None:
    check_refused(cli, case)
    assert not cli.exists(plural(case.kind), case.body["metadata"]["name"], "-n", SESSIONS_NAMESPACE)


@pytest.mark.parametrize("case", [c for c in corpus() if c.before is not None], ids=case_id)
def test_immutable_fields_cannot_change(cli: Cli, case: Case) -> None:
    assert case.before is not None
    name = case.before["metadata"]["name"]
    stored = apply(cli, case.before)
    assert stored.returncode == 0, stored.stderr
    try:
        before = cli.get(plural(case.kind), name, "-n", SESSIONS_NAMESPACE)["spec"]
        check_refused(cli, case)
        assert cli.get(plural(case.kind), name, "-n", SESSIONS_NAMESPACE)["spec"] == before
    finally:
        cli.kubectl("delete", plural(case.kind), name, "-n", SESSIONS_NAMESPACE, check=False)


# --- generated cases ------------------------------------------------------------------------------

LABEL_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
# Printable ASCII plus a few letters a user might type; nothing JSON or kubectl would mangle.
ANY_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("äéßΩ")
labels = st.text(LABEL_CHARS, min_size=1, max_size=12)


def bad(valid: Callable[[str], bool], *strategies: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(*strategies).filter(lambda s: not valid(s))


bad_learners = bad(
    valid_learner,
    st.text(ANY_CHARS, max_size=30),
    st.text(LABEL_CHARS, min_size=41, max_size=60),
    st.builds(str.__add__, st.sampled_from(RESERVED_PREFIXES), labels),
    st.sampled_from(sorted(RESERVED)),
    st.builds(lambda s: s.upper(), labels),
    st.builds(lambda a, b: f"{a}{b}", labels, st.sampled_from(["-", "_", ".", " "])),
)
bad_slugs = bad(
    valid_slug,
    st.text(ANY_CHARS, max_size=30),
    st.text(LABEL_CHARS, min_size=25, max_size=40),
    st.builds(lambda d, s: f"{d}{s}", st.sampled_from("0123456789-"), labels),
    st.text(LABEL_CHARS, max_size=1),
)
bad_ttls = bad(
    valid_ttl,
    st.text(ANY_CHARS, max_size=20),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**9), st.sampled_from(["s", "m", "h"])),
    st.builds(
        lambda n, u: f"{n}{u}", st.integers(1, 999), st.sampled_from(["d", "w", "ms", "us", "ns", "y"])
    ),
    st.builds(lambda h, m: f"{h}h{m}m", st.integers(700, 2000), st.integers(0, 10**6)),
    st.just("0s"),
)
# Names kubectl itself sends (an empty name or one with a slash never reaches the API server).
bad_names = bad(
    valid_session_name,
    st.text(LABEL_CHARS.replace("-", ""), min_size=60, max_size=120),
    st.builds(lambda a, b: f"{a}.{b}", labels, labels),
    st.builds(lambda s: s.upper(), labels),
    st.builds(lambda a, c, b: f"{a}{c}{b}", labels, st.sampled_from("_:~+"), labels),
)


@GENERATED
@given(learner=bad_learners)
def test_generated_learners_are_refused(cli: Cli, learner: str) -> None:
    check_refused(cli, Case("LabSession", session(learner=learner), "spec.learner", f"learner {learner!r}"))


@GENERATED
@given(field_name=st.sampled_from(["course", "unit"]), value=bad_slugs)
def test_generated_courses_and_units_are_refused(cli: Cli, field_name: str, value: str) -> None:
    body = session(**{field_name: value})
    check_refused(cli, Case("LabSession", body, f"spec.{field_name}", f"{field_name} {value!r}"))


@GENERATED
@given(ttl=bad_ttls)
def test_generated_ttls_are_refused(cli: Cli, ttl: str) -> None:
    check_refused(cli, Case("LabSession", session(ttl=ttl), "spec.ttl", f"ttl {ttl!r}"))


@GENERATED
@given(name=bad_names)
def test_generated_session_names_are_refused(cli: Cli, name: str) -> None:
    check_refused(cli, Case("LabSession", session(name=name), "metadata.name", f"name {name!r}"))


@pytest.mark.skipif(not HAS_COHORTS, reason="no LabCohort CRD in charts/labenv/crds yet")
@GENERATED
@given(learners=st.lists(bad_learners, min_size=1, max_size=3))
def test_generated_cohort_learners_are_refused(cli: Cli, learners: list[str]) -> None:
    body = cohort(learners=["ok", *learners])
    check_refused(cli, Case("LabCohort", body, "spec.learners", f"learners {learners!r}"))


def test_the_corpus_created_nothing(cli: Cli) -> None:
    """Run last: no object of the corpus exists, nor a lab namespace (or cohort session) for one."""
    print(f"\nadmission corpus: {len(TALLY.tried)} invalid objects tried, {len(TALLY.refused)} refused")
    assert len(TALLY.tried) >= 50
    corpus_names = {name for _, name in TALLY.names}
    stored = {
        f"{kind}/{item['metadata']['name']}"
        for kind in ("labsessions", "labcohorts")
        if cli.kubectl("get", kind, "-n", SESSIONS_NAMESPACE, check=False).returncode == 0
        for item in cli.get(kind, "-n", SESSIONS_NAMESPACE)["items"]
        if item["metadata"]["name"] in corpus_names
        or (item.get("metadata", {}).get("labels") or {}).get("labenv.io/cohort") in corpus_names
    }
    namespaces = {ns["metadata"]["name"] for ns in cli.get("namespaces")["items"]}
    assert stored == set()
    assert sorted(namespaces & {f"lab-{name}" for name in corpus_names}) == []
