"""The one place that talks to the Kubernetes API.

aiohttp with the credentials `labenv.kube.credentials` finds, and raw JSON for objects: labenv
renders plain dicts, applies them with server-side apply under one field manager, and never needs
generated model classes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from labenv import names
from labenv.errors import ClusterUnavailable, LabenvError
from labenv.kube.credentials import Credentials, load

Obj = dict[str, Any]
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=10)
TOO_MANY_REQUESTS_RETRIES = 6


class ApiError(LabenvError):
    """A refusal by the API server, with its status code and the server's own message."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def retriable(self) -> bool:
        return self.status in (409, 429) or self.status >= 500


@dataclass(frozen=True)
class ResourceInfo:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace)}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name)}"
        if subresource:
            base += f"/{subresource}"
        return base


async def _error(resp: aiohttp.ClientResponse) -> ApiError:
    text = await resp.text()
    try:
        body = json.loads(text)
        message, reason = body.get("message", text), body.get("reason", "")
    except ValueError:
        message, reason = text.strip() or resp.reason or "", ""
    retry_after = resp.headers.get("Retry-After", "")
    return ApiError(
        resp.status,
        reason,
        f"{resp.method} {resp.url.path}: {resp.status} {message}",
        float(retry_after) if retry_after.isdigit() else None,
    )


def resource_of(path: str) -> str:
    """`/api/v1/namespaces/x/pods/p/log` -> `pods/log`; `/apis/apps/v1` -> `discovery`."""
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if len(rest) > 2 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "discovery"
    return rest[0] if len(rest) < 3 else f"{rest[0]}/{rest[2]}"


class Kube:
    """An API connection; one per process (the operator) or per command (the CLI)."""

    def __init__(self, credentials: Credentials, session: aiohttp.ClientSession) -> None:
        self._credentials = credentials
        self._session = session
        self._resources: dict[tuple[str, str], ResourceInfo] = {}
        self._discovered: dict[str, bool] = {}
        self._discovery_lock = asyncio.Lock()
        # API requests made, by (verb, resource), for metrics and benchmarks
        self.requests: Counter[tuple[str, str]] = Counter()

    @classmethod
    async def connect(cls, kubeconfig: str | None = None, context: str | None = None) -> Kube:
        """Find credentials as kubectl does: --kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster."""
        credentials = await asyncio.to_thread(load, kubeconfig, context)
        try:
            tls = credentials.ssl_context()
        except (ssl.SSLError, ValueError) as exc:
            raise ClusterUnavailable(f"kubeconfig: unusable certificate or key: {exc}") from exc
        return cls(credentials, aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)))

    @property
    def host(self) -> str:
        return self._credentials.server

    @property
    def ca_pem(self) -> str | None:
        """The CA this connection trusts, as the kubeconfig gave it (PEM)."""
        return self._credentials.ca_pem

    @property
    def verifies_tls(self) -> bool:
        return not self._credentials.insecure

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _send_once(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
    ) -> aiohttp.ClientResponse:
        params = [(k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()]
        self.requests[(method, resource_of(path))] += 1
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        try:
            authorization = await self._credentials.authorization()
            if authorization:
                headers["Authorization"] = authorization
            resp = await self._session.request(
                method,
                self._credentials.server + path,
                params=params,
                data=None if body is None else json.dumps(body),
                headers=headers,
                timeout=timeout,
                server_hostname=self._credentials.tls_server_name,
            )
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            raise ClusterUnavailable(f"cannot reach the Kubernetes API at {self.host}: {exc}") from exc
        if resp.status >= 400:
            try:
                raise await _error(resp)
            finally:
                resp.release()
        return resp

    async def _send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
    ) -> aiohttp.ClientResponse:
        """Send; a 429 (e.g. a new CRD's storage still initialising) is retried after Retry-After,
        as kubectl and Kopf do, and a 401 once with renewed credentials."""
        renewed = False
        for attempt in range(TOO_MANY_REQUESTS_RETRIES):
            try:
                return await self._send_once(method, path, body, query, content_type, timeout)
            except ApiError as exc:
                if exc.status == 401 and not renewed:  # an expired token: get a fresh one, once
                    self._credentials.renew()
                    renewed = True
                    continue
                if exc.status != 429 or attempt == TOO_MANY_REQUESTS_RETRIES - 1:
                    raise
                await asyncio.sleep(min(exc.retry_after or 1.0, 5.0))
        raise AssertionError("unreachable")

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, str | int | bool] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        resp = await self._send(method, path, body, query, content_type)
        try:
            return await resp.json(content_type=None)
        finally:
            resp.release()

    # --- discovery -------------------------------------------------------------------------

    async def _discover(self, api_version: str) -> bool:
        """Read one group/version's resource list once; False when the cluster does not serve it."""
        if api_version in self._discovered:
            return self._discovered[api_version]
        async with self._discovery_lock:
            if api_version not in self._discovered:
                path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
                try:
                    listing = await self.request("GET", path)
                except ApiError as exc:
                    if not exc.not_found:
                        raise
                    listing = None
                for item in (listing or {}).get("resources", []):
                    if "/" not in item["name"]:
                        self._resources[(api_version, item["kind"])] = ResourceInfo(
                            api_version, item["kind"], item["name"], item["namespaced"]
                        )
                self._discovered[api_version] = listing is not None
        return self._discovered[api_version]

    async def served(self, api_version: str) -> bool:
        return await self._discover(api_version)

    def forget(self, api_version: str) -> None:
        """Drop a cached discovery answer (after CRDs are installed, for instance)."""
        self._discovered.pop(api_version, None)

    async def resource(self, api_version: str, kind: str) -> ResourceInfo:
        if (api_version, kind) not in self._resources:
            self.forget(api_version)
            await self._discover(api_version)
        try:
            return self._resources[(api_version, kind)]
        except KeyError:
            raise ApiError(404, "NotFound", f"the cluster does not serve {kind} in {api_version}") from None

    async def _info(self, obj: Mapping[str, Any]) -> ResourceInfo:
        return await self.resource(obj["apiVersion"], obj["kind"])

    # --- verbs -----------------------------------------------------------------------------

    async def apply(self, obj: Obj, field_manager: str = names.FIELD_MANAGER, dry_run: bool = False) -> Obj:
        """Server-side apply: the server merges, labenv owns exactly the fields it sends."""
        info = await self._info(obj)
        meta = obj["metadata"]
        query: dict[str, str | int | bool] = {"fieldManager": field_manager, "force": True}
        if dry_run:
            query["dryRun"] = "All"
        path = info.path(meta.get("namespace"), meta["name"])
        result: Obj = await self.request("PATCH", path, obj, query, "application/apply-patch+yaml")
        return result

    async def apply_status(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        status: Obj,
        field_manager: str = names.FIELD_MANAGER,
    ) -> Obj:
        info = await self.resource(api_version, kind)
        body = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        query: dict[str, str | int | bool] = {"fieldManager": field_manager, "force": True}
        path = info.path(namespace, name, "status")
        result: Obj = await self.request("PATCH", path, body, query, "application/apply-patch+yaml")
        return result

    async def create(self, obj: Obj, field_manager: str = names.FIELD_MANAGER) -> Obj:
        info = await self._info(obj)
        path = info.path(obj["metadata"].get("namespace"))
        result: Obj = await self.request("POST", path, obj, {"fieldManager": field_manager})
        return result

    async def create_subresource(
        self,
        api_version: str,
        kind: str,
        name: str,
        subresource: str,
        body: Obj,
        namespace: str | None = None,
    ) -> Obj:
        """POST to an object's subresource, e.g. a TokenRequest to `serviceaccounts/<name>/token`."""
        info = await self.resource(api_version, kind)
        result: Obj = await self.request("POST", info.path(namespace, name, subresource), body)
        return result

    async def merge_patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Obj,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        info = await self.resource(api_version, kind)
        result: Obj = await self.request(
            "PATCH", info.path(namespace, name, subresource), patch, None, "application/merge-patch+json"
        )
        return result

    async def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        info = await self.resource(api_version, kind)
        try:
            result: Obj = await self.request("GET", info.path(namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        return result

    async def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        info = await self.resource(api_version, kind)
        query: dict[str, str | int | bool] = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        result = await self.request("GET", info.path(namespace), query=query)
        items: list[Obj] = result.get("items", [])
        for item in items:  # list items carry no apiVersion/kind of their own
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    async def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        propagation: str = "Background",
    ) -> bool:
        """Delete; False when it was gone already."""
        info = await self.resource(api_version, kind)
        try:
            await self.request(
                "DELETE",
                info.path(namespace, name),
                {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
            )
        except ApiError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> AsyncIterator[Obj]:
        """Watch events (`{"type", "object"}`) until the server closes the stream after the timeout."""
        info = await self.resource(api_version, kind)
        query: dict[str, str | int | bool] = {
            "watch": True,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": True,
        }
        if field_selector:
            query["fieldSelector"] = field_selector
        if label_selector:
            query["labelSelector"] = label_selector
        if resource_version:
            query["resourceVersion"] = resource_version
        timeout = aiohttp.ClientTimeout(total=timeout_seconds + 15, sock_connect=10)
        resp = await self._send("GET", info.path(namespace), query=query, timeout=timeout)
        try:
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            return  # the stream broke (API server restart): the caller re-reads and watches again
        finally:
            resp.release()
