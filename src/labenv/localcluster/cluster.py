"""Run, stop and inspect a local control plane: etcd, kube-apiserver, KCM, kube-scheduler and kwok.

Why hand-rolled processes rather than `kwokctl create cluster --runtime binary`: labenv needs flags
kwokctl does not expose or sets differently (kwokctl passes `--endpoint-reconciler-type=none`, uses
one admin cert as serving cert, client cert and service-account key, and binds 0.0.0.0 unless told
otherwise), needs KCM's host-path provisioner and a default StorageClass for PVC-backed workloads, and
wants per-component RBAC identities. Five detached processes with pid files are simple to reason about,
and the flags below are all there is to it.

State lives outside the repo in `~/.cache/labenv/clusters/<name>/` (or `$LABENV_STATE_DIR/<name>/`):
ports.json, pki/, kubeconfig (admin), conf/ (component kubeconfigs), etcd/ (data), logs/, run/ (pids).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labenv.errors import ClusterUnavailable, InvalidInput
from labenv.localcluster import processes
from labenv.localcluster.kubeapi import AdminApi, write_kubeconfig
from labenv.localcluster.pki import SERVICE_CIDR, Pki, ensure_pki
from labenv.localcluster.toolchain import (
    Progress,
    Toolchain,
    cache_home,
    ensure_toolchain,
    kwok_stage_files,
    stderr_progress,
    toolchain_paths,
)

KUBECONFIG_IDENTITIES = ("admin", "kube-controller-manager", "kube-scheduler")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
STORAGE_CLASS = "standard"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # it names a directory
_POLL_SECONDS = 0.25
_LOG_TAIL_LINES = 15
# kwok renews each fake node's Lease for this long, like a kubelet (kwokctl's default).
_NODE_LEASE_SECONDS = 40


def state_root() -> Path:
    override = os.environ.get("LABENV_STATE_DIR")
    return Path(override) if override else cache_home() / "clusters"


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def load_or_allocate(cls, path: Path) -> Ports:
        """Free loopback ports chosen at the first `up` and kept, so several clusters can coexist."""
        if path.exists():
            return cls(**json.loads(path.read_text()))
        sockets = [socket.socket() for _ in range(len(cls.__dataclass_fields__))]
        try:
            for s in sockets:  # all bound at once, so no port is handed out twice
                s.bind(("127.0.0.1", 0))
            ports = cls(*(s.getsockname()[1] for s in sockets))
        finally:
            for s in sockets:
                s.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(ports), indent=2))
        return ports


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    pid: int | None
    alive: bool
    log: str


@dataclass(frozen=True)
class NodeStatus:
    name: str
    ready: bool


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    state_dir: str
    kubeconfig: str
    server: str | None
    api_ready: bool
    processes: list[ProcessStatus]
    nodes: list[NodeStatus] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return (
            self.api_ready
            and all(p.alive for p in self.processes)
            and bool(self.nodes)
            and all(n.ready for n in self.nodes)
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


class LocalCluster:
    """One named local cluster. `up()` is idempotent; `down()` succeeds when nothing runs."""

    def __init__(self, name: str = "labenv", nodes: int = 2, progress: Progress = stderr_progress) -> None:
        if not _NAME.fullmatch(name):
            raise InvalidInput(f"cluster name {name!r}: use lowercase letters, digits and '-' (at most 63)")
        self.name = name
        self.node_count = nodes
        self.progress = progress
        self.state_dir = state_root() / name
        self._pki = Pki(self.state_dir / "pki")

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def kubectl(self) -> Path:
        return toolchain_paths().kubectl

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses: the built kubectl first on PATH, KUBECONFIG set to this cluster."""
        path = os.pathsep.join([str(toolchain_paths().bin_dir), os.environ.get("PATH", "")])
        return {**os.environ, "PATH": path, "KUBECONFIG": str(self.kubeconfig)}

    def up(self, timeout: float = 180.0) -> ClusterStatus:
        """Build missing binaries, start whatever is not running, and wait until the cluster is usable.

        A healthy cluster is returned at once; `timeout` (seconds) does not include building.
        """
        toolchain = ensure_toolchain(self.progress)
        with processes.file_lock(self.state_dir / ".lock"):
            started = time.monotonic()
            ports = Ports.load_or_allocate(self.state_dir / "ports.json")
            self._write_credentials(ports)
            api = AdminApi(ports.apiserver, self._pki)
            if self._dead(toolchain) or self._unmet(api):
                self._start_and_wait(toolchain, ports, api, deadline=started + timeout)
                self.progress(f"cluster {self.name} up in {time.monotonic() - started:.0f}s")
        return self.status()

    def _start_and_wait(self, toolchain: Toolchain, ports: Ports, api: AdminApi, deadline: float) -> None:
        """Start dead components in dependency order, each once what it needs answers."""
        commands = self._commands(toolchain, ports)
        self._start(["etcd"], commands, toolchain)
        self._wait(deadline, ["etcd"], toolchain, lambda: [] if _etcd_healthy(ports) else ["etcd /health"])
        self._start(["kube-apiserver"], commands, toolchain)
        self._wait(
            deadline, ["etcd", "kube-apiserver"], toolchain, lambda: [] if api.ready() else ["/readyz"]
        )
        self._start(list(COMPONENTS[2:]), commands, toolchain)
        self._bootstrap(api)
        self._wait(deadline, list(COMPONENTS), toolchain, lambda: self._unmet(api))

    def down(self, purge: bool = False) -> None:
        """Stop every component (SIGTERM, then SIGKILL after 10 s); with purge, delete all state."""
        if not self.state_dir.exists():
            return  # never started (or purged): nothing runs, and no state should appear
        toolchain = toolchain_paths()
        with processes.file_lock(self.state_dir / ".lock"):
            # etcd last: kube-apiserver's graceful shutdown needs etcd and would otherwise wait for SIGKILL.
            for tier in (COMPONENTS[1:], COMPONENTS[:1]):
                processes.stop([p for c in tier if (p := self._pid(c, toolchain)) is not None])
            for component in COMPONENTS:
                self._pid_file(component).unlink(missing_ok=True)
            if purge:
                shutil.rmtree(self.state_dir, ignore_errors=True)

    def restart(self, *components: str, timeout: float = 180.0) -> ClusterStatus:
        """Stop the named components at once, as a crash would (no grace period), then bring the
        cluster back as `up()` does and wait until it is usable. For fault-injection tests."""
        unknown = sorted(set(components) - set(COMPONENTS))
        if unknown:
            raise InvalidInput(f"component: {', '.join(unknown)} is not one of {', '.join(COMPONENTS)}")
        toolchain = toolchain_paths()
        with processes.file_lock(self.state_dir / ".lock"):
            processes.stop(
                [p for c in components if (p := self._pid(c, toolchain)) is not None], grace_seconds=0
            )
        return self.up(timeout)

    def status(self) -> ClusterStatus:
        toolchain = toolchain_paths()
        procs = []
        for c in COMPONENTS:
            pid = self._pid(c, toolchain)
            procs.append(ProcessStatus(c, pid, pid is not None, str(self._log(c))))
        ports_file = self.state_dir / "ports.json"
        if not (ports_file.exists() and self._pki.ca_cert.exists()):
            return ClusterStatus(self.name, str(self.state_dir), str(self.kubeconfig), None, False, procs)
        ports = Ports.load_or_allocate(ports_file)
        api = AdminApi(ports.apiserver, self._pki)
        ready = api.ready()
        nodes = _nodes(api) if ready else []
        server = f"https://127.0.0.1:{ports.apiserver}"
        return ClusterStatus(
            self.name, str(self.state_dir), str(self.kubeconfig), server, ready, procs, nodes
        )

    # --- state ---------------------------------------------------------------------------------

    def _write_credentials(self, ports: Ports) -> None:
        ensure_pki(self._pki.dir)
        server = f"https://127.0.0.1:{ports.apiserver}"
        write_kubeconfig(self.kubeconfig, self.name, server, self._pki, "admin")
        for identity in KUBECONFIG_IDENTITIES:
            write_kubeconfig(self._component_kubeconfig(identity), self.name, server, self._pki, identity)

    def _component_kubeconfig(self, identity: str) -> Path:
        return self.state_dir / "conf" / f"{identity}.kubeconfig"

    def _pid_file(self, component: str) -> Path:
        return self.state_dir / "run" / f"{component}.pid"

    def _log(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    def _pid(self, component: str, toolchain: Toolchain) -> int | None:
        return processes.running_pid(self._pid_file(component), _binary(toolchain, component))

    def _dead(self, toolchain: Toolchain) -> list[str]:
        return [c for c in COMPONENTS if self._pid(c, toolchain) is None]

    # --- processes -----------------------------------------------------------------------------

    def _commands(self, toolchain: Toolchain, ports: Ports) -> dict[str, list[str]]:
        pki, conf = self._pki, self._component_kubeconfig
        return {
            "etcd": _etcd_args(toolchain, ports, self.state_dir / "etcd"),
            "kube-apiserver": _apiserver_args(toolchain, ports, pki),
            "kube-controller-manager": _controller_manager_args(
                toolchain, ports, pki, conf("kube-controller-manager")
            ),
            "kube-scheduler": _scheduler_args(toolchain, ports, conf("kube-scheduler")),
            # kwok plays every node's kubelet, so it acts as cluster admin (as kwokctl does).
            "kwok": _kwok_args(toolchain, ports, conf("admin")),
        }

    def _start(self, components: list[str], commands: dict[str, list[str]], toolchain: Toolchain) -> None:
        for component in components:
            if self._pid(component, toolchain) is None:
                self.progress(f"starting {component} (log {self._log(component)})")
                processes.spawn(
                    commands[component], self._log(component), self._pid_file(component), self.env
                )

    def _wait(
        self, deadline: float, watched: list[str], toolchain: Toolchain, unmet: Callable[[], list[str]]
    ) -> None:
        """Poll until unmet() is empty; fail fast with its log tail if a watched component exits."""
        while True:
            for component in watched:
                if self._pid(component, toolchain) is None:
                    raise ClusterUnavailable(
                        f"{component} of cluster {self.name} exited; log {self._log(component)} ends:\n"
                        + _tail(self._log(component))
                    )
            missing = unmet()
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ClusterUnavailable(
                    f"cluster {self.name} not ready in time; still waiting for: {', '.join(missing)}"
                )
            time.sleep(_POLL_SECONDS)

    # --- objects -------------------------------------------------------------------------------

    def _bootstrap(self, api: AdminApi) -> None:
        api.create("/apis/storage.k8s.io/v1/storageclasses", _storage_class())
        for index in range(self.node_count):
            api.create("/api/v1/nodes", _fake_node(index))

    def _unmet(self, api: AdminApi) -> list[str]:
        """What still keeps the cluster from being usable; empty when it is."""
        if not api.ready():
            return ["/readyz"]
        unmet = []
        if not api.exists("/api/v1/namespaces/default/serviceaccounts/default"):
            unmet.append("ServiceAccount default/default")
        if not api.exists(f"/apis/storage.k8s.io/v1/storageclasses/{STORAGE_CLASS}"):
            unmet.append(f"StorageClass {STORAGE_CLASS}")
        ready = sum(n.ready for n in _nodes(api))
        if ready < self.node_count:
            unmet.append(f"Ready nodes ({ready}/{self.node_count})")
        return unmet


# --- component command lines -----------------------------------------------------------------------


def _binary(toolchain: Toolchain, component: str) -> Path:
    path: Path = getattr(toolchain, component.replace("-", "_"))
    return path


def _etcd_args(toolchain: Toolchain, ports: Ports, data_dir: Path) -> list[str]:
    client, peer = f"http://127.0.0.1:{ports.etcd_client}", f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(toolchain.etcd),
        "--name=labenv",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=labenv={peer}",
        # Throwaway data: skipping fsync makes etcd (and so every API write) much faster (envtest does this).
        "--unsafe-no-fsync",
        "--auto-compaction-retention=1",
    ]


def _apiserver_args(toolchain: Toolchain, ports: Ports, pki: Pki) -> list[str]:
    return [
        str(toolchain.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--tls-cert-file={pki.apiserver_cert}",
        f"--tls-private-key-file={pki.apiserver_key}",
        f"--client-ca-file={pki.ca_cert}",
        # The default authorizer is AlwaysAllow; Node,RBAC is what real clusters (kubeadm) run.
        "--authorization-mode=Node,RBAC",
        # Default admission plugins (incl. PodSecurity, ServiceAccount) stay on; NodeRestriction as kubeadm.
        "--enable-admission-plugins=NodeRestriction",
        # Privileged pods are allowed cluster-wide so that Pod Security labels decide, as on real clusters.
        "--allow-privileged=true",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        # Issuer and signing key make TokenRequest (`kubectl create token`, projected SA tokens) work.
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        # The lease reconciler would publish 127.0.0.1 as the `kubernetes` Service endpoint, which fails
        # validation every 10 s ("may not be in the loopback range"); kwokctl sets none for the same reason.
        "--endpoint-reconciler-type=none",
        # Aggregation layer as kubeadm configures it. KCM and the scheduler read this CA from the
        # extension-apiserver-authentication ConfigMap and log errors without it.
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.client_cert('front-proxy-client')}",
        f"--proxy-client-key-file={pki.client_key('front-proxy-client')}",
    ]


def _delegated_auth(kubeconfig: Path, port: int) -> list[str]:
    # Serve /healthz etc. on 127.0.0.1 only; authn/authz of other requests is delegated to the apiserver.
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
    ]


def _controller_manager_args(toolchain: Toolchain, ports: Ports, pki: Pki, kubeconfig: Path) -> list[str]:
    return [
        str(toolchain.kube_controller_manager),
        *_delegated_auth(kubeconfig, ports.controller_manager),
        "--controllers=*",
        # Each controller uses its own ServiceAccount, so RBAC applies to controllers as on kubeadm clusters.
        "--use-service-account-credentials=true",
        f"--root-ca-file={pki.ca_cert}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        # No CSI driver or cloud here: the in-tree host-path provisioner binds PVCs of StorageClass
        # `standard` (as kubernetes hack/local-up-cluster.sh does). Nothing mounts them: kwok runs no
        # containers.
        "--enable-hostpath-provisioner=true",
    ]


def _scheduler_args(toolchain: Toolchain, ports: Ports, kubeconfig: Path) -> list[str]:
    return [str(toolchain.kube_scheduler), *_delegated_auth(kubeconfig, ports.scheduler)]


def _kwok_args(toolchain: Toolchain, ports: Ports, kubeconfig: Path) -> list[str]:
    return [
        str(toolchain.kwok),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=true",
        *(f"--config={stage}" for stage in kwok_stage_files()),
        f"--server-address=127.0.0.1:{ports.kwok}",
        f"--node-lease-duration-seconds={_NODE_LEASE_SECONDS}",
    ]


# --- objects and probes --------------------------------------------------------------------------------


def _storage_class() -> dict[str, Any]:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def _fake_node(index: int) -> dict[str, Any]:
    """A node like kwokctl's template (kustomize/kwokctl/resource/node.yaml); status is accepted on create."""
    name = f"kwok-node-{index}"
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/role": "agent",
                "node-role.kubernetes.io/agent": "",
                "type": "kwok",
            },
        },
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"]},
        "status": {
            # Both address types present, or kwok's node-initialize stage replaces the list with its own
            # --node-ip/--node-name (empty here).
            "addresses": [
                {"type": "InternalIP", "address": f"192.0.2.{index + 1}"},
                {"type": "Hostname", "address": name},
            ],
            "allocatable": resources,
            "capacity": resources,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def _nodes(api: AdminApi) -> list[NodeStatus]:
    status, body = api.request("GET", "/api/v1/nodes")
    if status != 200:
        return []
    return [
        NodeStatus(
            item["metadata"]["name"],
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in item.get("status", {}).get("conditions", [])
            ),
        )
        for item in body["items"]
    ]


def _etcd_healthy(ports: Ports) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports.etcd_client}/health", timeout=2) as response:
            return bool(json.load(response).get("health") == "true")
    except OSError:
        return False


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:])
    except OSError:
        return "(no log)"
