"""Kubeconfigs for the bootstrapped clusters: exec credentials, never a static token."""

from __future__ import annotations

from typing import Any

import yaml


def render(name: str, endpoint: str, ca_data: str, command: str, args: list[str]) -> str:
    """A one-cluster kubeconfig whose user runs `command args` for a token (exec credential v1beta1)."""
    server = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    user: dict[str, Any] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": command,
            "args": args,
            "interactiveMode": "Never",
            "provideClusterInfo": command == "gke-gcloud-auth-plugin",
        }
    }
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return yaml.safe_dump(config, sort_keys=False)


def eks(name: str, endpoint: str, ca_data: str, region: str) -> str:
    return render(
        name, endpoint, ca_data, "aws", ["eks", "get-token", "--cluster-name", name, "--region", region]
    )


def gke(name: str, endpoint: str, ca_data: str) -> str:
    return render(name, endpoint, ca_data, "gke-gcloud-auth-plugin", [])
