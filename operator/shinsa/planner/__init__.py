"""The planner: model architecture -> GPU memory plan -> parallelism -> vLLM arguments.

Pure: data in, data out. The one function that reads a file is `load_config_json`.
"""

from shinsa.planner.architecture import (
    SUPPORTED_ARCHITECTURES,
    Architecture,
    RopeScaling,
    load_config_json,
)
from shinsa.planner.catalog import MODEL_CATALOG, MODEL_PRESETS, ModelPreset, lookup_model
from shinsa.planner.errors import (
    ConfigError,
    PlanError,
    PlannerError,
    UnknownArchitectureError,
    UnknownGpuError,
    UnknownModelError,
)
from shinsa.planner.gpus import (
    GPU_PRODUCT_LABEL,
    GPU_PROFILES,
    GpuProfile,
    gpu_by_product,
    gpu_with_memory,
    node_product_label,
    resolve_gpu,
)
from shinsa.planner.layout import Layout
from shinsa.planner.memory import GIB, dtype_bytes, kv_cache_bytes_per_token
from shinsa.planner.parameters import ParameterCounts, count_parameters
from shinsa.planner.planning import plan, serving_dtype
from shinsa.planner.request import Backend, PlanRequest
from shinsa.planner.result import Plan
from shinsa.planner.vllm_args import (
    DATA_PARALLEL_RPC_PORT,
    LEADER_IP_VAR,
    OWNED_VLLM_ENV,
    OWNED_VLLM_FLAGS,
    POD_IP_ENV,
    UNPLANNED_VLLM_FLAGS,
    extra_args_problem,
    owned_flags_in,
    shell_command,
)
from shinsa.planner.vllm_release import VllmRelease, pinned_release

__all__ = [
    "DATA_PARALLEL_RPC_PORT",
    "GIB",
    "GPU_PRODUCT_LABEL",
    "GPU_PROFILES",
    "LEADER_IP_VAR",
    "MODEL_CATALOG",
    "MODEL_PRESETS",
    "OWNED_VLLM_ENV",
    "OWNED_VLLM_FLAGS",
    "POD_IP_ENV",
    "SUPPORTED_ARCHITECTURES",
    "UNPLANNED_VLLM_FLAGS",
    "Architecture",
    "Backend",
    "ConfigError",
    "GpuProfile",
    "Layout",
    "ModelPreset",
    "ParameterCounts",
    "Plan",
    "PlanError",
    "PlanRequest",
    "PlannerError",
    "RopeScaling",
    "UnknownArchitectureError",
    "UnknownGpuError",
    "UnknownModelError",
    "VllmRelease",
    "count_parameters",
    "dtype_bytes",
    "extra_args_problem",
    "gpu_by_product",
    "gpu_with_memory",
    "kv_cache_bytes_per_token",
    "load_config_json",
    "lookup_model",
    "node_product_label",
    "owned_flags_in",
    "pinned_release",
    "plan",
    "resolve_gpu",
    "serving_dtype",
    "shell_command",
]
