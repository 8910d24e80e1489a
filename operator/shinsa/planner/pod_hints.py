"""Pod settings that follow from a plan: /dev/shm size and how long startup may take."""

from __future__ import annotations

import math

# vLLM's processes exchange requests and tensors through /dev/shm (the 64 MiB container default breaks
# it). One GPU needs a little for the frontend <-> engine queues; every further GPU in the pod adds NCCL
# shared-memory transport buffers and another worker's broadcast queue.
SHM_BASE_GIB = 2
SHM_PER_ADDITIONAL_GPU_GIB = 2

# Startup = engine initialisation that does not depend on model size (memory profiling, torch.compile,
# CUDA-graph capture) + getting the weights into GPU memory, at a stated rate per source. These are
# the budget's assumptions, not measurements of any cluster: a slower link, a cold Hub CDN or a
# congested bucket needs `spec.serving.startupTimeoutSeconds`.
STARTUP_BASE_SECONDS = 300
WEIGHT_MIB_PER_SECOND = {
    # A Hub download into the pod's cache: ~50 MiB/s is what a single pod sustains from the CDN on
    # a shared egress, about 20 s per GiB.
    "hub": 50,
    # The Run:ai streamer reads a bucket in parallel straight into GPU memory.
    "bucket": 200,
    # A PVC or a warm cache volume.
    "volume": 250,
}
STARTUP_ROUND_TO_SECONDS = 30


def shm_size_gib(gpus_per_pod: int) -> int:
    return SHM_BASE_GIB + SHM_PER_ADDITIONAL_GPU_GIB * (gpus_per_pod - 1)


def startup_probe_seconds(weights_gib: float, source: str = "volume") -> int:
    """How long a pod may take to answer /health: the fixed initialisation plus reading
    `weights_gib` from `source` (`hub`, `bucket` or `volume`) at its stated rate."""
    seconds = STARTUP_BASE_SECONDS + weights_gib * 1024 / WEIGHT_MIB_PER_SECOND[source]
    return math.ceil(seconds / STARTUP_ROUND_TO_SECONDS) * STARTUP_ROUND_TO_SECONDS
