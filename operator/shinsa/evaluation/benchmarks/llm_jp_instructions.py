"""llm-jp-instructions style: single-turn instructions rated 1-5 on several named criteria."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shinsa.api.eval_run import BenchmarkSpec
from shinsa.evaluation import prompts
from shinsa.evaluation.benchmarks.base import JudgedConversation, JudgeRequest, Messages
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.prompt_files import PromptFile, PromptFileError, field_problem, prompt_file_problems
from shinsa.evaluation.ratings import read_criteria
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
        return prompt_file_problems(config.prompts, config.prompt_file, ["single"]) + (
            [f"prompts.single: {problem}"] if problem else []
        )

    @property
    def criteria(self) -> tuple[str, ...]:
        if self.config.criteria:
            return tuple(self.config.criteria)
        if self.prompt_file is not None and self.prompt_file.metrics:
            return self.prompt_file.metrics
        return DEFAULT_CRITERIA

    def check_prompt_file(self, prompt_file: PromptFile) -> None:
        prompt_file.require(("prompt_template",))
        template = prompt_file.templates["prompt_template"]
        if template.regex is None or template.regex.groups < 2 or not prompt_file.metrics:
            raise PromptFileError(
                f"{prompt_file.source}: needs metrics (the criteria) and a regex whose groups are a "
                "criterion and its rating"
            )
        # llm-jp-judge passes its quality prompts one-element lists (evaluator/quality.py).
        problem = field_problem(template, prompt_file.source, {"question": [""], "response": [""]})
        if problem:
            raise PromptFileError(problem)

    def judge_request(self, question: Question, turn: int, answers: Sequence[str | None]) -> JudgeRequest:
        judging = self.config.judging
        if self.prompt_file is None:
            request = super().judge_request(question, turn, answers)
            return JudgeRequest(request.messages, request.parse, "single", False)
        template = self.prompt_file.templates["prompt_template"]
        text = prompts.render(
            template.prompt,
            {"question": [question.turns[turn - 1]], "response": [answers[turn - 1]]},
            judging.formatting or "shinsa",
        )
        system = self.config.prompts.system if self.config.prompts.system is not None else template.system
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": text}
        ]
        return JudgeRequest(messages, self.parse_judgment, template.id, False)

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
        judging = self.config.judging
        template = self.prompt_file.templates["prompt_template"] if self.prompt_file else None
        scores = read_criteria(
            text,
            self.criteria,
            1,
            5,
            regex=template.regex if template else None,
            rule=judging.ratings or "agree",
            range_check=judging.range_check if judging.range_check is not None else True,
        )
        return float(np.mean(list(scores.values()))), scores

    def metrics(self, items: Sequence[Item]) -> dict[str, float]:
        scored = [i for i in items if i.score is not None]
        return {
            f"criterion/{name}": float(np.mean([i.criteria[name] for i in scored if name in i.criteria]))
            for name in self.criteria
            if any(name in i.criteria for i in scored)
        }
