"""Separating a reasoning model's thinking from its answer.

Judges must see only the answer: thinking text is long, often contains drafts with different
conclusions, and would bias or confuse the rating. It is kept separately for inspection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
# Harmony with special tokens kept:
# <|channel|>analysis<|message|>...<|end|> ... <|channel|>final<|message|>...
_HARMONY_CHANNEL = re.compile(
    r"(?:<\|start\|>\w*)?<\|channel\|>(\w+)(?:\s[^<]*)?<\|message\|>"
    r"(.*?)(?=<\|end\|>|<\|return\|>|<\|start\|>|$)",
    re.DOTALL,
)
# Harmony decoded with special tokens skipped collapses to "analysis<thinking>assistantfinal<answer>".
_HARMONY_FLAT = re.compile(r"^\s*analysis(.*?)assistantfinal(.*)$", re.DOTALL)


@dataclass(frozen=True)
class SplitText:
    answer: str
    reasoning: str


def split_reasoning(content: str, reasoning_field: str | None = None) -> SplitText:
    """Return the visible answer and the reasoning text found in `content` or a separate field."""
    parts: list[str] = [reasoning_field] if reasoning_field else []
    answer = content

    if "<|channel|>" in answer:
        channels = _HARMONY_CHANNEL.findall(answer)
        if channels:
            finals = [text for name, text in channels if name == "final"]
            parts.extend(text for name, text in channels if name != "final")
            answer = "".join(finals)
    else:
        flat = _HARMONY_FLAT.match(answer)
        if flat:
            parts.append(flat.group(1))
            answer = flat.group(2)

    if "</think>" in answer or "<think>" in answer:
        parts.extend(_THINK_BLOCK.findall(answer))
        answer = _THINK_BLOCK.sub("", answer)
        # Chat templates that open <think> in the prompt leave only the closing tag in the output.
        if "</think>" in answer:
            before, _, after = answer.partition("</think>")
            parts.append(before)
            answer = after
        # An unclosed block at the start means generation stopped while thinking: there is no
        # answer. A `<think>` further on is text the answer contains (say, about chat templates).
        opening = answer.lstrip()
        if opening.startswith("<think>"):
            parts.append(opening.removeprefix("<think>"))
            answer = ""

    return SplitText(answer=answer.strip(), reasoning="\n".join(p.strip() for p in parts if p.strip()))
