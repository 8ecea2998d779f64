"""Kubeconfig files and a tiny HTTPS client for the few API calls `up` and `status` need.

The standard library is enough for readiness probes and create-if-absent; it keeps `labenv cluster
status` free of an event loop and of kubectl subprocesses.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from pathlib import Path
from typing import Any

import yaml

from labenv.errors import ClusterUnavailable
from labenv.localcluster.pki import Pki

_TIMEOUT_SECONDS = 5.0


def write_kubeconfig(path: Path, name: str, server: str, pki: Pki, identity: str) -> None:
    """A self-contained kubeconfig (certificates embedded) for one client identity."""

    def data(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": name, "cluster": {"server": server, "certificate-authority-data": data(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": identity,
                "user": {
                    "client-certificate-data": data(pki.client_cert(identity)),
                    "client-key-data": data(pki.client_key(identity)),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": identity}}],
        "current-context": name,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


class AdminApi:
    """Requests to the local apiserver as the admin user; a connection failure reads as status 0."""

    def __init__(self, port: int, pki: Pki) -> None:
        self.port = port
        self._context = ssl.create_default_context(cafile=str(pki.ca_cert))
        self._context.load_cert_chain(str(pki.client_cert("admin")), str(pki.client_key("admin")))

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self._context, timeout=_TIMEOUT_SECONDS
        )
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException):
            return 0, None
        finally:
            conn.close()
        if response.getheader("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(raw)
        return response.status, raw.decode(errors="replace")

    def ready(self) -> bool:
        return self.request("GET", "/readyz")[0] == 200

    def exists(self, path: str) -> bool:
        return self.request("GET", path)[0] == 200

    def create(self, collection: str, obj: dict[str, Any]) -> None:
        """POST unless it already exists (409)."""
        status, body = self.request("POST", collection, obj)
        if status not in (201, 409):
            message = body.get("message") if isinstance(body, dict) else body
            raise ClusterUnavailable(
                f"creating {obj['kind']} {obj['metadata']['name']}: HTTP {status}: {message}"
            )
