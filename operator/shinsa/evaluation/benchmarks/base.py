"""What a benchmark is to the runner, and the shared "generate each turn, then judge it" flow."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

from shinsa.api.eval_run import BenchmarkSpec, Sampling
from shinsa.evaluation.datasets import Dataset, Question, load_questions
from shinsa.evaluation.records import Generation, Item, Judgment, StepFailed

Messages = list[dict[str, str]]
# Turns judge text into (score, per-criterion scores); raises RatingError when it cannot.
JudgmentParser = Callable[[str], tuple[float, dict[str, float]]]


class Context(Protocol):
    """What the runner offers a benchmark: checkpoint-aware generation and judging."""

    @property
    def judges(self) -> Sequence[str]: ...

    async def generate(
        self,
        benchmark: Benchmark,
        question: Question,
        turn: int,
        repeat: int,
        messages: Messages,
        sampling: Sampling,
        *,
        stream: bool = False,
    ) -> Generation: ...

    async def judge(
        self,
        benchmark: Benchmark,
        question: Question,
        turn: int,
        repeat: int,
        judge: str,
        messages: Messages,
        parse: JudgmentParser,
    ) -> Judgment: ...


class Benchmark(ABC):
    name: ClassVar[str]
    needs_judge: ClassVar[bool] = True
    # The judge name used on items of benchmarks scored by rule rather than by a judge.
    rule_judge: ClassVar[str] = "match"

    def __init__(self, config: BenchmarkSpec, base_sampling: Sampling) -> None:
        self.config = config
        self.base_sampling = base_sampling
        self.questions: list[Question] = []
        self.dataset: Dataset | None = None

    @classmethod
    def config_problems(cls, config: BenchmarkSpec) -> list[str]:
        """Problems with benchmark-specific settings, each starting with the field name."""
        return []

    def load(self, cache_dir: Path) -> None:
        self.dataset, questions = load_questions(self.config.dataset.uri, self.config.dataset, cache_dir)
        self.questions = questions[: self.config.limit] if self.config.limit else questions

    def sampling_for(self, question: Question) -> Sampling:
        # spec.sampling, then the benchmark's, then its category's.
        merged = self.base_sampling.merged(self.config.sampling)
        return merged.merged(self.config.category_sampling.get(question.category))

    def item_count(self, repeats: int, judges: int) -> int:
        per_repeat = sum(len(q.turns) for q in self.questions)
        return per_repeat * repeats * (judges if self.needs_judge else 1)

    def generation_settings(self) -> dict[str, Any]:
        """Everything that shapes the model's answers; part of the checkpoint fingerprint."""
        return {
            "benchmark": self.name,
            "dataset": self.dataset.digest if self.dataset else None,
            "sampling": self.base_sampling.merged(self.config.sampling).model_dump(),
            "category_sampling": {
                k: v.model_dump() for k, v in sorted(self.config.category_sampling.items())
            },
            "system_prompt": self.config.system_prompt,
        }

    def judge_settings(self) -> dict[str, Any]:
        """Everything that shapes the judge's verdicts besides the judge itself."""
        return {"prompts": self.config.prompts.model_dump()}

    def metrics(self, items: Sequence[Item]) -> dict[str, float]:
        """Benchmark-specific numbers beyond mean/std/CI, computed on the primary judge's items."""
        return {}

    def item_metrics(self, item: Item) -> dict[str, float]:
        """Benchmark-specific values of one scored item, whose per-question tables gates compare
        (for example an answer's violation indicator). Only means of these are meaningful."""
        return {}

    def start_messages(self) -> Messages:
        return [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []

    @abstractmethod
    async def evaluate(self, question: Question, repeat: int, ctx: Context) -> list[Item]: ...


class JudgedConversation(Benchmark):
    """Generate each turn with the earlier exchanges in context, and have every judge rate each turn."""

    @abstractmethod
    def judge_messages(self, question: Question, turn: int, answers: Sequence[str]) -> Messages: ...

    @abstractmethod
    def parse_judgment(self, text: str) -> tuple[float, dict[str, float]]: ...

    async def evaluate(self, question: Question, repeat: int, ctx: Context) -> list[Item]:
        messages = self.start_messages()
        answers: list[str] = []
        items: list[Item] = []
        pending: list[tuple[dict[str, Any], Generation, asyncio.Future[Judgment]]] = []

        def base(turn: int, judge: str) -> dict[str, Any]:
            return {
                "benchmark": self.name,
                "question_id": question.question_id,
                "category": question.category,
                "turn": turn,
                "repeat": repeat,
                "judge": judge,
            }

        for turn, user_text in enumerate(question.turns, start=1):
            messages.append({"role": "user", "content": user_text})
            try:
                generation = await ctx.generate(
                    self, question, turn, repeat, messages, self.sampling_for(question)
                )
            except StepFailed as exc:
                # Later turns need this answer in their context, so they cannot be generated either.
                for failed_turn in range(turn, len(question.turns) + 1):
                    reason = (
                        f"generation failed: {exc}"
                        if failed_turn == turn
                        else f"not generated: turn {turn} failed"
                    )
                    items.extend(Item(**base(failed_turn, j), error=reason) for j in ctx.judges)
                break
            answers.append(generation.answer)
            messages.append({"role": "assistant", "content": generation.answer})
            judge_messages = self.judge_messages(question, turn, answers)
            # Judging runs while the next turn is generated.
            for judge in ctx.judges:
                task = asyncio.ensure_future(
                    ctx.judge(self, question, turn, repeat, judge, judge_messages, self.parse_judgment)
                )
                pending.append((base(turn, judge), generation, task))

        for fields, generation, future in pending:
            try:
                judgment = await future
            except StepFailed as exc:
                items.append(Item.from_generation(fields, generation, error=f"judge failed: {exc}"))
            else:
                items.append(
                    Item.from_generation(fields, generation, score=judgment.score, judgment=judgment)
                )
        items.sort(key=lambda i: (i.turn, i.judge))
        return items
