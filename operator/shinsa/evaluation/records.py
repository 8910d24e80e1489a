"""What one evaluation step produces: generations, judgments, and the scored items built from them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


class StepFailed(Exception):
    """A generation or judgment that ended in an error after its retries; the item records why."""


@dataclass(frozen=True)
class Generation:
    answer: str
    reasoning: str
    usage: dict[str, int]
    latency_s: float
    ttft_s: float | None
    finish_reason: str | None
    cached: bool = False


@dataclass(frozen=True)
class Judgment:
    score: float
    criteria: dict[str, float]
    text: str
    usage: dict[str, int]
    latency_s: float
    attempts: int
    cached: bool = False


@dataclass
class Item:
    """One scored unit: (benchmark, question, turn, repeat, judge).

    `score` is None exactly when `error` is set."""

    benchmark: str
    question_id: str
    category: str
    turn: int
    repeat: int
    judge: str
    score: float | None = None
    error: str | None = None
    tokens: int = 0
    prompt_tokens: int = 0
    reasoning_tokens: int = 0
    judge_tokens: int = 0
    latency_s: float | None = None
    ttft_s: float | None = None
    criteria: dict[str, float] = field(default_factory=dict)
    # The benchmark's per-item values (Benchmark.item_metrics), so items.jsonl alone rebuilds every
    # per-question table a gate compares.
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        # Shallow: rows are serialized at once, and dataclasses.asdict's deep copy was most of the
        # cost of writing items.jsonl.
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_generation(
        cls,
        base: dict[str, Any],
        generation: Generation | None,
        *,
        score: float | None = None,
        error: str | None = None,
        judgment: Judgment | None = None,
    ) -> Item:
        item = cls(**base, score=score, error=error)
        if generation is not None:
            item.tokens = generation.usage.get("completion_tokens", 0)
            item.prompt_tokens = generation.usage.get("prompt_tokens", 0)
            item.reasoning_tokens = generation.usage.get("reasoning_tokens", 0)
            item.latency_s = generation.latency_s
            item.ttft_s = generation.ttft_s
        if judgment is not None:
            item.judge_tokens = judgment.usage.get("prompt_tokens", 0) + judgment.usage.get(
                "completion_tokens", 0
            )
            item.criteria = dict(judgment.criteria)
        return item
