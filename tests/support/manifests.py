"""ModelDeployments as the API server hands them to the operator, for unit tests of the pure core."""

from __future__ import annotations

from typing import Any

from shinsa.api import ModelDeployment

H100 = "NVIDIA-H100-80GB-HBM3"


def model_deployment(
    uri: str = "hf://llm-jp/llm-jp-4-8b",
    *,
    name: str = "llm-jp-4-8b",
    gpu: dict[str, Any] | None = None,
    **spec: Any,
) -> ModelDeployment:
    """Named `name` in namespace `models`, with a uid (`<name>-uid`) and generation 1. `gpu` adds to
    the default H100 product; `spec` fields replace the defaults (`model`, `resources` included)."""
    return ModelDeployment.model_validate(
        {
            "apiVersion": "shinsa.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": "models", "uid": f"{name}-uid", "generation": 1},
            "spec": {"model": {"uri": uri}, "resources": {"gpu": {"product": H100, **(gpu or {})}}, **spec},
        }
    )
