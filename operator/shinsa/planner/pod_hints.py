"""Pod settings that follow from a plan: /dev/shm size and how long startup may take."""

from __future__ import annotations

import math

# vLLM's processes exchange requests and tensors through /dev/shm (the 64 MiB container default breaks
# it). One GPU needs a little for the frontend <-> engine queues; every further GPU in the pod adds NCCL
# shared-memory transport buffers and another worker's broadcast queue.
SHM_BASE_GIB = 2
SHM_PER_ADDITIONAL_GPU_GIB = 2

# Startup = engine initialisation that does not depend on model size (memory profiling, torch.compile,
# CUDA-graph capture) + reading the weights. 4 s/GiB assumes ~250 MiB/s from a PVC or a cache volume;
# downloading from the Hub at startup can be far slower and should be done ahead of time.
STARTUP_BASE_SECONDS = 300
STARTUP_SECONDS_PER_WEIGHT_GIB = 4
STARTUP_ROUND_TO_SECONDS = 30


def shm_size_gib(gpus_per_pod: int) -> int:
    return SHM_BASE_GIB + SHM_PER_ADDITIONAL_GPU_GIB * (gpus_per_pod - 1)


def startup_probe_seconds(weights_gib: float) -> int:
    seconds = STARTUP_BASE_SECONDS + STARTUP_SECONDS_PER_WEIGHT_GIB * weights_gib
    return math.ceil(seconds / STARTUP_ROUND_TO_SECONDS) * STARTUP_ROUND_TO_SECONDS
