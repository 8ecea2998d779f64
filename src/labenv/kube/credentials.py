"""Where the API server is and how to prove who we are, found as kubectl finds it.

`--kubeconfig`, else `$KUBECONFIG` (several files merged, the first definition of a name wins),
else `~/.kube/config`, else the pod's ServiceAccount (in-cluster). Supported: server CA (file or
data) or insecure-skip-tls-verify, client certificates (file or data), static tokens, token files
(re-read: projected tokens rotate), and exec plugins that return a token (EKS, GKE, AKS kubelogin).

Its own small loader rather than an official client's: those import hundreds of generated model
classes (about 60 MB and a second of start-up for every CLI command) that labenv never uses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from labenv.errors import ClusterUnavailable

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_REREAD = 60.0  # seconds, as client-go re-reads a projected token
EXEC_EARLY_RENEWAL = 30.0  # seconds before an exec credential expires


@dataclass(frozen=True)
class ExecPlugin:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"


@dataclass
class Credentials:
    server: str
    ca_pem: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    client_cert_pem: str | None = None
    client_key_pem: str | None = None
    token: str | None = None
    token_file: Path | None = None
    exec_plugin: ExecPlugin | None = None
    _cached: tuple[str, float] | None = field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem or None)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert_pem and self.client_key_pem:
            _load_client_certificate(context, self.client_cert_pem, self.client_key_pem)
        return context

    async def authorization(self) -> str | None:
        """The Authorization header's value, renewed when a token file or plugin says so."""
        if self.token:
            return f"Bearer {self.token}"
        if self._cached and time.monotonic() < self._cached[1]:
            return self._cached[0]
        if self.token_file:
            token = (await asyncio.to_thread(self.token_file.read_text)).strip()
            self._cached = (f"Bearer {token}", time.monotonic() + TOKEN_FILE_REREAD)
        elif self.exec_plugin:
            token, lifetime = await run_exec_plugin(self.exec_plugin)
            self._cached = (f"Bearer {token}", time.monotonic() + max(0.0, lifetime - EXEC_EARLY_RENEWAL))
        else:
            return None
        return self._cached[0]

    def renew(self) -> None:
        """Forget a token from a file or a plugin: the server refused it (401)."""
        self._cached = None


def _load_client_certificate(context: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    """`load_cert_chain` reads files only: a private temporary file, removed once read."""
    handle, path = tempfile.mkstemp(prefix="labenv-client-", suffix=".pem")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(cert_pem.rstrip("\n") + "\n" + key_pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)


async def run_exec_plugin(plugin: ExecPlugin) -> tuple[str, float]:
    """Run a client-go credential plugin; its token and how many seconds it stays valid."""
    info = {"apiVersion": plugin.api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env = {**os.environ, **dict(plugin.env), "KUBERNETES_EXEC_INFO": json.dumps(info)}
    try:
        process = await asyncio.create_subprocess_exec(
            plugin.command,
            *plugin.args,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise ClusterUnavailable(f"kubeconfig: exec plugin {plugin.command!r} cannot run: {exc}") from exc
    out, err = await process.communicate()
    if process.returncode:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ClusterUnavailable(f"kubeconfig: exec plugin {plugin.command!r} failed: {last[0]}")
    try:
        status = json.loads(out)["status"]
    except (ValueError, KeyError, TypeError) as exc:
        message = f"kubeconfig: exec plugin {plugin.command!r} printed no ExecCredential"
        raise ClusterUnavailable(message) from exc
    if "token" not in status:
        raise ClusterUnavailable(
            f"kubeconfig: exec plugin {plugin.command!r} returned a client certificate; labenv supports "
            "plugins that return a token"
        )
    expires = status.get("expirationTimestamp")
    if not expires:
        return str(status["token"]), float("inf")  # valid until the server refuses it
    return str(status["token"]), (datetime.fromisoformat(expires) - datetime.now(UTC)).total_seconds()


def load(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    paths = _kubeconfig_paths(kubeconfig)
    if paths:
        return from_kubeconfig(paths, context)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").is_file():
        return in_cluster()
    raise ClusterUnavailable(
        "kubeconfig: no cluster credentials (no --kubeconfig, $KUBECONFIG or ~/.kube/config, not in a pod)"
    )


def _kubeconfig_paths(explicit: str | None) -> list[Path]:
    """The files to read; a named file that does not exist is the user's mistake, not a reason to
    try in-cluster."""
    listed = explicit or os.environ.get("KUBECONFIG", "")
    named = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    if named:
        found = [p for p in named if p.is_file()]
        if not found:
            raise ClusterUnavailable(f"kubeconfig: {os.pathsep.join(map(str, named))} does not exist")
        return found
    default = Path("~/.kube/config").expanduser()
    return [default] if default.is_file() else []


def in_cluster() -> Credentials:
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return Credentials(
        server=f"https://{host}:{port}",
        ca_pem=(SERVICE_ACCOUNT / "ca.crt").read_text(),
        token_file=SERVICE_ACCOUNT / "token",
    )


def _named(docs: Sequence[tuple[Path, Mapping[str, Any]]], section: str) -> dict[str, tuple[Path, Any]]:
    """name -> (file it came from, entry): the first file that defines a name wins, as in kubectl."""
    merged: dict[str, tuple[Path, Any]] = {}
    for path, doc in docs:
        for entry in doc.get(section) or []:
            merged.setdefault(entry.get("name", ""), (path, entry.get(section.removesuffix("s")) or {}))
    return merged


def from_kubeconfig(paths: Sequence[Path], context: str | None = None) -> Credentials:
    docs = []
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ClusterUnavailable(f"kubeconfig: {path} cannot be read: {exc}") from exc
        if not isinstance(doc, dict):
            raise ClusterUnavailable(f"kubeconfig: {path} is not a kubeconfig")
        docs.append((path, doc))
    name = context or next((d["current-context"] for _, d in docs if d.get("current-context")), "")
    contexts = _named(docs, "contexts")
    if name not in contexts:
        raise ClusterUnavailable(
            f"kubeconfig: context {name!r} is not defined" if name else "kubeconfig: no current-context"
        )
    ctx = contexts[name][1]
    clusters, users = _named(docs, "clusters"), _named(docs, "users")
    if ctx.get("cluster") not in clusters:
        raise ClusterUnavailable(
            f"kubeconfig: context {name!r} names cluster {ctx.get('cluster')!r}, which is not defined"
        )
    cluster_file, cluster = clusters[ctx["cluster"]]
    user_file, user = users.get(ctx.get("user", ""), (cluster_file, {}))
    if not cluster.get("server"):
        raise ClusterUnavailable(f"kubeconfig: cluster {ctx['cluster']!r} has no server")
    plugin = user.get("exec")
    return Credentials(
        server=str(cluster["server"]).rstrip("/"),
        ca_pem=_pem(cluster_file, cluster, "certificate-authority"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"),
        client_cert_pem=_pem(user_file, user, "client-certificate"),
        client_key_pem=_pem(user_file, user, "client-key"),
        token=user.get("token"),
        token_file=_relative(user_file, user["tokenFile"]) if user.get("tokenFile") else None,
        exec_plugin=ExecPlugin(
            command=plugin["command"],
            args=tuple(plugin.get("args") or ()),
            env=tuple((e["name"], e["value"]) for e in plugin.get("env") or ()),
            api_version=plugin.get("apiVersion", ExecPlugin.api_version),
        )
        if plugin
        else None,
    )


def _relative(kubeconfig: Path, path: str) -> Path:
    """Paths in a kubeconfig are relative to the file that holds them."""
    return (kubeconfig.parent / Path(path).expanduser()).resolve()


def _pem(kubeconfig: Path, entry: Mapping[str, Any], key: str) -> str | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"]).decode()
    if entry.get(key):
        try:
            return _relative(kubeconfig, entry[key]).read_text()
        except OSError as exc:
            raise ClusterUnavailable(f"kubeconfig: {key} {entry[key]} cannot be read: {exc}") from exc
    return None
