"""Long-context retrieval: find a planted fact ("needle") in a long text of numbered passages, and
cite the passage it is in.

The text is built from a corpus file, cut into passages labelled `[P1]`, `[P2]`, ...; the needle
opens the passage at each depth. The model is asked for the code and for the id of the passage it
read it in (`[P12]`), so an answer is checked twice: the code (accuracy) and the citation (it must
name the planted passage, and every id it names must exist in the text).

Lengths are in the served model's own tokens: each prompt is measured with the server's `/tokenize`
(vLLM's, chat template included) and its text adjusted until the prompt is within
`LENGTH_TOLERANCE` below `length - maxTokens` tokens (so prompt and answer fit a `max_model_len` of
`length`). Only a server without `/tokenize` falls back to the `charsPerToken` estimate; which one
sized a run is in its metrics (`prompt_tokens_measured`) and warnings.

Lengths run one after another, shortest first, so each length's latency and KV-cache usage (read from
the server's `/metrics` while it runs, `vllm:kv_cache_usage_perc`) are its own. Each answer is also
checked for failure modes: a repetition loop, an empty answer, an answer in another language than
the text's, and truncation at `maxTokens` (finish reason `length`).

Everything is built deterministically from the corpus, the lengths and depths and the server's token
counts, so a resumed run rebuilds the same prompts.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shinsa.api.eval_run import Sampling
from shinsa.evaluation.benchmarks.base import Benchmark, Context, Messages
from shinsa.evaluation.datasets import Question, load_corpus
from shinsa.evaluation.records import Item, StepFailed
from shinsa.evaluation.server_metrics import GaugeSampler, usage_summary

DEFAULT_LENGTHS = (8192, 32768, 65536)
DEFAULT_DEPTHS = (0.1, 0.5, 0.9)
DEFAULT_CHARS_PER_TOKEN = 3.0
DEFAULT_MAX_TOKENS = 64
LENGTH_TOLERANCE = 0.02
"""A measured prompt is accepted within this fraction (or `_MIN_TOLERANCE_TOKENS`) below its target,
and never above it."""
_MIN_TOLERANCE_TOKENS = 16
_SIZING_ROUNDS = 8
# Room for the chat template and the question around the text, when lengths are estimated.
_OVERHEAD_TOKENS = 256
_PASSAGE_CHARS = 600
_NAMES = ("amber", "birch", "cobalt", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper")
FAILURE_MODES = ("repetition", "empty", "wrong_language", "truncated")
YARN_CAVEAT = (
    "YaRN is not recommended when typical context is 32k tokens or less (the LLM-jp-4 report, "
    "following Qwen3's guidance): static scaling applies to short prompts too and can lower their "
    "quality; compare each length with a deployment without ropeScaling"
)

# The texts the benchmark writes around the corpus, per corpus language (Shinsa's own wording).
_TEMPLATES = {
    "en": {
        "needle": "The access code for the {name} archive is {code}.",
        "question": (
            "According to the passages above, what is the access code for the {name} archive? "
            "Reply with the code, then the id of the passage you found it in, in square brackets, "
            "for example: 1234567 [P12]"
        ),
    },
    "ja": {
        "needle": "{name} アーカイブのアクセスコードは {code} です。",
        "question": (
            "上の段落によると、{name} アーカイブのアクセスコードは何ですか。"
            "コードと、それが書かれていた段落の番号を角括弧で答えてください。例: 1234567 [P12]"
        ),
    },
}


def length_label(tokens: int) -> str:
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else str(tokens)


# -- pure parts: prompts, citations, failure modes ------------------------------------------------


@dataclass(frozen=True)
class Planted:
    """A prompt with its needle: the code to find and the id of the passage it is in."""

    prompt: str
    code: str
    passage: str
    passages: int


_KANA = re.compile(r"[\u3040-\u30ff]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_CITATION = re.compile(r"[\[［【]\s*P\s*(\d+)\s*[\]］】]")


def corpus_language(text: str) -> str:
    """`ja` for a text mostly in Japanese script, else `en`: the language prompts and answers should
    be in."""
    sample = text[:20000]
    cjk = len(_KANA.findall(sample)) + len(_HAN.findall(sample))
    return "ja" if cjk >= 0.3 * max(1, cjk + len(_LATIN.findall(sample))) else "en"


def script_of(text: str) -> str | None:
    """The language an answer is written in, by script: `ja` (kana), `zh` (Han without kana), `ko`,
    `ru`, `en` (Latin); None when it has too few letters to tell (a bare code and citation)."""
    text = _CITATION.sub(" ", text)
    kana, han = len(_KANA.findall(text)), len(_HAN.findall(text))
    latin, hangul, cyrillic = (len(p.findall(text)) for p in (_LATIN, _HANGUL, _CYRILLIC))
    letters = kana + han + latin + hangul + cyrillic
    if letters < 4:
        return None
    if kana and kana + han >= 0.3 * letters:
        return "ja"
    counts = {"zh": han, "ko": hangul, "ru": cyrillic, "en": latin}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] >= 0.5 * letters else "other"


def wrong_language(answer: str, expected: str) -> bool:
    found = script_of(answer)
    return found is not None and found != expected


_LOOP = re.compile(r"(.{2,200}?)\1{2,}", re.DOTALL)
_LOOP_MIN_CHARS = 30


def repetition_loop(text: str) -> bool:
    """True when some span of the answer (2 to 200 characters, not one character repeated) recurs at
    least 3 times back to back over at least 30 characters: a decoding loop, not a short echo."""
    for match in _LOOP.finditer(text[-8000:]):
        unit = match.group(1)
        if len(match.group(0)) >= _LOOP_MIN_CHARS and unit.strip() and len(set(unit.strip())) > 1:
            return True
    return False


def failure_modes(answer: str, finish_reason: str | None, language: str) -> list[str]:
    """The failure modes of one answer, in `FAILURE_MODES` order."""
    found = []
    if repetition_loop(answer):
        found.append("repetition")
    if not answer.strip():
        found.append("empty")
    if wrong_language(answer, language):
        found.append("wrong_language")
    if finish_reason == "length":
        found.append("truncated")
    return found


def cited_passages(answer: str) -> list[str]:
    """The passage ids an answer cites (`[P12]`, also with full-width brackets), in order."""
    return [f"P{int(n)}" for n in _CITATION.findall(answer)]


def citation_consistent(answer: str, planted: str, passages: int) -> bool:
    """The answer cites the planted passage, and every passage it cites exists in the text."""
    cited = cited_passages(answer)
    return planted in cited and all(1 <= int(c[1:]) <= passages for c in cited)


def found_code(answer: str, code: str) -> bool:
    return code in re.sub(r"[\s,]", "", _CITATION.sub(" ", answer))


def plant(corpus: str, budget_chars: int, depth: float, rng: random.Random, language: str = "en") -> Planted:
    """A text of about `budget_chars` characters in numbered passages, with the needle opening the
    passage at `depth`, followed by the question."""
    templates = _TEMPLATES[language]
    name = f"{rng.choice(_NAMES)}-{rng.randint(10, 99)}"
    code = str(rng.randint(1_000_000, 9_999_999))
    needle = templates["needle"].format(name=name, code=code)
    question = "\n\n" + templates["question"].format(name=name)
    text = corpus.strip()
    room = max(0, budget_chars - len(needle) - len(question))
    for _ in range(4):
        filler = ((text + "\n\n") * (room // (len(text) + 2) + 1))[:room]
        chunks = _passages(filler)
        at = min(len(chunks), int(len(chunks) * depth))
        chunks.insert(at, needle)
        if at + 1 < len(chunks):
            # The needle opens the passage that follows it, so that it is not a passage of its own.
            chunks[at : at + 2] = [needle + " " + chunks[at + 1]]
        body = "\n\n".join(f"[P{i}] {chunk}" for i, chunk in enumerate(chunks, start=1))
        # The passage labels take room too: give it back from the filler.
        excess = len(body) + len(question) - budget_chars
        if excess <= 0 or room == 0:
            break
        room = max(0, room - excess)
    return Planted(body + question, code, f"P{at + 1}", len(chunks))


def build_prompt(corpus: str, budget_chars: int, depth: float, rng: random.Random) -> tuple[str, str]:
    """(prompt, code) of `plant` for an English corpus."""
    planted = plant(corpus, budget_chars, depth, rng)
    return planted.prompt, planted.code


def _passages(text: str) -> list[str]:
    """`text` cut into passages of about `_PASSAGE_CHARS`, between sentences where it can be."""
    out = []
    start = 0
    while start < len(text):
        end = start + _PASSAGE_CHARS
        if end < len(text):
            cut = max(text.rfind(mark, start + _PASSAGE_CHARS // 2, end) for mark in (". ", "。", "\n"))
            end = cut + 1 if cut >= 0 else end
        chunk = " ".join(text[start:end].split())
        if chunk:
            out.append(chunk)
        start = end
    return out


def next_budget(chars: int, measured: int, aim: int) -> int:
    """The character budget to try next, for a prompt of `chars` characters measured at `measured`
    tokens, aiming at `aim` tokens (proportional: tokens per character barely change with length)."""
    return max(0, int(chars * aim / max(1, measured)))


def within(measured: int, target: int) -> bool:
    slack = max(_MIN_TOLERANCE_TOKENS, int(target * LENGTH_TOLERANCE))
    return target - slack <= measured <= target


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """mean, p50 and p95 (linear interpolation between order statistics, numpy's default)."""
    if not values:
        return {}
    data = np.asarray(values, dtype=float)
    return {
        "mean": float(data.mean()),
        "p50": float(np.percentile(data, 50)),
        "p95": float(np.percentile(data, 95)),
    }


# -- the benchmark ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    length: int
    depth: float
    sample: int


@dataclass(frozen=True)
class _Sized:
    planted: Planted
    measured: int | None
    target: int


class LongContext(Benchmark):
    name = "long-context"
    needs_judge = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.corpus = ""
        self.language = "en"
        self._specs: dict[str, _Spec] = {}
        self._sized: dict[str, asyncio.Task[_Sized]] = {}
        self._phase_done: dict[str, asyncio.Event] = {}
        self._phase_left: Counter[str] = Counter()
        self._sampler: GaugeSampler | None = None
        self._estimated = False

    @property
    def lengths(self) -> tuple[int, ...]:
        return tuple(self.config.context_lengths or DEFAULT_LENGTHS)

    @property
    def depths(self) -> tuple[float, ...]:
        return tuple(self.config.depths or DEFAULT_DEPTHS)

    @property
    def chars_per_token(self) -> float:
        return self.config.chars_per_token or DEFAULT_CHARS_PER_TOKEN

    @property
    def max_tokens(self) -> int:
        return self.sampling_for(Question("", "", ("",))).max_tokens or DEFAULT_MAX_TOKENS

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
            "prompt_format": "passages-v2",
        }

    def load(self, cache_dir: Path) -> None:
        self.dataset, self.corpus = load_corpus(self.config.dataset.uri, self.config.dataset, cache_dir)
        self.language = corpus_language(self.corpus)
        questions = []
        for length in self.lengths:
            budget = int((length - self.max_tokens - _OVERHEAD_TOKENS) * self.chars_per_token)
            for depth in self.depths:
                for sample in range(self.config.samples_per_length or 1):
                    qid = f"len{length}-depth{depth:g}-s{sample}"
                    # The estimate-sized prompt; `evaluate` resizes it with the server's counts.
                    planted = plant(self.corpus, budget, depth, random.Random(qid), self.language)
                    questions.append(Question(qid, length_label(length), (planted.prompt,), (planted.code,)))
                    self._specs[qid] = _Spec(length, depth, sample)
        self.questions = questions[: self.config.limit] if self.config.limit else questions
        rope = self.target.rope_scaling if self.target is not None else None
        if rope is not None:
            self.warnings.append(
                f"the model is served with YaRN (ropeScaling factor {rope.factor:g}): {YARN_CAVEAT}"
            )

    # -- running ------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def session(self, ctx: Context, repeats: int) -> AsyncIterator[None]:
        labels = _ordered({q.category for q in self.questions})
        self._phase_left = Counter({label: 0 for label in labels})
        for question in self.questions:
            self._phase_left[question.category] += repeats
        self._phase_done = {label: asyncio.Event() for label in labels}
        model = self.target.served_name if self.target is not None else None
        self._sampler = GaugeSampler(ctx.server_metrics, model=model, phase=labels[0] if labels else None)
        self._sampler.start()
        try:
            yield
        finally:
            await self._sampler.stop()
            if self._estimated:
                self.warnings.append(
                    "the server has no /tokenize: prompt lengths are estimates at charsPerToken "
                    f"{self.chars_per_token:g}, not the model's tokens"
                )
            if not self._sampler.samples:
                self.warnings.append(
                    "no KV-cache usage: the server's /metrics has no vllm:kv_cache_usage_perc"
                    if self._sampler.reachable
                    else "no KV-cache usage: the server's /metrics did not answer"
                )

    def _messages(self, prompt: str) -> Messages:
        return [*self.start_messages(), {"role": "user", "content": prompt}]

    async def _size(self, question: Question, ctx: Context) -> _Sized:
        """The prompt for `question` sized with the server's token counts (or the estimate)."""
        spec = self._specs[question.question_id]
        target = spec.length - self.max_tokens
        aim = target - max(_MIN_TOLERANCE_TOKENS, int(target * LENGTH_TOLERANCE)) // 2
        chars = int((target - _OVERHEAD_TOKENS) * self.chars_per_token)
        best: _Sized | None = None
        for _ in range(_SIZING_ROUNDS):
            planted = plant(
                self.corpus, chars, spec.depth, random.Random(question.question_id), self.language
            )
            measured = await ctx.count_tokens(self._messages(planted.prompt))
            if measured is None:
                self._estimated = True
                return _Sized(planted, None, target)
            if measured <= target and (best is None or best.measured is None or measured > best.measured):
                best = _Sized(planted, measured, target)
            if within(measured, target):
                return _Sized(planted, measured, target)
            following = next_budget(chars, measured, aim)
            if following == chars:
                following += 1 if measured < target else -1
            chars = max(0, following)
        if best is None:
            raise StepFailed(
                f"cannot build a prompt of {target} tokens or fewer: the question and template alone "
                f"measure {measured} tokens"
            )
        return best

    def _sized_prompt(self, question: Question, ctx: Context) -> asyncio.Task[_Sized]:
        # Repeats share one sizing.
        task = self._sized.get(question.question_id)
        if task is None:
            task = asyncio.ensure_future(self._size(question, ctx))
            self._sized[question.question_id] = task
        return task

    async def _turn_of(self, label: str) -> None:
        """Wait until every shorter length has finished."""
        for earlier in self._phase_done:
            if earlier == label:
                return
            await self._phase_done[earlier].wait()

    def _finished(self, label: str) -> None:
        if label not in self._phase_left:
            return
        self._phase_left[label] -= 1
        if self._phase_left[label] <= 0 and not self._phase_done[label].is_set():
            self._phase_done[label].set()
            pending = [lab for lab in self._phase_done if not self._phase_done[lab].is_set()]
            if self._sampler is not None and pending:
                self._sampler.phase = pending[0]

    async def evaluate(self, question: Question, repeat: int, ctx: Context) -> list[Item]:
        try:
            return [await self._evaluate(question, repeat, ctx)]
        finally:
            self._finished(question.category)

    async def _evaluate(self, question: Question, repeat: int, ctx: Context) -> Item:
        fields: dict[str, Any] = {
            "benchmark": self.name,
            "question_id": question.question_id,
            "category": question.category,
            "turn": 1,
            "repeat": repeat,
            "judge": self.rule_judge,
        }
        try:
            sized = await self._sized_prompt(question, ctx)
        except StepFailed as exc:
            return Item(**fields, error=f"prompt not built: {exc}")
        await self._turn_of(question.category)
        planted = sized.planted
        try:
            generation = await ctx.generate(
                self,
                question,
                1,
                repeat,
                self._messages(planted.prompt),
                self.sampling_for(question),
                stream=True,
            )
        except StepFailed as exc:
            return Item(**fields, error=f"generation failed: {exc}")
        answer = generation.answer
        item = Item.from_generation(
            fields, generation, score=1.0 if found_code(answer, planted.code) else 0.0
        )
        item.extra = {
            "target_tokens": sized.target,
            "measured_tokens": sized.measured,
            "token_count": "estimate" if sized.measured is None else "server",
            "passage": planted.passage,
            "cited": cited_passages(answer),
            "citation_consistent": citation_consistent(answer, planted.passage, planted.passages),
            "finish_reason": generation.finish_reason,
            "failures": failure_modes(answer, generation.finish_reason, self.language),
        }
        return item

    # -- numbers --------------------------------------------------------------------------------------

    def metrics(self, items: Sequence[Item]) -> dict[str, float]:
        out: dict[str, float] = {}
        measured_any = False
        for label in _ordered({i.category for i in items}):
            done = [i for i in items if i.category == label and i.score is not None]
            if not done:
                continue
            out[f"{label}/items"] = float(len(done))
            out[f"{label}/accuracy"] = float(np.mean([i.score for i in done]))
            out[f"{label}/citation_consistency"] = float(
                np.mean([bool(i.extra.get("citation_consistent")) for i in done])
            )
            for key, values in (
                ("latency_s", [i.latency_s for i in done if i.latency_s is not None]),
                ("ttft_s", [i.ttft_s for i in done if i.ttft_s is not None]),
            ):
                for stat, value in quantiles(values).items():
                    out[f"{label}/{key}_{stat}"] = value
            out[f"{label}/prompt_tokens_mean"] = float(np.mean([i.prompt_tokens for i in done]))
            measured = [
                i.extra["measured_tokens"] for i in done if i.extra.get("measured_tokens") is not None
            ]
            if measured:
                measured_any = True
                out[f"{label}/prompt_tokens_measured_mean"] = float(np.mean(measured))
                out[f"{label}/prompt_tokens_measured_min"] = float(min(measured))
                out[f"{label}/prompt_tokens_measured_max"] = float(max(measured))
            for mode in FAILURE_MODES:
                out[f"{label}/failures/{mode}"] = float(
                    sum(mode in i.extra.get("failures", ()) for i in done)
                )
            if self._sampler is not None:
                for key, value in usage_summary(self._sampler.values(label)).items():
                    out[f"{label}/{key}"] = value
        if items:
            out["prompt_tokens_measured"] = 1.0 if measured_any else 0.0
        rope = self.target.rope_scaling if self.target is not None else None
        if rope is not None:
            out["rope_scaling_factor"] = rope.factor
        return out

    def item_metrics(self, item: Item) -> dict[str, float]:
        if item.score is None:
            return {}
        label = item.category
        out = {
            f"{label}/accuracy": item.score,
            f"{label}/citation_consistency": 1.0 if item.extra.get("citation_consistent") else 0.0,
        }
        if item.latency_s is not None:
            out[f"{label}/latency_s"] = item.latency_s
        failures = item.extra.get("failures", ())
        for mode in FAILURE_MODES:
            out[f"{label}/{mode}"] = 1.0 if mode in failures else 0.0
        return out


def _ordered(labels: set[str]) -> list[str]:
    """Length labels shortest first (`8k` before `32k`)."""

    def tokens(label: str) -> int:
        if label.endswith("k") and label[:-1].isdigit():
            return int(label[:-1]) * 1024
        return int(label) if label.isdigit() else 0

    return sorted(labels, key=tokens)
