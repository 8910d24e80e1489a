"""What a benchmark is to the runner, and the shared "generate each turn, then judge it" flow."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from shinsa.api.eval_run import BenchmarkSpec, EvalTarget, Sampling
from shinsa.evaluation.datasets import Dataset, Question, load_questions
from shinsa.evaluation.profiles import SHINSA_JUDGING
from shinsa.evaluation.prompt_files import PromptFile, PromptFileError, load_prompt_file
from shinsa.evaluation.records import Generation, Item, Judgment, StepFailed

Messages = list[dict[str, str]]
# Turns judge text into (score, per-criterion scores); raises RatingError when it cannot.
JudgmentParser = Callable[[str], tuple[float, dict[str, float]]]


@dataclass(frozen=True)
class JudgeRequest:
    """What to send a judge about one turn, how to read its reply, and what judgments.jsonl says
    about it: the template's id and whether a reference answer was in the prompt."""

    messages: Messages
    parse: JudgmentParser
    template: str | None = None
    reference: bool = False


class Context(Protocol):
    """What the runner offers a benchmark: checkpoint-aware generation and judging."""

    @property
    def judges(self) -> Sequence[str]: ...

    async def count_tokens(self, messages: Messages) -> int | None:
        """The prompt length of `messages` in the served model's tokens, or None when the server
        cannot tokenize."""
        ...

    async def server_metrics(self) -> str | None:
        """The model server's Prometheus metrics text, or None when it serves none."""
        ...

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
        *,
        template: str | None = None,
        reference: bool = False,
    ) -> Judgment:
        """A judgment of one turn; `template` and `reference` are recorded with it."""
        ...


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
        # What the user should know about how the data was read; the run's summary lists them.
        self.warnings: list[str] = []
        # The model under evaluation, for benchmarks whose notes depend on how it is served.
        self.target: EvalTarget | None = None
        # The judge prompts of `promptFile`, read by `load`.
        self.prompt_file: PromptFile | None = None

    @classmethod
    def config_problems(cls, config: BenchmarkSpec) -> list[str]:
        """Problems with benchmark-specific settings, each starting with the field name."""
        return []

    def load(self, cache_dir: Path) -> None:
        self.dataset, questions = load_questions(self.config.dataset.uri, self.config.dataset, cache_dir)
        self.questions = questions[: self.config.limit] if self.config.limit else questions
        self.warnings.extend(self.dataset.warnings)
        if self.config.prompt_file is not None:
            self.prompt_file = load_prompt_file(self.config.prompt_file, cache_dir)
            self.check_prompt_file(self.prompt_file)

    def check_prompt_file(self, prompt_file: PromptFile) -> None:
        """Raise PromptFileError unless `prompt_file` has the templates (with fields this benchmark
        fills) it needs."""
        raise PromptFileError(f"{prompt_file.source}: the {self.name} benchmark reads no prompt file")

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
        settings: dict[str, Any] = {"prompts": self.config.prompts.model_dump()}
        judging = self.config.judging.model_dump(exclude_none=True)
        # Only a policy other than Shinsa's own enters the fingerprint, so that checkpoints written
        # before policies existed are still reused.
        if judging and judging != SHINSA_JUDGING.model_dump(exclude_none=True):
            settings["judging"] = judging
        if self.prompt_file is not None:
            settings["prompt_file"] = self.prompt_file.digest
        return settings

    def metrics(self, items: Sequence[Item]) -> dict[str, float]:
        """Benchmark-specific numbers beyond mean/std/CI, computed on the primary judge's items."""
        return {}

    def item_metrics(self, item: Item) -> dict[str, float]:
        """Benchmark-specific values of one scored item, whose per-question tables gates compare
        (for example an answer's violation indicator). Only means of these are meaningful."""
        return {}

    @contextlib.asynccontextmanager
    async def session(self, ctx: Context, repeats: int) -> AsyncIterator[None]:
        """Held while the benchmark's items (each question `repeats` times) run, for example to sample
        the server's metrics."""
        yield

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

    def judge_request(self, question: Question, turn: int, answers: Sequence[str | None]) -> JudgeRequest:
        """The judge request of `turn`; `answers` holds None for an answer that failed and is judged
        anyway (`judging.failedGeneration: empty`)."""
        return JudgeRequest(
            self.judge_messages(question, turn, [a or "" for a in answers]), self.parse_judgment
        )

    @property
    def failed_generation(self) -> str:
        # The effective spec (profiles.effective_benchmark) sets it; a bare spec means Shinsa's.
        return self.config.judging.failed_generation or "error"

    async def evaluate(self, question: Question, repeat: int, ctx: Context) -> list[Item]:
        messages = self.start_messages()
        answers: list[str | None] = []
        items: list[Item] = []
        pending: list[tuple[dict[str, Any], Generation | None, asyncio.Future[Judgment]]] = []

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
            generation: Generation | None
            failure: str | None = None
            try:
                generation = await ctx.generate(
                    self, question, turn, repeat, messages, self.sampling_for(question)
                )
            except StepFailed as exc:
                if self.failed_generation == "drop":
                    break  # this turn and the later ones, which build on it, are left out
                if self.failed_generation != "empty":
                    # Later turns need this answer in their context, so they cannot be generated either.
                    for failed_turn in range(turn, len(question.turns) + 1):
                        reason = (
                            f"generation failed: {exc}"
                            if failed_turn == turn
                            else f"not generated: turn {turn} failed"
                        )
                        items.extend(Item(**base(failed_turn, j), error=reason) for j in ctx.judges)
                    break
                generation, failure = None, str(exc)
            answers.append(generation.answer if generation is not None else None)
            messages.append({"role": "assistant", "content": generation.answer if generation else ""})
            request = self.judge_request(question, turn, answers)
            # Judging runs while the next turn is generated.
            for judge in ctx.judges:
                task = asyncio.ensure_future(
                    ctx.judge(
                        self,
                        question,
                        turn,
                        repeat,
                        judge,
                        request.messages,
                        request.parse,
                        template=request.template,
                        reference=request.reference,
                    )
                )
                fields = base(turn, judge)
                if failure is not None:
                    fields["extra"] = {"generation_error": failure}
                pending.append((fields, generation, task))

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
