"""The binary cache: where binaries live, that present ones are never rebuilt, and how failures read."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from labenv.errors import ClusterUnavailable
from labenv.localcluster import toolchain
from labenv.localcluster.toolchain import (
    BUILD_SETS,
    BuildFailed,
    ensure_toolchain,
    staging_modules,
    staging_version,
    toolchain_paths,
)

ALL_BINARIES = [(s, b.name) for s in BUILD_SETS for b in s.binaries]


def _executable(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _fake_go(tmp_path: Path, script: str) -> Path:
    go = tmp_path / "fake-go"
    _executable(go, f"#!/bin/sh\n{script}\n")
    return go


def test_binaries_live_in_version_keyed_dirs(tmp_path: Path) -> None:
    paths = toolchain_paths(tmp_path)
    assert paths.kube_apiserver == tmp_path / "kubernetes-v1.36.3" / "bin" / "kube-apiserver"
    assert paths.etcd == tmp_path / "etcd-v3.6.10" / "bin" / "etcd"
    assert paths.kwok == tmp_path / "kwok-v0.8.0" / "bin" / "kwok"
    assert paths.bin_dir == paths.kubectl.parent


def test_default_cache_follows_xdg_cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert (
        toolchain_paths().kubectl
        == tmp_path / "labenv" / "toolchain" / "kubernetes-v1.36.3" / "bin" / "kubectl"
    )


def test_nothing_is_built_when_all_binaries_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for build_set, name in ALL_BINARIES:
        _executable(build_set.path(tmp_path, name))
    monkeypatch.setenv("LABENV_GO", str(tmp_path / "no-such-go"))  # any go call would fail loudly
    lines: list[str] = []

    assert ensure_toolchain(lines.append, root=tmp_path) == toolchain_paths(tmp_path)
    assert lines == []


def test_only_missing_binaries_are_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for build_set, name in ALL_BINARIES:
        if name != "kubectl":
            _executable(build_set.path(tmp_path, name))
    upstream: dict[str, Any] = {
        "Replace": [
            {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
            {"Old": {"Path": "example.com/x"}, "New": {"Path": "example.com/y", "Version": "v1.0.0"}},
        ],
        "GoDebug": [{"Key": "default", "Value": "go1.26"}],
    }
    go_runs: list[list[str]] = []

    def fake_go(self: Any, args: list[str], cwd: Path, what: str) -> None:
        go_runs.append(args)
        if args[0] == "build":
            _executable(Path(args[args.index("-o") + 1]))

    monkeypatch.setattr(toolchain, "_go_binary", lambda: Path("/bin/true"))
    monkeypatch.setattr(toolchain, "_check_go_version", lambda go: None)
    monkeypatch.setattr(toolchain, "_go_json", lambda go, args, cwd: {"GoMod": "x", **upstream})
    monkeypatch.setattr(toolchain._Builder, "_go", fake_go)
    lines: list[str] = []

    paths = ensure_toolchain(lines.append, root=tmp_path)

    builds = [r for r in go_runs if r[0] == "build"]
    assert [r[-1] for r in builds] == ["k8s.io/kubernetes/cmd/kubectl"]
    assert "-tags=selinux,notest,grpcnotrace" in builds[0]
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in builds[0][builds[0].index("-ldflags") + 1]
    edit = next(r for r in go_runs if r[:2] == ["mod", "edit"])
    assert edit[2:] == ["-replace=k8s.io/api=k8s.io/api@v0.36.3", "-godebug=default=go1.26"]
    assert go_runs[-2][:3] == ["get", "-tool", "k8s.io/kubernetes/cmd/kube-apiserver@v1.36.3"]
    assert lines[-1].startswith("[1/1] built kubectl in ")
    assert paths.kubectl.is_file()
    assert not list(paths.bin_dir.glob(".*.partial"))


def test_build_failure_reports_the_go_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go = _fake_go(
        tmp_path,
        'if [ "$1" = env ]; then echo go1.26.8; exit 0; fi\n'
        'echo "go: k8s.io/kubernetes@v9.9.9: reading https://proxy.golang.org: 404 Not Found" >&2; exit 1',
    )
    monkeypatch.setenv("LABENV_GO", str(go))

    with pytest.raises(BuildFailed, match=r"(?s)exit 1.*404 Not Found"):
        ensure_toolchain(lambda line: None, root=tmp_path / "cache")


def test_too_old_go_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABENV_GO", str(_fake_go(tmp_path, "echo go1.19.8")))

    with pytest.raises(ClusterUnavailable, match=r"need Go 1\.26\+"):
        ensure_toolchain(lambda line: None, root=tmp_path / "cache")


def test_staging_modules_are_the_ones_upstream_replaces_with_local_paths() -> None:
    gomod = {
        "Replace": [
            {"Old": {"Path": "k8s.io/client-go"}, "New": {"Path": "./staging/src/k8s.io/client-go"}},
            {"Old": {"Path": "k8s.io/api"}, "New": {"Path": "./staging/src/k8s.io/api"}},
            {"Old": {"Path": "github.com/a/b"}, "New": {"Path": "github.com/c/b", "Version": "v1.2.3"}},
        ]
    }
    assert staging_modules(gomod) == ["k8s.io/api", "k8s.io/client-go"]
    assert staging_modules({}) == []


@pytest.mark.parametrize(("kubernetes", "staging"), [("v1.36.3", "v0.36.3"), ("1.34.10", "v0.34.10")])
def test_staging_version(kubernetes: str, staging: str) -> None:
    assert staging_version(kubernetes) == staging
