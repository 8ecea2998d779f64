"""Credentials for a session's own `learner` identity, scoped in place (one namespace) and in time.

`labenv kubeconfig NAME` asks the TokenRequest API for a token of the session's `learner`
ServiceAccount. The API server signs the token and stores nothing: no long-lived
`kubernetes.io/service-account-token` Secret is ever created. The token expires no later than the
session (capped, and never shorter than the 10 minutes the API server accepts), and it stops working
as soon as the session's namespace (and with it the ServiceAccount) is deleted, even before its `exp`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from labenv import api, names
from labenv.errors import InvalidInput, LabenvError, NotFound
from labenv.kube.client import ApiError, Kube

Obj = dict[str, Any]

# The API server refuses TokenRequests shorter than 10 minutes.
MIN_TOKEN_LIFETIME = timedelta(minutes=10)
# A learner re-runs `labenv kubeconfig` for a fresh token at most once a day.
DEFAULT_MAX_LIFETIME = timedelta(hours=24)
TOKEN_API_VERSION = "authentication.k8s.io/v1"


@dataclass(frozen=True)
class LearnerKubeconfig:
    session: str
    namespace: str
    token_expires_at: datetime
    session_expires_at: datetime
    config: Obj

    def summary(self) -> dict[str, str]:
        """What may be shown about the kubeconfig without its token."""
        return {
            "session": self.session,
            "namespace": self.namespace,
            "user": f"system:serviceaccount:{self.namespace}:{names.LEARNER_SERVICE_ACCOUNT}",
            "tokenExpiresAt": api.timestamp(self.token_expires_at),
            "sessionExpiresAt": api.timestamp(self.session_expires_at),
        }


def session_expiry(session: Obj) -> datetime:
    """`status.expiresAt`, or creation + ttl for a session the operator has not reported on yet."""
    status = session.get("status") or {}
    if isinstance(status.get("expiresAt"), str):
        return api.parse_timestamp(status["expiresAt"])
    meta, spec = session["metadata"], session.get("spec") or {}
    ttl = api.parse_duration(str(spec.get("ttl", api.DEFAULT_TTL)), "spec.ttl", maximum=timedelta(days=3650))
    return api.parse_timestamp(meta["creationTimestamp"]) + ttl


def token_lifetime(session_expires_at: datetime, now: datetime, cap: timedelta = DEFAULT_MAX_LIFETIME) -> int:
    """Seconds the token may live: the session's remaining time, at most `cap`, at least the API's 600 s.

    Within the last 10 minutes of a session the token may outlive `expiresAt` by the difference; it is
    still revoked when the sweeper deletes the expired session and its namespace.
    """
    remaining = int((session_expires_at - now).total_seconds())
    if remaining <= 0:
        raise InvalidInput(f"session: expired at {api.timestamp(session_expires_at)}; start a new one")
    return max(int(MIN_TOKEN_LIFETIME.total_seconds()), min(remaining, int(cap.total_seconds())))


def build_kubeconfig(
    server: str, ca_data: bytes | None, verify_tls: bool, namespace: str, token: str, session: str
) -> Obj:
    cluster: Obj = {"server": server}
    if ca_data:
        cluster["certificate-authority-data"] = base64.b64encode(ca_data).decode()
    elif not verify_tls:
        cluster["insecure-skip-tls-verify"] = True
    user = f"{names.LEARNER_SERVICE_ACCOUNT}@{namespace}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "labenv", "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {"name": session, "context": {"cluster": "labenv", "user": user, "namespace": namespace}}
        ],
        "current-context": session,
    }


async def issue(
    kube: Kube, session: Obj, cap: timedelta = DEFAULT_MAX_LIFETIME, now: datetime | None = None
) -> LearnerKubeconfig:
    """A kubeconfig for the session's learner identity with a fresh TokenRequest token."""
    meta = session["metadata"]
    name = meta["name"]
    if meta.get("deletionTimestamp"):
        raise LabenvError(f"session {name!r} is being deleted")
    expires = session_expiry(session)
    seconds = token_lifetime(expires, now or api.now(), cap)
    namespace = (session.get("status") or {}).get("namespace") or names.lab_namespace(name)
    request = {
        "apiVersion": TOKEN_API_VERSION,
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    try:
        granted = await kube.create_subresource(
            "v1", "ServiceAccount", names.LEARNER_SERVICE_ACCOUNT, "token", request, namespace
        )
    except ApiError as exc:
        if exc.not_found:
            raise NotFound(
                f"session {name!r}: its learner identity does not exist yet; try again once it is provisioned"
            ) from exc
        raise
    status = granted.get("status") or {}
    ca_data = kube.ca_pem.encode() if kube.ca_pem else None
    config = build_kubeconfig(kube.host, ca_data, kube.verifies_tls, namespace, status["token"], name)
    return LearnerKubeconfig(
        session=name,
        namespace=namespace,
        token_expires_at=api.parse_timestamp(status["expirationTimestamp"]),
        session_expires_at=expires,
        config=config,
    )
