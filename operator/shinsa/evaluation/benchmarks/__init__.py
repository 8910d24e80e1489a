"""The benchmark registry: `name` in a benchmark spec selects one of these classes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shinsa.evaluation.benchmarks.answer_carefully import AnswerCarefully
from shinsa.evaluation.benchmarks.base import Benchmark, Context, JudgedConversation
from shinsa.evaluation.benchmarks.llm_jp_instructions import LlmJpInstructions
from shinsa.evaluation.benchmarks.long_context import LongContext
from shinsa.evaluation.benchmarks.mt_bench import MtBench, MtBenchJa
from shinsa.evaluation.benchmarks.rubric import Rubric
from shinsa.evaluation.config import ConfigError

if TYPE_CHECKING:
    from shinsa.evaluation.config import EvalConfig

_REGISTRY: dict[str, type[Benchmark]] = {}


def register(cls: type[Benchmark]) -> type[Benchmark]:
    """Make a benchmark class available by its `name`; usable as a class decorator by plugins."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"benchmark {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def known_benchmarks() -> dict[str, type[Benchmark]]:
    return dict(_REGISTRY)


def check_config(config: EvalConfig) -> None:
    """Raise ConfigError, naming the field, for what the spec's schema cannot check: a benchmark
    without a registered class, settings its class refuses (prompt templates with unknown fields),
    a judge-scored benchmark without a judge. Call it before any work starts."""
    for i, bench in enumerate(config.spec.benchmarks):
        cls = _REGISTRY.get(bench.name)
        if cls is None:
            raise ConfigError(
                f"benchmarks[{i}].name: no benchmark class is registered for {bench.name!r}; "
                f"registered: {sorted(_REGISTRY)}"
            )
        problems = cls.config_problems(bench)
        if problems:
            raise ConfigError("; ".join(f"benchmarks[{i}].{p}" for p in problems))
        if cls.needs_judge and not config.spec.judges:
            raise ConfigError(f"judges: benchmark {bench.name!r} is judge-scored but no judge is configured")


for _cls in (MtBench, MtBenchJa, LlmJpInstructions, AnswerCarefully, LongContext, Rubric):
    register(_cls)

__all__ = ["Benchmark", "Context", "JudgedConversation", "check_config", "known_benchmarks", "register"]
