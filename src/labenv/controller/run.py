"""Start Kopf with labenv's handlers and explicit settings."""

from __future__ import annotations

import asyncio
import logging
import random

import kopf

from labenv.controller.config import OperatorConfig


def main(liveness: str | None = None, verbose: bool = False) -> None:
    """Run until interrupted: standalone, or as one of several peered replicas (LABENV_PEERING)."""
    import labenv.controller.cohort_handlers
    import labenv.controller.handlers  # noqa: F401  (importing registers the handlers with Kopf)

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # Kopf logs every handler call for every watched object at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    config = OperatorConfig.from_env()
    # Replicas with equal priorities would all pause (Kopf's peering rule): pick distinct ones.
    priority = config.peering_priority or random.SystemRandom().randint(1, 1_000_000)
    # Cluster-wide: the lab workloads it watches live in one namespace per session.
    asyncio.run(
        kopf.operator(
            standalone=not config.peering,
            peering_name=config.peering or None,
            priority=priority,
            clusterwide=True,
            liveness_endpoint=liveness,
        )
    )
