"""Every operator setting in one place, read from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass(frozen=True)
class OperatorConfig:
    # The learner workspace image, built from images/workspace by the platform team.
    workspace_image: str = "ghcr.io/labenv/workspace:0.1.0"
    # How often the sweeper deletes expired sessions and orphaned namespaces.
    sweep_interval: float = 30.0
    # Watch streams are closed by the server after this long and re-opened: no silent stuck watches.
    watch_server_timeout: float = 300.0
    watch_client_timeout: float = 330.0
    connect_timeout: float = 10.0
    # Delay before a handler that hit a transient API error runs again.
    retry_delay: float = 5.0
    # Prometheus metrics on this port (0: off).
    metrics_port: int = 9090
    # Kopf peering name for several replicas (only the highest priority one is active); empty:
    # standalone. Each replica picks a random priority unless one is given.
    peering: str = ""
    peering_priority: int = 0

    @classmethod
    def from_env(cls) -> OperatorConfig:
        return cls(
            workspace_image=os.environ.get("LABENV_WORKSPACE_IMAGE", cls.workspace_image),
            sweep_interval=_float("LABENV_SWEEP_INTERVAL", cls.sweep_interval),
            watch_server_timeout=_float("LABENV_WATCH_SERVER_TIMEOUT", cls.watch_server_timeout),
            watch_client_timeout=_float("LABENV_WATCH_CLIENT_TIMEOUT", cls.watch_client_timeout),
            connect_timeout=_float("LABENV_CONNECT_TIMEOUT", cls.connect_timeout),
            retry_delay=_float("LABENV_RETRY_DELAY", cls.retry_delay),
            metrics_port=int(os.environ.get("LABENV_METRICS_PORT", cls.metrics_port)),
            peering=os.environ.get("LABENV_PEERING", ""),
            peering_priority=int(os.environ.get("LABENV_PEERING_PRIORITY", "0")),
        )
