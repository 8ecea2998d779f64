"""Finding the cluster and credentials as kubectl does, from kubeconfig files and plugins."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

from labenv.errors import ClusterUnavailable
from labenv.kube import credentials
from labenv.kube.credentials import ExecPlugin, from_kubeconfig, load, run_exec_plugin

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(path: Path, context: str, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": context, "cluster": cluster}],
                "users": [{"name": context, "user": user}],
                "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
                "current-context": context,
            }
        )
    )
    return path


def test_embedded_ca_and_token(tmp_path: Path) -> None:
    data = base64.b64encode(CA.encode()).decode()
    path = kubeconfig(
        tmp_path / "config",
        "lab",
        {"server": "https://127.0.0.1:6443/", "certificate-authority-data": data},
        {"token": "t0k"},
    )
    found = from_kubeconfig([path])
    assert (found.server, found.ca_pem, found.insecure) == ("https://127.0.0.1:6443", CA, False)
    assert asyncio.run(found.authorization()) == "Bearer t0k"


def test_file_paths_are_relative_to_the_kubeconfig_that_names_them(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_text(CA)
    (tmp_path / "certs" / "token").write_text("from-a-file\n")
    path = kubeconfig(
        tmp_path / "config",
        "lab",
        {"server": "https://k", "certificate-authority": "certs/ca.crt"},
        {"tokenFile": "certs/token"},
    )
    found = from_kubeconfig([path])
    assert found.ca_pem == CA
    assert asyncio.run(found.authorization()) == "Bearer from-a-file"


def test_several_files_merge_and_the_first_current_context_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "a", "one", {"server": "https://one"}, {"token": "1"})
    second = kubeconfig(tmp_path / "b", "two", {"server": "https://two"}, {"token": "2"})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(tmp_path / "missing"), str(first), str(second)]))
    assert load().server == "https://one"
    assert load(context="two").server == "https://two"


def test_a_named_kubeconfig_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnavailable, match="nope does not exist"):
        load(str(tmp_path / "nope"))


def test_an_unknown_context_is_an_error_naming_it(tmp_path: Path) -> None:
    path = kubeconfig(tmp_path / "config", "lab", {"server": "https://k"}, {})
    with pytest.raises(ClusterUnavailable, match="context 'other' is not defined"):
        load(str(path), context="other")


def test_in_a_pod_the_service_account_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text(CA)
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    found = load()
    assert found.server == "https://[fd00::1]:443"
    assert asyncio.run(found.authorization()) == "Bearer sa-token"


def plugin(tmp_path: Path, output: str, code: int = 0) -> ExecPlugin:
    script = tmp_path / "plugin"
    script.write_text(
        f'#!/bin/sh\necho "$KUBERNETES_EXEC_INFO" > {tmp_path}/info\n'
        f"cat <<'EOF'\n{output}\nEOF\nexit {code}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return ExecPlugin(command=str(script), env=(("REGION", "eu"),))


def test_an_exec_plugin_token_is_used_until_it_nearly_expires(tmp_path: Path) -> None:
    token, lifetime = asyncio.run(
        run_exec_plugin(
            plugin(tmp_path, '{"status": {"token": "exec-t", "expirationTimestamp": "2999-01-01T00:00:00Z"}}')
        )
    )
    assert token == "exec-t"
    assert lifetime > 3600
    assert '"kind": "ExecCredential"' in (tmp_path / "info").read_text()


def test_a_failing_exec_plugin_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnavailable, match=r"exec plugin .* failed"):
        asyncio.run(run_exec_plugin(plugin(tmp_path, "", code=1)))
