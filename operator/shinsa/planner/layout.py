"""Ways to spread one model replica over GPUs, and which of them a model's shape allows."""

from __future__ import annotations

from dataclasses import dataclass

from shinsa.planner.architecture import Architecture

# Tensor-parallel sizes the planner tries by itself: NVLink islands and vLLM's custom all-reduce are built
# around powers of two, and a TP group never leaves a node.
TENSOR_PARALLEL_SIZES: tuple[int, ...] = (1, 2, 4, 8)

# The planner does not propose replicas larger than this by itself. Beyond 8 nodes of 8 GPUs the
# expert all-to-all dominates, and a request that needs more is almost always a misconfiguration.
# A layout pinned by the request may be larger.
MAX_AUTO_GPUS_PER_REPLICA = 64


@dataclass(frozen=True)
class Layout:
    """One replica: `data` engine ranks of `tensor` GPUs each, over `nodes` pods (one pod per node)."""

    tensor: int = 1
    data: int = 1
    expert: bool = False
    nodes: int = 1

    @property
    def gpus(self) -> int:
        return self.tensor * self.data

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes

    @property
    def data_local(self) -> int:
        """Data-parallel ranks in each pod."""
        return self.data // self.nodes

    @property
    def expert_parallel(self) -> int:
        # vLLM shards experts over every GPU of the replica when expert parallelism is on.
        return self.gpus if self.expert else 1

    @property
    def name(self) -> str:
        if self.data > 1:
            name = f"DP{self.data}" + (f"xTP{self.tensor}" if self.tensor > 1 else "")
        else:
            name = f"TP{self.tensor}"
        if self.expert:
            name += "+EP"
        if self.nodes > 1:
            name += f" x{self.nodes} nodes"
        return name


def structural_problem(arch: Architecture, layout: Layout, gpus_per_node: int) -> str | None:
    """Why vLLM would refuse `layout` for `arch` on nodes of `gpus_per_node` GPUs, or None if it would not.

    KV heads: when TP is larger than the number of KV heads vLLM replicates each KV head on TP/kv GPUs
    instead of refusing, as long as one divides the other. The planner accepts that (the memory model
    charges the replicated heads) and reports it as a warning, because it wastes KV memory.
    """
    tp, heads, kv = layout.tensor, arch.num_attention_heads, arch.num_key_value_heads
    if heads % tp:
        return f"TP{tp} does not divide the {heads} attention heads"
    if (kv % tp) if tp <= kv else (tp % kv):
        return f"TP{tp} and the {kv} KV heads do not divide one another"
    if arch.dense_layer_count and arch.intermediate_size % tp:
        return f"TP{tp} does not divide the MLP width {arch.intermediate_size}"
    # Without expert parallelism vLLM slices every expert across all tensor- and data-parallel ranks.
    if (
        arch.is_moe
        and not layout.expert
        and arch.moe_intermediate_size
        and arch.moe_intermediate_size % layout.gpus
    ):
        return (
            f"{layout.name} slices each expert {layout.gpus} ways, which does not divide the expert width "
            f"{arch.moe_intermediate_size}"
        )
    if layout.expert and not arch.is_moe:
        return "expert parallelism needs a mixture-of-experts model; this one is dense"
    if layout.expert and arch.num_experts % layout.gpus:
        return f"EP{layout.gpus} does not divide the {arch.num_experts} experts"
    if layout.data % layout.nodes:
        return f"DP{layout.data} cannot be split evenly over {layout.nodes} nodes"
    if layout.gpus_per_node > gpus_per_node:
        return f"{layout.name} needs {layout.gpus_per_node} GPUs in one node; nodes have {gpus_per_node}"
    return None


def _smallest_node_count(gpus: int, data: int, gpus_per_node: int) -> int:
    for nodes in range(1, data + 1):
        if data % nodes == 0 and gpus // nodes <= gpus_per_node:
            return nodes
    return 1  # cannot be split: structural_problem() says why


def _preference(layout: Layout) -> tuple[int, int, int]:
    # At equal GPU count: DP+EP first (KV cache and attention stay whole per rank), then plain TP, then the
    # mixed forms only a request pins.
    if layout.data > 1 and layout.expert and layout.tensor == 1:
        kind = 0
    elif layout.data == 1 and not layout.expert:
        kind = 1
    elif layout.data > 1 and layout.expert:
        kind = 2
    elif layout.data == 1:
        kind = 3
    else:
        kind = 4
    return (layout.gpus, kind, layout.nodes)


def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def _sizes_to_try(
    arch: Architecture, tensor: int | None, data: int | None, gpus: int | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(tensor sizes, data sizes) worth trying. A fixed GPU count replaces the planner's own menu of sizes
    with the splits of that count, so a pinned size plus the count fills in the other."""
    if tensor is not None:
        tp_values: tuple[int, ...] = (tensor,)
    else:
        tp_values = _divisors(gpus) if gpus is not None else TENSOR_PARALLEL_SIZES
    if data is not None:
        dp_values: tuple[int, ...] = (data,)
    elif gpus is not None and (arch.is_moe or tensor is not None):
        dp_values = _divisors(gpus)
    elif arch.is_moe:
        dp_values = _divisors(arch.num_experts)
    else:
        # A dense model is split by tensor parallelism unless the request says otherwise.
        dp_values = (1,)
    return tp_values, dp_values


def candidate_layouts(
    arch: Architecture,
    gpus_per_node: int,
    *,
    tensor: int | None = None,
    data: int | None = None,
    expert: int | None = None,
    nodes: int | None = None,
    gpus: int | None = None,
) -> list[Layout]:
    """Layouts to try, smallest first, restricted to the values the request pins and, when `gpus` is set,
    to exactly that many GPUs.

    Unpinned, a dense model gets tensor parallelism inside one node; a MoE model gets data + expert
    parallelism (experts split over ranks) and, as a fallback at the same GPU count, tensor parallelism.
    `expert` 1 turns expert parallelism off, so a MoE model gets tensor and/or plain data parallelism.
    """
    pinned = any(v is not None for v in (tensor, data, expert, nodes))
    tp_values, dp_values = _sizes_to_try(arch, tensor, data, gpus)
    # A size the request spells out (both dimensions, or the GPU count) is the user's call, however large.
    spelled_out = gpus is not None or (tensor is not None and data is not None)

    layouts: set[Layout] = set()
    for tp in tp_values:
        for dp in dp_values:
            size = tp * dp
            if gpus is not None and size != gpus:
                continue
            if size > MAX_AUTO_GPUS_PER_REPLICA and not spelled_out:
                continue
            if expert is not None:
                ep_values: tuple[bool, ...] = (expert > 1,)
            elif arch.is_moe and dp > 1:
                ep_values = (True,)
            else:
                ep_values = (False,)
            for ep in ep_values:
                if expert is not None and expert > 1 and expert != size:
                    continue
                if not pinned and arch.is_moe and tp > 1 and dp > 1:
                    continue
                node_count = nodes if nodes is not None else _smallest_node_count(size, dp, gpus_per_node)
                layouts.add(Layout(tensor=tp, data=dp, expert=ep, nodes=node_count))
    return sorted(layouts, key=_preference)
