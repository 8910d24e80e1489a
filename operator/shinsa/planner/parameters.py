"""Parameter counts, split by how each group of weights is sharded across GPUs."""

from __future__ import annotations

from dataclasses import dataclass

from shinsa.planner.architecture import Architecture


@dataclass(frozen=True)
class ParameterCounts:
    """A model's parameters grouped by the way vLLM places them on GPUs.

    - `embeddings`: input embedding plus an untied LM head; vocabulary-sharded by tensor parallelism.
    - `attention_qo`: query and output projections; sharded by tensor parallelism.
    - `attention_kv`: key and value projections; sharded by tensor parallelism only down to one KV head
      per GPU, replicated beyond that.
    - `dense_mlp`: gate, up and down projections of dense layers; sharded by tensor parallelism.
    - `experts`: every routed expert's gate, up and down projections; sharded by expert parallelism, or by
      tensor parallelism within each expert when expert parallelism is off.
    - `replicated`: norms, q/k norms, biases and MoE routers, which every GPU holds whole.
    - `active_experts`: the expert parameters one token passes through (top-k per MoE layer).
    """

    embeddings: int
    attention_qo: int
    attention_kv: int
    dense_mlp: int
    experts: int
    replicated: int
    active_experts: int

    @property
    def total(self) -> int:
        return (
            self.embeddings
            + self.attention_qo
            + self.attention_kv
            + self.dense_mlp
            + self.experts
            + self.replicated
        )

    @property
    def active(self) -> int:
        return self.total - self.experts + self.active_experts

    @property
    def non_expert(self) -> int:
        return self.total - self.experts


def count_parameters(arch: Architecture) -> ParameterCounts:
    hidden = arch.hidden_size
    q_width = arch.num_attention_heads * arch.head_dim
    kv_width = arch.num_key_value_heads * arch.head_dim
    layers = arch.num_hidden_layers

    embeddings = arch.vocab_size * hidden * (1 if arch.tie_word_embeddings else 2)
    attention_qo = layers * 2 * hidden * q_width
    attention_kv = layers * 2 * hidden * kv_width

    per_layer_replicated = 2 * hidden  # input and post-attention RMSNorm
    if arch.has_qk_norm:
        per_layer_replicated += 2 * arch.head_dim
    if arch.attention_bias:
        per_layer_replicated += q_width + 2 * kv_width + hidden
    replicated = layers * per_layer_replicated + hidden  # + the final norm

    dense_layers = arch.dense_layer_count
    dense_mlp = dense_layers * 3 * hidden * arch.intermediate_size
    if arch.mlp_bias:
        replicated += dense_layers * (2 * arch.intermediate_size + hidden)

    experts = active_experts = 0
    if arch.is_moe and arch.moe_intermediate_size is not None:
        moe_layers = arch.moe_layer_count
        per_expert = 3 * hidden * arch.moe_intermediate_size
        experts = moe_layers * arch.num_experts * per_expert
        active_experts = moe_layers * arch.num_experts_per_tok * per_expert
        replicated += moe_layers * hidden * arch.num_experts  # the router

    return ParameterCounts(
        embeddings=embeddings,
        attention_qo=attention_qo,
        attention_kv=attention_kv,
        dense_mlp=dense_mlp,
        experts=experts,
        replicated=replicated,
        active_experts=active_experts,
    )
