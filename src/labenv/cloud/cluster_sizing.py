"""How many nodes a cohort needs (pure arithmetic, tested on its own).

A learner's lab requests what its unit's components request plus the learner's headroom (the same
sum that sizes the namespace quota, computed by the CLI from the catalog). Nodes keep 10% CPU and
20% memory for the kubelet, the system and eviction thresholds, and are filled to 80% at most so a
rolling node upgrade or a burst still fits. The platform itself (operator, ingress, DNS, CNI; Istio
when a course needs it) comes on top.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labenv.cloud.config import Capacity

ALLOCATABLE_CPU = 0.9
ALLOCATABLE_MEMORY = 0.8
TARGET_UTILISATION = 0.8
MIN_NODES = 2
PLATFORM = Capacity(cpu_millis=1500, memory_mib=3072)
ISTIO = Capacity(cpu_millis=1000, memory_mib=2048)

# Machine types labenv knows the size of (vCPU in millicores, memory in MiB).
MACHINES: dict[str, Capacity] = {
    "m7i.large": Capacity(cpu_millis=2000, memory_mib=8192),
    "m7i.xlarge": Capacity(cpu_millis=4000, memory_mib=16384),
    "m7i.2xlarge": Capacity(cpu_millis=8000, memory_mib=32768),
    "r7i.xlarge": Capacity(cpu_millis=4000, memory_mib=32768),
    "t3.xlarge": Capacity(cpu_millis=4000, memory_mib=16384),
    "e2-standard-4": Capacity(cpu_millis=4000, memory_mib=16384),
    "e2-standard-8": Capacity(cpu_millis=8000, memory_mib=32768),
    "e2-highmem-4": Capacity(cpu_millis=4000, memory_mib=32768),
    "n2-standard-4": Capacity(cpu_millis=4000, memory_mib=16384),
    "n2-standard-8": Capacity(cpu_millis=8000, memory_mib=32768),
}
DEFAULT_MACHINE = {"aws": "m7i.xlarge", "gcp": "e2-standard-4"}


@dataclass(frozen=True)
class NodePoolSize:
    minimum: int
    desired: int
    maximum: int


def machine(name: str) -> Capacity:
    try:
        return MACHINES[name]
    except KeyError:
        known = ", ".join(sorted(MACHINES))
        raise ValueError(f"machine type {name!r}: size unknown to labenv (known: {known})") from None


def node_pool_size(
    learners: int, per_learner: Capacity, machine_type: str, istio: bool = False
) -> NodePoolSize:
    size = machine(machine_type)
    platform = [PLATFORM, ISTIO] if istio else [PLATFORM]
    cpu = learners * per_learner.cpu_millis + sum(c.cpu_millis for c in platform)
    memory = learners * per_learner.memory_mib + sum(c.memory_mib for c in platform)
    by_cpu = math.ceil(cpu / (size.cpu_millis * ALLOCATABLE_CPU * TARGET_UTILISATION))
    by_memory = math.ceil(memory / (size.memory_mib * ALLOCATABLE_MEMORY * TARGET_UTILISATION))
    desired = max(MIN_NODES, by_cpu, by_memory)
    return NodePoolSize(
        minimum=max(MIN_NODES, math.ceil(desired / 2)),
        desired=desired,
        maximum=desired + math.ceil(desired / 2),
    )
