"""A benchmark `Context` that answers and judges from scripts, for tests of one benchmark's flow
without the runner (the runner's own tests use the OpenAI-compatible test server)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from shinsa.evaluation.benchmarks.base import Benchmark, JudgmentParser, Messages
from shinsa.evaluation.config import Sampling
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.records import Generation, Judgment, StepFailed


class ScriptedContext:
    """Answers each question with `answers[question_id]` (default "answer <turn>") and judges with
    `judge_texts[question_id]` (default `judge_text`); records every conversation it was sent."""

    def __init__(
        self,
        *,
        judges: Sequence[str] = ("j1",),
        answers: Mapping[str, str] | None = None,
        judge_text: str = "[[3]]",
        judge_texts: Mapping[str, str] | None = None,
        failed_turns: Collection[tuple[str, int]] = (),
    ) -> None:
        self._judges = list(judges)
        self.answers = dict(answers or {})
        self.judge_text = judge_text
        self.judge_texts = dict(judge_texts or {})
        # (question id, turn) whose generation fails, as a pre-generated answer that recorded an error.
        self.failed_turns = set(failed_turns)
        self.generated: list[Messages] = []
        self.judged: list[Messages] = []
        # (template, reference) of each judgment, as judgments.jsonl records them.
        self.recorded: list[tuple[str | None, bool]] = []

    @property
    def judges(self) -> Sequence[str]:
        return self._judges

    async def count_tokens(self, messages: Messages) -> int | None:
        return None  # a server that cannot tokenize

    async def server_metrics(self) -> str | None:
        return None  # a server without Prometheus metrics

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
    ) -> Generation:
        self.generated.append([dict(m) for m in messages])
        if (question.question_id, turn) in self.failed_turns:
            raise StepFailed("HTTP 500: scripted failure")
        answer = self.answers.get(question.question_id, f"answer {turn}")
        return Generation(answer, "", {"completion_tokens": 3}, 0.1, None, "stop")

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
        self.judged.append([dict(m) for m in messages])
        self.recorded.append((template, reference))
        text = self.judge_texts.get(question.question_id, self.judge_text)
        try:
            score, criteria = parse(text)
        except ValueError as exc:
            raise StepFailed(f"unparsable: {exc}") from None
        return Judgment(score, criteria, text, {}, 0.1, 1)
