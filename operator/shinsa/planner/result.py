"""What the planner answers: a layout, its memory budget, and the arguments that realise it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


def camel_case_with_gib(name: str) -> str:
    """camelCase, keeping the unit as written: weights_gib -> weightsGiB."""
    camel = to_camel(name)
    return camel[: -len("Gib")] + "GiB" if camel.endswith("Gib") else camel


class Plan(BaseModel):
    """A serving plan for one replica. Serialise with `model_dump(by_alias=True)` for camelCase keys, the
    form a ModelDeployment's status carries."""

    model_config = ConfigDict(frozen=True, alias_generator=camel_case_with_gib, populate_by_name=True)

    layout: str
    gpus_per_replica: int
    nodes_per_replica: int
    # GPUs each pod of the replica requests (one pod per node).
    gpus_per_node: int
    tensor_parallel: int
    data_parallel: int
    # Data-parallel ranks per pod; equals data_parallel on a single node.
    data_parallel_local: int
    expert_parallel: int

    gpu: str
    # The `nvidia.com/gpu.product` node-label value, or None for a GPU described only by memory.
    gpu_product: str | None
    gpu_memory_gib: float
    gpu_memory_utilization: float

    total_params: int
    active_params: int
    dtype: str
    weights_gib: float
    weights_per_gpu_gib: float
    overhead_per_gpu_gib: float
    kv_cache_per_gpu_gib: float
    # For the whole model (every KV head), in the KV-cache dtype.
    kv_cache_bytes_per_token: int
    max_model_len: int
    target_concurrency: int
    # How many max_model_len sequences the replica's KV cache holds at once, over all DP ranks.
    max_concurrent_sequences: int

    vllm_args: list[str]
    # Only for multi-node replicas (backend leaderworkerset): the leader serves the API, the workers run
    # headless engine ranks. Worker args contain shell arithmetic and must run through `sh -c`.
    leader_args: list[str] = []
    worker_args: list[str] = []

    shm_size_gib: int
    startup_probe_seconds: int
    reasons: list[str]
    warnings: list[str] = []
