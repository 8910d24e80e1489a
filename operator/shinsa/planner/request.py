"""What a caller asks the planner for."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shinsa.planner.architecture import Architecture, RopeScaling
from shinsa.planner.gpus import GpuProfile

Backend = Literal["deployment", "leaderworkerset", "kserve"]
ServingDtype = Literal["auto", "bfloat16", "float16", "float32"]


class PlanRequest(BaseModel):
    """A model, the GPUs it may use, and how it should be served. Only `architecture`, `gpu` and `model`
    are required; every other field has the default a platform team would pick."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)

    architecture: Architecture
    gpu: GpuProfile
    # What vLLM's --model receives: a Hugging Face repository id, a local path or a mounted model directory.
    model: str = Field(min_length=1)
    served_name: str | None = None
    revision: str | None = None
    max_model_len: int | None = Field(default=None, gt=0)
    rope_scaling: RopeScaling | None = None
    target_concurrency: int = Field(default=1, ge=1)
    gpu_memory_utilization: float = Field(default=0.90, gt=0.0, le=1.0)
    gpus_per_node: int = Field(default=8, ge=1)
    # GPUs per replica: when set, only layouts of exactly this many GPUs are considered, and the pins below
    # that are left unset are filled so that tensor x data comes to it.
    gpu_count: int | None = Field(default=None, ge=1)
    # Pins: when set, only layouts with these values are considered.
    tensor_parallel: int | None = Field(default=None, ge=1)
    data_parallel: int | None = Field(default=None, ge=1)
    # Expert-parallel size: 1 turns expert parallelism off; otherwise it must equal tensor x data.
    expert_parallel: int | None = Field(default=None, ge=1)
    nodes: int | None = Field(default=None, ge=1)
    dtype: ServingDtype = "auto"
    quantization: Literal["fp8"] | None = None
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    trust_remote_code: bool = False
    reasoning_parser: str | None = None
    tool_call_parser: str | None = None
    backend: Backend = "deployment"
    # Where the weights come from, for the startup budget: the Hub, a bucket (streamed) or a volume.
    weights_source: Literal["hub", "bucket", "volume"] = "volume"
    # Overrides the startup budget the plan derives (seconds until /health must answer).
    startup_timeout_seconds: int | None = Field(default=None, ge=60)

    @property
    def pins_layout(self) -> bool:
        return any(
            v is not None
            for v in (
                self.gpu_count,
                self.tensor_parallel,
                self.data_parallel,
                self.expert_parallel,
                self.nodes,
            )
        )
