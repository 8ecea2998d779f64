"""Start Kopf with labenv's handlers and explicit settings."""

from __future__ import annotations

import asyncio
import logging

import kopf


def main(standalone: bool = True, liveness: str | None = None, verbose: bool = False) -> None:
    """Run until interrupted. Standalone unless HA peering is asked for (see the Helm chart)."""
    import labenv.controller.cohort_handlers
    import labenv.controller.handlers  # noqa: F401  (importing registers the handlers with Kopf)

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # Kopf logs every handler call for every watched object at INFO
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # Cluster-wide: the lab workloads it watches live in one namespace per session.
    asyncio.run(kopf.operator(standalone=standalone, clusterwide=True, liveness_endpoint=liveness))
