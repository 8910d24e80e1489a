"""MT-Bench style: multi-turn questions, every turn rated 1-10, reference-guided for some categories."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shinsa.api.eval_run import BenchmarkSpec
from shinsa.evaluation import prompts
from shinsa.evaluation.benchmarks.base import JudgedConversation, JudgeRequest, Messages
from shinsa.evaluation.datasets import Question, reference_warnings
from shinsa.evaluation.prompt_files import (
    JudgeTemplate,
    PromptFile,
    PromptFileError,
    field_problem,
    prompt_file_problems,
)
from shinsa.evaluation.ratings import read_rating

DEFAULT_REFERENCE_CATEGORIES = ("math", "reasoning", "coding")

_SINGLE_FIELDS = ("question", "answer", "language_note")
_MULTI_FIELDS = ("question_1", "answer_1", "question_2", "answer_2", "language_note")

# llm-jp-judge's MT-Bench templates (evaluator/mt_bench.py, v2.0.0): the id and the fields it fills.
_LJJ_SINGLE = "single-v1"
_LJJ_SINGLE_REFERENCE = "single-math-v1"
_LJJ_MULTI = "single-v1-multi-turn"
_LJJ_MULTI_REFERENCE = "single-math-v1-multi-turn"
_LJJ_FIELDS = {
    _LJJ_SINGLE: ("question", "answer"),
    _LJJ_SINGLE_REFERENCE: ("question", "answer", "ref_answer_1"),
    _LJJ_MULTI: ("question_1", "question_2", "answer_1", "answer_2"),
    _LJJ_MULTI_REFERENCE: (
        "question_1",
        "question_2",
        "answer_1",
        "answer_2",
        "ref_answer_1",
        "ref_answer_2",
    ),
}


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
        problems = prompt_file_problems(
            config.prompts, config.prompt_file, [k for k in fields if k != "system"]
        )
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

    def load(self, cache_dir: Path) -> None:
        super().load(cache_dir)
        assert self.dataset is not None
        self.warnings.extend(
            reference_warnings(
                self.dataset,
                self.questions,
                self.reference_categories,
                explicit=self.config.reference_categories is not None,
                limited=self.config.limit is not None,
            )
        )

    def uses_reference(self, question: Question) -> bool:
        return question.category in self.reference_categories and bool(question.references)

    def judge_settings(self) -> dict[str, Any]:
        return {**super().judge_settings(), "reference_categories": list(self.reference_categories)}

    def check_prompt_file(self, prompt_file: PromptFile) -> None:
        for template_id, names in _LJJ_FIELDS.items():
            prompt_file.require((template_id,))
            problem = field_problem(
                prompt_file.templates[template_id], prompt_file.source, dict.fromkeys(names, "")
            )
            if problem:
                raise PromptFileError(problem)

    def judge_request(self, question: Question, turn: int, answers: Sequence[str | None]) -> JudgeRequest:
        if self.prompt_file is None:
            request = super().judge_request(question, turn, answers)
            reference = self.uses_reference(question)
            kind = ("single" if turn == 1 else "multi") + ("Reference" if reference else "")
            return JudgeRequest(request.messages, request.parse, kind, reference)
        refs = question.references or ()
        reference = self.uses_reference(question)
        values: dict[str, str | None]
        if turn == 1:
            template_id = _LJJ_SINGLE_REFERENCE if reference else _LJJ_SINGLE
            values = {"question": question.turns[0], "answer": answers[0]}
            if reference:
                values["ref_answer_1"] = _at(refs, 0)
        else:
            # As Shinsa's own templates: a later turn is judged with the exchange before it.
            template_id = _LJJ_MULTI_REFERENCE if reference else _LJJ_MULTI
            values = {
                "question_1": question.turns[turn - 2],
                "question_2": question.turns[turn - 1],
                "answer_1": answers[turn - 2],
                "answer_2": answers[turn - 1],
            }
            if reference:
                values |= {"ref_answer_1": _at(refs, turn - 2), "ref_answer_2": _at(refs, turn - 1)}
        template = self.prompt_file.templates[template_id]
        judging = self.config.judging
        text = prompts.render(template.prompt, values, judging.formatting or "shinsa")
        system = self.config.prompts.system if self.config.prompts.system is not None else template.system
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": "user", "content": text}
        ]
        return JudgeRequest(messages, self._parser(template), template_id, reference)

    def _parser(self, template: JudgeTemplate | None) -> Callable[[str], tuple[float, dict[str, float]]]:
        judging = self.config.judging
        regex = template.regex if template is not None else None

        def parse(text: str) -> tuple[float, dict[str, float]]:
            rule = judging.ratings or "agree"
            check = judging.range_check if judging.range_check is not None else True
            return read_rating(text, 1, 10, regex=regex, rule=rule, range_check=check), {}

        return parse

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
        return self._parser(None)(text)


class MtBenchJa(MtBench):
    name = "mt-bench-ja"
    language_note = prompts.JAPANESE_NOTE


def _at(values: Sequence[str], index: int) -> str:
    return values[index] if 0 <= index < len(values) else ""


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)
