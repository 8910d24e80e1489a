"""GPU products the planner knows, found by short name or by the node label GPU feature discovery sets."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field

from shinsa.planner.errors import UnknownGpuError

# The node label NVIDIA GPU feature discovery puts on GPU nodes; a plan's nodeSelector uses it.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"


class GpuProfile(BaseModel):
    """One GPU product: how much memory vLLM can see on it and how its nodes are labelled."""

    model_config = ConfigDict(frozen=True)

    name: str
    # None for a GPU described only by its memory: such a plan cannot select nodes by product.
    product: str | None = None
    # What CUDA reports as total memory (what vLLM multiplies by --gpu-memory-utilization); a little under
    # the marketing figure because the driver reserves some.
    memory_gib: float = Field(gt=0)
    aliases: tuple[str, ...] = ()
    # Other node-label values for the same memory size (PCIe / NVL variants).
    other_products: tuple[str, ...] = ()


GPU_PROFILES: tuple[GpuProfile, ...] = (
    GpuProfile(
        name="L4",
        product="NVIDIA-L4",
        memory_gib=22.0,
        aliases=("L4-24GB",),
    ),
    GpuProfile(
        name="A10G",
        product="NVIDIA-A10G",
        memory_gib=22.0,
        aliases=("A10G-24GB",),
    ),
    GpuProfile(
        name="A100-40GB",
        product="NVIDIA-A100-SXM4-40GB",
        memory_gib=39.4,
        other_products=("NVIDIA-A100-PCIE-40GB",),
    ),
    GpuProfile(
        name="L40S",
        product="NVIDIA-L40S",
        memory_gib=44.4,
        aliases=("L40S-48GB",),
    ),
    GpuProfile(
        name="A100-80GB",
        product="NVIDIA-A100-SXM4-80GB",
        memory_gib=79.2,
        other_products=("NVIDIA-A100-80GB-PCIe",),
    ),
    GpuProfile(
        name="H100-80GB",
        product="NVIDIA-H100-80GB-HBM3",
        memory_gib=79.2,
        aliases=("H100", "H100-SXM"),
        other_products=("NVIDIA-H100-PCIe",),
    ),
    GpuProfile(
        name="H200-141GB",
        product="NVIDIA-H200",
        memory_gib=139.8,
        aliases=("H200",),
    ),
)

_MEMORY_SPEC = re.compile(r"^(?:memorygib\s*[=:]\s*)?(\d+(?:\.\d+)?)\s*(?:gib|gi)?$")


def _index(profiles: tuple[GpuProfile, ...]) -> dict[str, GpuProfile]:
    index: dict[str, GpuProfile] = {}
    for profile in profiles:
        names = (profile.name, *profile.aliases, *profile.other_products)
        if profile.product is not None:
            names += (profile.product,)
        for key in names:
            index[key.casefold()] = profile
    return index


_BY_NAME = _index(GPU_PROFILES)


def gpu_with_memory(memory_gib: float) -> GpuProfile:
    """Any GPU, described only by how much memory it has (the `memoryGiB` form)."""
    if memory_gib <= 0:
        raise UnknownGpuError(f"{memory_gib}GiB", (p.name for p in GPU_PROFILES))
    return GpuProfile(name=f"{memory_gib:g}GiB", memory_gib=memory_gib)


def resolve_gpu(spec: str) -> GpuProfile:
    """A profile from a short name (`H100-80GB`, `H100`), a node label (`NVIDIA-H100-80GB-HBM3`) or a
    memory size (`48GiB`, `memoryGiB=48`). Case-insensitive."""
    key = spec.strip().casefold()
    profile = _BY_NAME.get(key)
    if profile is not None:
        return profile
    memory = _MEMORY_SPEC.match(key)
    # A bare number is only accepted with a unit or the memoryGiB= prefix, so "80" is not mistaken for a name.
    if memory is not None and key != memory.group(1):
        return gpu_with_memory(float(memory.group(1)))
    raise UnknownGpuError(spec, (p.name for p in GPU_PROFILES))


def gpu_by_product(product: str) -> GpuProfile | None:
    """The profile for a node's `nvidia.com/gpu.product` label, or None when the product is unknown."""
    return _BY_NAME.get(product.strip().casefold())


def node_product_label(name: str) -> str:
    """The `nvidia.com/gpu.product` value the nodes for `name` carry. A label value is kept as given
    (a PCIe card, say, that its SXM sibling's profile stands in for: the pods must land on what was
    asked for); a short name or alias becomes its profile's label; an unknown name is kept."""
    wanted = name.strip()
    profile = _BY_NAME.get(wanted.casefold())
    if profile is None:
        return wanted
    for label in (profile.product, *profile.other_products):
        if label is not None and label.casefold() == wanted.casefold():
            return label
    return profile.product or wanted
