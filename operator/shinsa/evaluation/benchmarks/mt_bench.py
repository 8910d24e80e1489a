"""MT-Bench style: multi-turn questions, every turn rated 1-10, reference-guided for some categories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shinsa.api.eval_run import BenchmarkSpec
from shinsa.evaluation import prompts
from shinsa.evaluation.benchmarks.base import JudgedConversation, Messages
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.ratings import parse_rating

DEFAULT_REFERENCE_CATEGORIES = ("math", "reasoning", "coding")

_SINGLE_FIELDS = ("question", "answer", "language_note")
_MULTI_FIELDS = ("question_1", "answer_1", "question_2", "answer_2", "language_note")


class MtBench(JudgedConversation):
    name = "mt-bench"
    language_note = ""

    @classmethod
    def config_problems(cls, config: BenchmarkSpec) -> list[str]:
        fields = {
            "system": (),
            "single": _SINGLE_FIELDS,
            "single_reference": (*_SINGLE_FIELDS, "reference"),
            "multi": _MULTI_FIELDS,
            "multi_reference": (*_MULTI_FIELDS, "reference_1", "reference_2"),
        }
        problems = []
        for key, allowed in fields.items():
            template = getattr(config.prompts, key)
            problem = template and prompts.template_problem(template, allowed)
            if problem:
                problems.append(f"prompts.{_camel(key)}: {problem}")
        return problems

    @property
    def reference_categories(self) -> tuple[str, ...]:
        configured = self.config.reference_categories
        return tuple(configured) if configured is not None else DEFAULT_REFERENCE_CATEGORIES

    def uses_reference(self, question: Question) -> bool:
        return question.category in self.reference_categories and bool(question.references)

    def judge_settings(self) -> dict[str, Any]:
        return {**super().judge_settings(), "reference_categories": list(self.reference_categories)}

    def judge_messages(self, question: Question, turn: int, answers: Sequence[str]) -> Messages:
        p = self.config.prompts
        refs = question.references or ()
        reference = self.uses_reference(question)
        fields = {"language_note": self.language_note}
        if turn == 1:
            template = (
                (p.single_reference or prompts.SINGLE_REFERENCE)
                if reference
                else (p.single or prompts.SINGLE)
            )
            fields |= {"question": question.turns[0], "answer": answers[0], "reference": _at(refs, 0)}
        else:
            # Turns beyond the second are judged as "the latest reply" with the previous exchange as
            # context, which is how the two-turn template reads.
            template = (
                (p.multi_reference or prompts.MULTI_REFERENCE) if reference else (p.multi or prompts.MULTI)
            )
            fields |= {
                "question_1": question.turns[turn - 2],
                "answer_1": answers[turn - 2],
                "question_2": question.turns[turn - 1],
                "answer_2": answers[turn - 1],
                "reference_1": _at(refs, turn - 2),
                "reference_2": _at(refs, turn - 1),
            }
        return [
            {"role": "system", "content": p.system or prompts.JUDGE_SYSTEM},
            {"role": "user", "content": template.format_map(fields)},
        ]

    def parse_judgment(self, text: str) -> tuple[float, dict[str, float]]:
        return parse_rating(text, 1, 10), {}


class MtBenchJa(MtBench):
    name = "mt-bench-ja"
    language_note = prompts.JAPANESE_NOTE


def _at(values: Sequence[str], index: int) -> str:
    return values[index] if 0 <= index < len(values) else ""


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)
