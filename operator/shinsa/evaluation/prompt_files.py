"""llm-jp-judge judge prompt files (`config/benchmark/prompt/evaluate/*.yaml`), read as they are.

Two layouts, as in llm-jp-judge v2.0.0 (4392b3b):
- per-template (its MT-Bench files): top-level keys are template ids (`single-v1`, `single-math-v1`,
  `single-v1-multi-turn`, `single-math-v1-multi-turn`), each a mapping with `prompt_template`,
  `system_prompt` (null: no system message) and `regex` (group 1 is the rating);
- one template (its quality and safety files): `prompt_template` (or `prompt_template_with_ref` /
  `prompt_template_wo_ref`), `regex`, and for criteria ratings `metrics` (the regex's groups are
  then the criterion and its rating). These have no system prompt of their own.

Parsing is pure (`parse_prompt_file`); `load_prompt_file` only finds and reads the file. Errors name
the file and the key. The file's text is the user's; Shinsa ships none of it.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shinsa.evaluation.datasets import DatasetError, locate, read_text

SINGLE_TEMPLATE_KEYS = ("prompt_template", "prompt_template_with_ref", "prompt_template_wo_ref")


class PromptFileError(DatasetError):
    """A prompt file that cannot be read, or lacks what its benchmark needs."""


@dataclass(frozen=True)
class JudgeTemplate:
    """One judge prompt of a prompt file."""

    id: str
    """The template's id: its key in a per-template file (llm-jp-judge's metric name), else the
    template key (`prompt_template` ...)."""
    prompt: str
    system: str | None
    regex: re.Pattern[str] | None


@dataclass(frozen=True)
class PromptFile:
    source: str
    templates: Mapping[str, JudgeTemplate]
    metrics: tuple[str, ...] | None
    digest: str

    def template(self, *ids: str) -> JudgeTemplate:
        """The first of `ids` the file has (callers have checked with `require`)."""
        for template_id in ids:
            if template_id in self.templates:
                return self.templates[template_id]
        raise PromptFileError(f"{self.source}: none of the templates {', '.join(ids)}")

    def require(self, *alternatives: tuple[str, ...]) -> None:
        """Raise unless the file has, for each group of `alternatives`, one of its template ids."""
        for ids in alternatives:
            if not any(i in self.templates for i in ids):
                found = ", ".join(self.templates) or "none"
                raise PromptFileError(f"{self.source}: no {' or '.join(ids)} template; it has {found}")


def _regex(source: str, key: str, value: Any, groups: int = 1) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PromptFileError(f"{source}: {key}: expected a regular expression string")
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise PromptFileError(f"{source}: {key}: not a valid regular expression ({exc})") from None
    if pattern.groups < groups:
        raise PromptFileError(
            f"{source}: {key}: needs {groups} group(s) in parentheses, has {pattern.groups}"
        )
    return pattern


def _text(source: str, key: str, value: Any, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise PromptFileError(f"{source}: {key}: expected a string")
    return value


def parse_prompt_file(text: str, source: str) -> PromptFile:
    """The judge templates of an llm-jp-judge prompt file's `text`; `source` names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PromptFileError(f"{source}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise PromptFileError(f"{source}: expected a mapping of templates")
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if any(k in data for k in SINGLE_TEMPLATE_KEYS):
        metrics = data.get("metrics")
        if metrics is not None and (
            not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m for m in metrics)
        ):
            raise PromptFileError(f"{source}: metrics: expected a list of criterion names")
        regex = _regex(source, "regex", data.get("regex"), 2 if metrics else 1)
        system = _text(source, "system_prompt", data.get("system_prompt"), optional=True)
        templates = {
            key: JudgeTemplate(key, str(_text(source, key, data[key])), system, regex)
            for key in SINGLE_TEMPLATE_KEYS
            if key in data
        }
        return PromptFile(source, templates, tuple(metrics) if metrics else None, digest)
    templates = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or "prompt_template" not in entry:
            raise PromptFileError(
                f"{source}: {key}: expected a template (a mapping with prompt_template, system_prompt, regex)"
            )
        templates[str(key)] = JudgeTemplate(
            str(key),
            str(_text(source, f"{key}.prompt_template", entry["prompt_template"])),
            _text(source, f"{key}.system_prompt", entry.get("system_prompt"), optional=True),
            _regex(source, f"{key}.regex", entry.get("regex")),
        )
    if not templates:
        raise PromptFileError(f"{source}: no templates")
    return PromptFile(source, templates, None, digest)


def load_prompt_file(uri: str, cache_dir: Path) -> PromptFile:
    """The prompt file at `uri` (a path, `s3://bucket/key` or `pvc://claim/path`)."""
    path = locate(uri, cache_dir / "prompt-files")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        if len(files) != 1:
            raise PromptFileError(f"{uri}: expected a prompt file (.yaml), found a directory")
        path = files[0]
    return parse_prompt_file(read_text(path), uri)


def field_problem(template: JudgeTemplate, source: str, sample: Mapping[str, Any]) -> str | None:
    """Why `template` cannot be filled with values like `sample` (the objects it will get), or None."""
    names = {f.split(".")[0].split("[")[0] for _, f, _, _ in _fields(template.prompt) if f is not None}
    unknown = sorted(n for n in names if n not in sample)
    if unknown:
        return (
            f"{source}: {template.id}: unknown field {{{unknown[0]}}}; available: {', '.join(sorted(sample))}"
        )
    try:
        template.prompt.format(**sample)
    except (ValueError, IndexError, KeyError, AttributeError, TypeError) as exc:
        return f"{source}: {template.id}: not a valid format string ({exc})"
    return None


def _fields(text: str) -> Iterable[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(text))
    except ValueError:
        return []  # field_problem's format() reports it


def prompt_file_problems(prompts: Any, prompt_file: str | None, overridable: Iterable[str]) -> list[str]:
    """Template overrides that a `promptFile` would contradict: `prompts.<key>` for `overridable`
    keys (snake case) set beside it."""
    if prompt_file is None:
        return []
    return [
        f"prompts.{_camel(key)}: cannot be set with promptFile, whose templates replace it"
        for key in overridable
        if getattr(prompts, key) is not None
    ]


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)


__all__ = [
    "SINGLE_TEMPLATE_KEYS",
    "JudgeTemplate",
    "PromptFile",
    "PromptFileError",
    "field_problem",
    "load_prompt_file",
    "parse_prompt_file",
    "prompt_file_problems",
]
