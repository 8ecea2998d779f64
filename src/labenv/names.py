"""Names, labels and annotations shared by the CLI and the operator.

Every object name and label labenv writes is built here, so that the CLI, the operator, the
sweeper and `labenv doctor` agree on them without building strings in two places.
"""

from __future__ import annotations

import getpass
import re

from labenv.errors import InvalidInput

GROUP = "labenv.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
SESSION_KIND = "LabSession"
SESSION_PLURAL = "labsessions"
COHORT_KIND = "LabCohort"
COHORT_PLURAL = "labcohorts"

FIELD_MANAGER = "labenv-operator"
CLI_FIELD_MANAGER = "labenv-cli"
DEFAULT_SESSION_NAMESPACE = "labenv"

# Secrets in every lab namespace: generated values (created once, never rewritten) and the
# connection settings derived from them (re-applied on every reconcile).
GENERATED_SECRET = "labenv-generated"
CONNECTION_SECRET = "labenv-connection"
LEARNER_SERVICE_ACCOUNT = "learner"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_SESSION = f"{GROUP}/session"
LABEL_SESSION_NAMESPACE = f"{GROUP}/session-namespace"
LABEL_SESSION_UID = f"{GROUP}/session-uid"
LABEL_LEARNER = f"{GROUP}/learner"
LABEL_COURSE = f"{GROUP}/course"
LABEL_UNIT = f"{GROUP}/unit"
LABEL_COHORT = f"{GROUP}/cohort"
LABEL_POOL = f"{GROUP}/pool"  # "true" on a warm-pool session not yet handed to a learner
MANAGED_BY = "labenv"

ANNOTATION_PSA_EXCEPTION = f"{GROUP}/pod-security-exception"
# `labenv reset SESSION COMPONENT`: the operator recreates that component with fresh volumes.
ANNOTATION_RESET = f"{GROUP}/reset"

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_LEARNER_LENGTH = 40
MAX_UNIT_LENGTH = 24
# Learner names that would make lab namespaces look like system ones or shadow them.
RESERVED_LEARNERS = frozenset({"default", "kube", "system", "labenv"})
# `pool-` names the placeholder learner of warm-pool sessions.
RESERVED_PREFIXES = ("kube-", "openshift-", "system-", "pool-")


def normalise_learner(raw: str) -> str:
    """Turn a user name such as `Ada.Lovelace` into a DNS-1123 label (`ada-lovelace`)."""
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    return re.sub(r"-{2,}", "-", name)[:MAX_LEARNER_LENGTH].strip("-")


def default_learner() -> str:
    return normalise_learner(getpass.getuser()) or "learner"


def check_learner(learner: str) -> str:
    if not learner:
        raise InvalidInput("learner: must not be empty")
    if len(learner) > MAX_LEARNER_LENGTH:
        raise InvalidInput(f"learner: {learner!r} is longer than {MAX_LEARNER_LENGTH} characters")
    if not DNS_LABEL.match(learner):
        raise InvalidInput(
            f"learner: {learner!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit)"
        )
    if learner in RESERVED_LEARNERS or learner.startswith(RESERVED_PREFIXES):
        raise InvalidInput(f"learner: {learner!r} is reserved (it would collide with system namespaces)")
    return learner


def session_name(learner: str, course: str, unit: str, default_course: str) -> str:
    """The LabSession name for a learner's unit: short for the default course, scoped otherwise."""
    if course == default_course:
        return f"{learner}-{unit}"
    return f"{learner}-{course}-{unit}"


def cohort_session_name(cohort: str, learner: str) -> str:
    """A cohort member's session: stable across units, so advancing the cohort upgrades it in place."""
    return f"{cohort}-{learner}"


def pool_learner(index: int) -> str:
    return f"pool-{index}"


def lab_namespace(session: str) -> str:
    """The namespace that holds one session's lab."""
    return f"lab-{session}"


def condition_type(component: str) -> str:
    """`schema-registry` -> `SchemaRegistryReady`: one status condition per component."""
    return "".join(part.capitalize() for part in component.split("-")) + "Ready"


def generated_key(component: str, credential: str) -> str:
    """Key of one generated value in the session's generated Secret."""
    return f"{component}-{credential}"


def session_labels(
    session: str, session_namespace: str, learner: str, course: str, unit: str
) -> dict[str, str]:
    """Labels that link an object to its session; used for selection, pruning and audits."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PART_OF: "labenv",
        LABEL_SESSION: session,
        LABEL_SESSION_NAMESPACE: session_namespace,
        LABEL_LEARNER: learner,
        LABEL_COURSE: course,
        LABEL_UNIT: unit,
    }
