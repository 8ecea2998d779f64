"""Names for stacks, cloud resources, tags and labels, built in one place.

Cloud names have tight limits (IAM user 64, S3/GCS bucket 63, GCP project id 30 characters) and
some are global (buckets); every name here is lower-case and, when it must be cut, keeps a short
hash of the whole so two sessions never share one.
"""

from __future__ import annotations

import hashlib
import re

SESSION_STACK_PREFIX = "session"
CLUSTER_STACK_PREFIX = "cluster"

_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^a-z0-9_-]+")


def digest(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def short(*parts: str, max_len: int) -> str:
    """Parts joined with '-', lower-case a-z0-9-; cut to `max_len` with a hash suffix when too long."""
    whole = "-".join(p for p in parts if p)
    name = re.sub(r"-{2,}", "-", _INVALID.sub("-", whole.lower())).strip("-")
    if len(name) <= max_len:
        return name
    suffix = digest(whole)
    return f"{name[: max_len - len(suffix) - 1].rstrip('-')}-{suffix}"


def session_stack(namespace: str, name: str) -> str:
    """The one Pulumi stack of a LabSession: `session.<namespace>.<name>` (Kubernetes names have no dots)."""
    return f"{SESSION_STACK_PREFIX}.{namespace}.{name}"


def parse_session_stack(stack: str) -> tuple[str, str] | None:
    """`session.labenv.ada-week17` -> ("labenv", "ada-week17"); None for any other stack."""
    parts = stack.split(".")
    if len(parts) != 3 or parts[0] != SESSION_STACK_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def cluster_stack(cloud: str, name: str) -> str:
    return f"{CLUSTER_STACK_PREFIX}.{cloud}.{name}"


def label_value(text: str) -> str:
    """A GCP label value: lower-case letters, digits, '_' and '-', at most 63 characters."""
    value = _LABEL_INVALID.sub("-", text.lower())
    return value if len(value) <= 63 else short(value, max_len=63)


def env_name(text: str) -> str:
    """`chat-files` -> `CHAT_FILES`, for settings such as S3_BUCKET_CHAT_FILES."""
    return re.sub(r"[^A-Z0-9]+", "_", text.upper()).strip("_")
