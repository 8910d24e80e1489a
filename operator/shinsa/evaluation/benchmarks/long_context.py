"""Long-context retrieval: find a planted fact ("needle") in a long text built from a corpus file.

Prompts are built deterministically from the corpus, the target lengths and the needle depths, so a
resumed run rebuilds exactly the same prompts. Lengths are in model tokens, estimated from characters
(`charsPerToken`, default 3.0): calibrate it for your tokenizer and corpus language; the prompt tokens
the server reports are recorded on every item so the real length can be checked.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shinsa.api.eval_run import Sampling
from shinsa.evaluation.benchmarks.base import Benchmark, Context
from shinsa.evaluation.datasets import Question, load_corpus
from shinsa.evaluation.records import Item, StepFailed

DEFAULT_LENGTHS = (8192, 32768, 65536)
DEFAULT_DEPTHS = (0.1, 0.5, 0.9)
DEFAULT_CHARS_PER_TOKEN = 3.0
DEFAULT_MAX_TOKENS = 64
# Room for the chat template and the question around the text.
_OVERHEAD_TOKENS = 256
_NAMES = ("amber", "birch", "cobalt", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper")


def length_label(tokens: int) -> str:
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else str(tokens)


class LongContext(Benchmark):
    name = "long-context"
    needs_judge = False

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(self.config.context_lengths or DEFAULT_LENGTHS)

    @property
    def depths(self) -> tuple[float, ...]:
        return tuple(self.config.depths or DEFAULT_DEPTHS)

    @property
    def chars_per_token(self) -> float:
        return self.config.chars_per_token or DEFAULT_CHARS_PER_TOKEN

    def sampling_for(self, question: Question) -> Sampling:
        sampling = super().sampling_for(question)
        # Retrieval answers are short and should be the most likely ones.
        defaults = Sampling(temperature=0.0, max_tokens=DEFAULT_MAX_TOKENS)
        return defaults.merged(sampling)

    def generation_settings(self) -> dict[str, Any]:
        return {
            **super().generation_settings(),
            "lengths": list(self.lengths),
            "depths": list(self.depths),
            "samples": self.config.samples_per_length or 1,
            "chars_per_token": self.chars_per_token,
        }

    def load(self, cache_dir: Path) -> None:
        self.dataset, corpus = load_corpus(self.config.dataset.uri, self.config.dataset, cache_dir)
        max_tokens = self.sampling_for(Question("", "", ("",))).max_tokens or DEFAULT_MAX_TOKENS
        questions = []
        for length in self.lengths:
            budget = int((length - max_tokens - _OVERHEAD_TOKENS) * self.chars_per_token)
            for depth in self.depths:
                for sample in range(self.config.samples_per_length or 1):
                    qid = f"len{length}-depth{depth:g}-s{sample}"
                    prompt, code = build_prompt(corpus, budget, depth, random.Random(qid))
                    questions.append(Question(qid, length_label(length), (prompt,), (code,)))
        self.questions = questions[: self.config.limit] if self.config.limit else questions

    async def evaluate(self, question: Question, repeat: int, ctx: Context) -> list[Item]:
        fields: dict[str, Any] = {
            "benchmark": self.name,
            "question_id": question.question_id,
            "category": question.category,
            "turn": 1,
            "repeat": repeat,
            "judge": self.rule_judge,
        }
        messages = [*self.start_messages(), {"role": "user", "content": question.turns[0]}]
        try:
            generation = await ctx.generate(
                self, question, 1, repeat, messages, self.sampling_for(question), stream=True
            )
        except StepFailed as exc:
            return [Item(**fields, error=f"generation failed: {exc}")]
        expected = (question.references or ("",))[0]
        found = expected in re.sub(r"[\s,]", "", generation.answer)
        return [Item.from_generation(fields, generation, score=1.0 if found else 0.0)]

    def metrics(self, items: Sequence[Item]) -> dict[str, float]:
        out: dict[str, float] = {}
        for label in sorted({i.category for i in items}, key=_label_order):
            done = [i for i in items if i.category == label and i.score is not None]
            if not done:
                continue
            out[f"{label}/accuracy"] = float(np.mean([i.score for i in done]))
            latency = [i.latency_s for i in done if i.latency_s is not None]
            ttft = [i.ttft_s for i in done if i.ttft_s is not None]
            if latency:
                out[f"{label}/latency_s_mean"] = float(np.mean(latency))
                out[f"{label}/latency_s_p95"] = float(np.percentile(latency, 95))
            if ttft:
                out[f"{label}/ttft_s_mean"] = float(np.mean(ttft))
                out[f"{label}/ttft_s_p50"] = float(np.percentile(ttft, 50))
            out[f"{label}/prompt_tokens_mean"] = float(np.mean([i.prompt_tokens for i in done]))
        return out

    def item_metrics(self, item: Item) -> dict[str, float]:
        if item.score is None:
            return {}
        out = {f"{item.category}/accuracy": item.score}
        if item.latency_s is not None:
            out[f"{item.category}/latency_s"] = item.latency_s
        return out


def _label_order(label: str) -> int:
    digits = re.sub(r"\D", "", label)
    return int(digits) if digits else 0


def build_prompt(corpus: str, budget_chars: int, depth: float, rng: random.Random) -> tuple[str, str]:
    """A haystack of about `budget_chars` characters with one needle at `depth`; returns (prompt, code)."""
    name = f"{rng.choice(_NAMES)}-{rng.randint(10, 99)}"
    code = str(rng.randint(1_000_000, 9_999_999))
    needle = f"\nThe access code for the {name} archive is {code}.\n"
    question = (
        f"\n\nAccording to the text above, what is the access code for the {name} archive? "
        "Reply with the code only."
    )
    room = max(0, budget_chars - len(needle) - len(question))
    text = corpus.strip()
    haystack = (text + "\n\n") * (room // (len(text) + 2) + 1)
    haystack = haystack[:room]
    cut = int(len(haystack) * depth)
    # Put the needle between sentences so it does not split a word the tokenizer would merge with it.
    boundary = max(haystack.rfind(mark, 0, cut) for mark in (". ", "。", "\n"))
    at = boundary + 1 if boundary >= 0 else cut
    return haystack[:at] + needle + haystack[at:] + question, code
