"""Kubernetes Events on labenv's objects, posted through Kopf's batching poster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf


def post(obj: Mapping[str, Any], type: str, reason: str, message: str) -> None:
    """`obj` needs apiVersion, kind and metadata name/namespace/uid. Outside a running operator
    (a CLI audit, a unit test) there is no poster, and nothing is posted."""
    meta = obj["metadata"]
    raw = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
    }
    try:
        kopf.event(kopf.Body(raw), type=type, reason=reason, message=message)  # type: ignore[arg-type]
    except LookupError:
        return
