"""Build the control-plane binaries from Go modules into a version-keyed cache outside the repo.

Nothing is downloaded except Go modules from the Go module proxy. Each component gets its own wrapper
module (`~/.cache/labenv/toolchain/<component>-<version>/`, binaries in `bin/`) so minimal version
selection never mixes the dependency sets that Kubernetes, etcd and kwok were each tested with.
A binary that exists is never rebuilt; the cache key is the version in the directory name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labenv.errors import ClusterUnavailable
from labenv.localcluster import versions
from labenv.localcluster.processes import file_lock

Progress = Callable[[str], None]

_HEARTBEAT_SECONDS = 30
_ERROR_TAIL_LINES = 25


class BuildFailed(ClusterUnavailable):
    """A `go` command failed; the message ends with the tail of its output."""


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Binary:
    name: str
    package: str


@dataclass(frozen=True)
class BuildSet:
    """One wrapper module: a Go module at a pinned version and the main packages built from it."""

    component: str
    module: str
    version: str
    binaries: tuple[Binary, ...]
    tags: str = ""
    ldflags: tuple[str, ...] = ("-s", "-w")
    # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging paths,
    # which a dependency's go.mod cannot do for us (kubernetes/kubernetes#79384, golang/go#32776).
    replace_staging: bool = False

    def workdir(self, root: Path) -> Path:
        return root / f"{self.component}-{self.version}"

    def path(self, root: Path, binary: str) -> Path:
        return self.workdir(root) / "bin" / binary

    def missing(self, root: Path) -> list[Binary]:
        return [b for b in self.binaries if not os.access(self.path(root, b.name), os.X_OK)]


def staging_version(kubernetes_version: str) -> str:
    """v1.36.3 -> v0.36.3: the tag of every published staging module for that release."""
    major, minor, patch = kubernetes_version.removeprefix("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version}")
    return f"v0.{minor}.{patch}"


def _kubernetes_ldflags(version: str) -> tuple[str, ...]:
    # Same keys as upstream hack/lib/version.sh: kubectl and client libraries read /version.
    minor = version.removeprefix("v").split(".")[1]
    values = {"gitVersion": version, "gitMajor": "1", "gitMinor": minor, "gitTreeState": "clean"}
    return (
        "-s",
        "-w",
        *(
            f"-X {pkg}.{key}={value}"
            for pkg in ("k8s.io/client-go/pkg/version", "k8s.io/component-base/version")
            for key, value in values.items()
        ),
    )


def _helm_ldflags(version: str) -> tuple[str, ...]:
    # Upstream Makefile (helm.sh/helm/v4 Makefile, LDFLAGS) for a tagged build: `helm version` reports it.
    return (
        "-s",
        "-w",
        f"-X helm.sh/helm/v4/internal/version.version={version}",
        "-X helm.sh/helm/v4/internal/version.gitTreeState=clean",
    )


def _kubernetes_binary(name: str) -> Binary:
    return Binary(name, f"k8s.io/kubernetes/cmd/{name}")


BUILD_SETS: tuple[BuildSet, ...] = (
    BuildSet(
        component="etcd",
        module="go.etcd.io/etcd/server/v3",
        version=versions.ETCD,
        binaries=(Binary("etcd", "go.etcd.io/etcd/server/v3"),),
    ),
    BuildSet(
        component="kubernetes",
        module="k8s.io/kubernetes",
        version=versions.KUBERNETES,
        binaries=tuple(
            _kubernetes_binary(n)
            for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ),
        # Upstream release tags (hack/lib/golang.sh); grpcnotrace drops x/net/trace, which defeats dead-code
        # elimination.
        tags="selinux,notest,grpcnotrace",
        ldflags=_kubernetes_ldflags(versions.KUBERNETES),
        replace_staging=True,
    ),
    BuildSet(
        component="kwok",
        module="sigs.k8s.io/kwok",
        version=versions.KWOK,
        binaries=(Binary("kwok", "sigs.k8s.io/kwok/cmd/kwok"),),
    ),
    # Not part of the control plane: the client that installs charts/labenv in tests and on real clusters.
    BuildSet(
        component="helm",
        module="helm.sh/helm/v4",
        version=versions.HELM,
        binaries=(Binary("helm", "helm.sh/helm/v4/cmd/helm"),),
        ldflags=_helm_ldflags(versions.HELM),
    ),
)


@dataclass(frozen=True)
class Toolchain:
    """Absolute paths of the built binaries."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    helm: Path

    @property
    def bin_dir(self) -> Path:
        """The directory holding kubectl: put it first on PATH for subprocesses."""
        return self.kubectl.parent


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labenv"


def toolchain_root() -> Path:
    return cache_home() / "toolchain"


def toolchain_paths(root: Path | None = None) -> Toolchain:
    """Where the binaries are (or will be) for the pinned versions; builds nothing."""
    root = root or toolchain_root()
    paths = {b.name.replace("-", "_"): s.path(root, b.name) for s in BUILD_SETS for b in s.binaries}
    return Toolchain(**paths)


def ensure_toolchain(progress: Progress = stderr_progress, root: Path | None = None) -> Toolchain:
    """Build every missing binary (all of them on the first run, none afterwards) and return their paths."""
    root = root or toolchain_root()
    todo = [(s, s.missing(root)) for s in BUILD_SETS]
    todo = [(s, missing) for s, missing in todo if missing]
    if todo:
        _Builder(_go_binary(), root, progress, total=sum(len(m) for _, m in todo)).build(todo)
    return toolchain_paths(root)


def kwok_stage_files(root: Path | None = None) -> list[Path]:
    """The stages kwokctl installs by default, read from the kwok module in the Go module cache.

    Mirrors kwok pkg/kwokctl/runtime/cluster.go (getDefaultNodeStages with a lease, getDefaultPodStages).
    `go mod download` finds the module's directory, and fetches it again if the module cache was cleaned.
    """
    kwok = next(s for s in BUILD_SETS if s.component == "kwok")
    workdir = kwok.workdir(root or toolchain_root())
    info = _go_json(_go_binary(), ["mod", "download", "-json", f"{kwok.module}@{kwok.version}"], workdir)
    stage = Path(info["Dir"]) / "kustomize" / "stage"
    files = [
        stage / "node/fast/node-initialize.yaml",
        stage / "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        stage / "pod/fast/pod-ready.yaml",
        stage / "pod/fast/pod-complete.yaml",
        stage / "pod/fast/pod-delete.yaml",
    ]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise ClusterUnavailable(f"kwok stage files missing from the Go module cache: {', '.join(absent)}")
    return files


def _go_binary() -> Path:
    found = os.environ.get("LABENV_GO") or shutil.which("go") or "/usr/local/go/bin/go"
    go = Path(found)
    if not os.access(go, os.X_OK):
        raise ClusterUnavailable(
            f"no Go toolchain at {go}: install Go {'.'.join(map(str, versions.GO_MINIMUM))}+"
        )
    return go


def _go_env() -> dict[str, str]:
    # Never let `go` fetch another toolchain; static binaries like upstream release builds.
    return {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}


def _go_json(go: Path, args: list[str], cwd: Path) -> dict[str, Any]:
    done = subprocess.run(
        [str(go), *args], cwd=cwd, env=_go_env(), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BuildFailed(f"go {' '.join(args)} failed:\n{_tail(done.stderr)}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _tail(text: str) -> str:
    return "\n".join(text.rstrip().splitlines()[-_ERROR_TAIL_LINES:])


def _check_go_version(go: Path) -> None:
    done = subprocess.run(
        [str(go), "env", "GOVERSION"], env=_go_env(), capture_output=True, text=True, check=False
    )
    found = re.match(r"go(\d+)\.(\d+)", done.stdout.strip())
    if not found or (int(found[1]), int(found[2])) < versions.GO_MINIMUM:
        need = ".".join(map(str, versions.GO_MINIMUM))
        raise ClusterUnavailable(
            f"{go} reports {done.stdout.strip() or done.stderr.strip()!r}; need Go {need}+"
        )


class _Builder:
    def __init__(self, go: Path, root: Path, progress: Progress, total: int) -> None:
        self.go, self.root, self.progress, self.total = go, root, progress, total
        self.step = 0

    def build(self, todo: list[tuple[BuildSet, list[Binary]]]) -> None:
        _check_go_version(self.go)
        for build_set, _ in todo:
            with file_lock(build_set.workdir(self.root) / ".lock"):
                missing = build_set.missing(self.root)  # another process may have built them meanwhile
                if missing:
                    self._prepare(build_set)
                for binary in missing:
                    self._build_binary(build_set, binary)

    def _prepare(self, s: BuildSet) -> None:
        """Create the wrapper module and add the main packages as `tool` dependencies (Go >= 1.24)."""
        workdir = s.workdir(self.root)
        if not (workdir / "go.mod").exists():
            self._go(["mod", "init", f"local.invalid/labenv-{s.component}"], workdir, f"creating {workdir}")
        if s.replace_staging:
            self._replace_staging(s, workdir)
        tools = [f"{b.package}@{s.version}" for b in s.binaries]
        self._go(["get", "-tool", *tools], workdir, f"resolving {s.component} {s.version} modules")

    def _replace_staging(self, s: BuildSet, workdir: Path) -> None:
        info = _go_json(self.go, ["mod", "download", "-json", f"{s.module}@{s.version}"], workdir)
        upstream = _go_json(self.go, ["mod", "edit", "-json", info["GoMod"]], workdir)
        edits = [f"-replace={m}={m}@{staging_version(s.version)}" for m in staging_modules(upstream)]
        # Keep upstream's GODEBUG defaults: they decide behaviour such as TLS and x509 parsing.
        edits += [f"-godebug={d['Key']}={d['Value']}" for d in upstream.get("GoDebug") or []]
        self._go(
            ["mod", "edit", *edits],
            workdir,
            f"pinning k8s.io staging modules to {staging_version(s.version)}",
        )

    def _build_binary(self, s: BuildSet, binary: Binary) -> None:
        self.step += 1
        label = f"[{self.step}/{self.total}]"
        final = s.path(self.root, binary.name)
        partial = final.with_name(f".{binary.name}.partial")
        args = ["build", "-mod=mod", "-trimpath", "-ldflags", " ".join(s.ldflags), "-o", str(partial)]
        args += [f"-tags={s.tags}"] if s.tags else []
        started = time.monotonic()
        self._go([*args, binary.package], s.workdir(self.root), f"{label} building {binary.name} {s.version}")
        partial.replace(final)  # only a complete binary ever has the final name
        self.progress(f"{label} built {binary.name} in {time.monotonic() - started:.0f}s: {final}")

    def _go(self, args: list[str], cwd: Path, what: str) -> None:
        """Run go with output in build.log; report progress every 30 s; raise with the log tail on failure."""
        log_path = cwd / "build.log"
        started = time.monotonic()
        self.progress(f"{what} ...")
        with log_path.open("a") as log:
            log.write(f"\n$ go {' '.join(args)}\n")
            log.flush()
            proc = subprocess.Popen([str(self.go), *args], cwd=cwd, env=_go_env(), stdout=log, stderr=log)
            while True:
                try:
                    code = proc.wait(timeout=_HEARTBEAT_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    self.progress(f"{what} ... {time.monotonic() - started:.0f}s")
        if code != 0:
            tail = _tail(log_path.read_text(errors="replace"))
            raise BuildFailed(f"{what} failed (go exit {code}; full log {log_path}):\n{tail}")


def staging_modules(upstream_gomod: dict[str, Any]) -> list[str]:
    """Modules that k8s.io/kubernetes' go.mod (as `go mod edit -json`) replaces with ./staging paths."""
    return sorted(
        r["Old"]["Path"]
        for r in upstream_gomod.get("Replace") or []
        if r["New"]["Path"].startswith("./staging/")
    )
