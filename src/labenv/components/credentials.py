"""Generated credentials: made once per session and key, then only ever read back."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Iterable, Mapping

from labenv import names
from labenv.components.model import Component, Credential, Generator


def generate(credential: Credential) -> str:
    match credential.generate:
        case Generator.PASSWORD:
            return secrets.token_urlsafe(credential.length)[: credential.length]
        case Generator.HEX:
            return secrets.token_hex(credential.length)[: credential.length]
        case Generator.KAFKA_CLUSTER_ID:
            # What `kafka-storage.sh random-uuid` prints: 16 bytes, URL-safe base64, no padding.
            return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def missing(components: Iterable[Component], existing: Mapping[str, str]) -> dict[str, str]:
    """Values for the keys the session's Secret lacks; existing keys are never regenerated."""
    fresh: dict[str, str] = {}
    for component in components:
        for key, credential in component.credentials.items():
            secret_key = names.generated_key(component.name, key)
            if secret_key not in existing:
                fresh[secret_key] = generate(credential)
    return fresh


def of_component(component: Component, generated: Mapping[str, str]) -> dict[str, str]:
    """The component's own credentials by their short names (`password`), for its settings."""
    return {
        key: generated[names.generated_key(component.name, key)]
        for key in component.credentials
        if names.generated_key(component.name, key) in generated
    }
