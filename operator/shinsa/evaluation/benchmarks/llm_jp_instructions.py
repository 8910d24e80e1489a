"""llm-jp-instructions style: single-turn instructions rated 1-5 on several named criteria."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shinsa.api.eval_run import BenchmarkSpec
from shinsa.evaluation import prompts
from shinsa.evaluation.benchmarks.base import JudgedConversation, Messages
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.ratings import parse_criteria
from shinsa.evaluation.records import Item

DEFAULT_CRITERIA = ("accuracy", "helpfulness", "fluency", "instruction_following")
_FIELDS = ("question", "answer", "criteria_list", "first_criterion")


class LlmJpInstructions(JudgedConversation):
    name = "llm-jp-instructions"

    @classmethod
    def config_problems(cls, config: BenchmarkSpec) -> list[str]:
        # The criteria's count and uniqueness are schema limits of spec.benchmarks[].criteria.
        template = config.prompts.single
        problem = template and prompts.template_problem(template, _FIELDS)
        return [f"prompts.single: {problem}"] if problem else []

    @property
    def criteria(self) -> tuple[str, ...]:
        return tuple(self.config.criteria) if self.config.criteria else DEFAULT_CRITERIA

    def judge_settings(self) -> dict[str, Any]:
        return {**super().judge_settings(), "criteria": list(self.criteria)}

    def judge_messages(self, question: Question, turn: int, answers: Sequence[str]) -> Messages:
        listing = "\n".join(
            f"- {name}: {prompts.CRITERIA_DESCRIPTIONS[name]}"
            if name in prompts.CRITERIA_DESCRIPTIONS
            else f"- {name}"
            for name in self.criteria
        )
        template = self.config.prompts.single or prompts.CRITERIA
        text = template.format_map(
            {
                "question": question.turns[turn - 1],
                "answer": answers[turn - 1],
                "criteria_list": listing,
                "first_criterion": self.criteria[0],
            }
        )
        return [
            {"role": "system", "content": self.config.prompts.system or prompts.JUDGE_SYSTEM},
            {"role": "user", "content": text},
        ]

    def parse_judgment(self, text: str) -> tuple[float, dict[str, float]]:
        scores = parse_criteria(text, self.criteria, 1, 5)
        return float(np.mean(list(scores.values()))), scores

    def metrics(self, items: Sequence[Item]) -> dict[str, float]:
        scored = [i for i in items if i.score is not None]
        return {
            f"criterion/{name}": float(np.mean([i.criteria[name] for i in scored if name in i.criteria]))
            for name in self.criteria
            if any(name in i.criteria for i in scored)
        }
