"""The benchmark registry: `name` in a benchmark spec selects one of these classes."""

from __future__ import annotations

from shinsa.evaluation.benchmarks.answer_carefully import AnswerCarefully
from shinsa.evaluation.benchmarks.base import Benchmark, Context, JudgedConversation
from shinsa.evaluation.benchmarks.llm_jp_instructions import LlmJpInstructions
from shinsa.evaluation.benchmarks.long_context import LongContext
from shinsa.evaluation.benchmarks.mt_bench import MtBench, MtBenchJa

_REGISTRY: dict[str, type[Benchmark]] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Make a benchmark class available by its `name`; usable as a class decorator by plugins."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"benchmark {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def known_benchmarks() -> dict[str, type[Benchmark]]:
    return dict(_REGISTRY)


for _cls in (MtBench, MtBenchJa, LlmJpInstructions, AnswerCarefully, LongContext):
    register(_cls)

__all__ = ["Benchmark", "Context", "JudgedConversation", "known_benchmarks", "register"]
