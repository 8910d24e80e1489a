"""What the pinned vLLM release's `vllm serve` accepts: `vllm_flags.json`, extracted from that
release's wheel by `tools/vllm_flags.py` (run it when DEFAULT_VLLM_IMAGE changes; a unit test
checks that the two name the same release and that every flag Shinsa emits or owns is in it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class VllmRelease:
    version: str
    serve: frozenset[str]
    """Options `vllm serve` adds itself (`--headless`, `--api-server-count`, ...)."""
    frontend: frozenset[str]
    """Options of the OpenAI-compatible API server (FrontendArgs)."""
    engine: frozenset[str]
    """Options of the engine (EngineArgs), which every rank reads."""
    env: frozenset[str]
    """The `VLLM_*` variables the release reads."""

    @property
    def flags(self) -> frozenset[str]:
        return self.serve | self.frontend | self.engine

    @property
    def leader_only(self) -> frozenset[str]:
        """Options a headless worker must not get: it runs no API server, and vLLM refuses
        `--api-server-count` and `--data-parallel-hybrid-lb` with `--headless`
        (`vllm/entrypoints/cli/serve.py` `run_headless`)."""
        refused = {"--api-server-count", "-asc", "--data-parallel-hybrid-lb", "-dph", "--grpc"}
        return (self.frontend - self.engine) | refused


@cache
def pinned_release() -> VllmRelease:
    data = json.loads(resources.files("shinsa.planner").joinpath("vllm_flags.json").read_text())
    return VllmRelease(
        version=data["vllm"],
        serve=frozenset(data["serve"]),
        frontend=frozenset(data["frontend"]),
        engine=frozenset(data["engine"]),
        env=frozenset(data["env"]),
    )
