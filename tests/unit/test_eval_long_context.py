"""The long-context benchmark's pure parts: prompt sizing, citations, failure modes, percentiles and
the server's KV-cache gauge."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shinsa.api.eval_run import EvalTarget
from shinsa.api.model_deployment import RopeScaling
from shinsa.devcluster.openai_double import count_tokens
from shinsa.evaluation.benchmarks import known_benchmarks
from shinsa.evaluation.benchmarks.base import Benchmark, Messages
from shinsa.evaluation.benchmarks.long_context import (
    LENGTH_TOLERANCE,
    YARN_CAVEAT,
    LongContext,
    citation_consistent,
    cited_passages,
    corpus_language,
    failure_modes,
    found_code,
    plant,
    quantiles,
    repetition_loop,
    script_of,
    wrong_language,
)
from shinsa.evaluation.config import BenchmarkSpec, DatasetSource, Sampling
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.records import Generation, Item
from shinsa.evaluation.server_metrics import gauge_value, usage_summary

pytestmark = pytest.mark.unit

EN_CORPUS = "The river bends near the old mill. Farmers bring grain in autumn. " * 4
JA_CORPUS = "川は古い水車小屋の近くで曲がる。秋になると農家が穀物を運んでくる。" * 4


# -- failure modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The code is 1234567. The code is 1234567. The code is 1234567. The code is 1234567.",
        "1234567 [P3] " + "and and and and " * 4,
        "コードはコードはコードはコードはコードはコードはコードはコードはコードはコードは",
    ],
)
def test_a_span_recurring_back_to_back_is_a_repetition_loop(text: str) -> None:
    assert repetition_loop(text)
    assert "repetition" in failure_modes(text, "stop", "en")


@pytest.mark.parametrize(
    "text",
    [
        "1234567 [P3]",
        "haha haha",  # a short echo, under 30 characters
        "-" * 80,  # a rule: one character repeated
        "The code is 1234567; I found it in passage 3, which opens with the archive sentence. [P3]",
    ],
)
def test_ordinary_answers_are_not_loops(text: str) -> None:
    assert not repetition_loop(text)


def test_each_failure_mode_is_told_apart() -> None:
    assert failure_modes("", "stop", "en") == ["empty"]
    assert failure_modes("   \n", "stop", "en") == ["empty"]
    assert failure_modes("12345", "length", "en") == ["truncated"]
    assert failure_modes("アクセスコードは 1234567 です [P2]", "stop", "en") == ["wrong_language"]
    assert failure_modes("1234567 [P2]", "stop", "ja") == []


def test_the_language_of_an_answer_is_read_from_its_script() -> None:
    assert script_of("アクセスコードは 1234567 です。") == "ja"
    assert script_of("访问代码是一二三四五六七八") == "zh"  # Han without kana: drifted into Chinese
    assert script_of("The access code is 1234567.") == "en"
    assert script_of("1234567 [P12]") is None  # too few letters to tell
    assert wrong_language("The access code is 1234567.", "ja")
    assert wrong_language("访问代码是一二三四五六七八", "ja")
    assert not wrong_language("1234567 [P12]", "ja")
    assert corpus_language(JA_CORPUS) == "ja" and corpus_language(EN_CORPUS) == "en"


# -- citations ----------------------------------------------------------------------------------------


def test_citations_are_read_in_half_and_full_width_brackets() -> None:
    assert cited_passages("1234567 [P12]") == ["P12"]
    assert cited_passages("1234567 ［P3］ and 【P04】") == ["P3", "P4"]
    assert cited_passages("passage P12") == []


def test_a_citation_is_consistent_only_when_it_names_the_planted_passage_and_nothing_outside() -> None:
    assert citation_consistent("1234567 [P7]", "P7", passages=10)
    assert not citation_consistent("1234567", "P7", passages=10)  # no citation
    assert not citation_consistent("1234567 [P6]", "P7", passages=10)  # the wrong passage
    assert not citation_consistent("1234567 [P7] [P99]", "P7", passages=10)  # an id not in the text


def test_the_code_is_found_without_counting_the_citation_digits() -> None:
    assert found_code("1,234,567 [P3]", "1234567")
    assert not found_code("123456 [P7]", "1234567")


# -- prompts -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("corpus", "language"), [(EN_CORPUS, "en"), (JA_CORPUS, "ja")])
def test_the_needle_opens_the_passage_the_prompt_names_it_by(corpus: str, language: str) -> None:
    planted = plant(corpus, 12_000, 0.5, random.Random("q"), language)
    assert len(planted.prompt) <= 12_000
    labels = [line for line in planted.prompt.split("\n\n") if line.startswith("[P")]
    assert len(labels) == planted.passages
    needle_passage = next(p for p in labels if planted.code in p)
    assert needle_passage.startswith(f"[{planted.passage}] ")
    assert 0.35 < int(planted.passage[1:]) / planted.passages < 0.65
    assert planted.prompt.count(planted.code) == 1
    assert plant(corpus, 12_000, 0.5, random.Random("q"), language) == planted


class CountingContext:
    """Tokenizes with the test double's rule (4 characters a token), or not at all; answers with the
    planted code and passage."""

    def __init__(self, tokenize: bool = True) -> None:
        self.tokenize = tokenize
        self.prompts: list[str] = []

    @property
    def judges(self) -> Sequence[str]:
        return []

    async def count_tokens(self, messages: Messages) -> int | None:
        return count_tokens(list(messages)) if self.tokenize else None

    async def server_metrics(self) -> str | None:
        return None

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
        self.prompts.append(messages[-1]["content"])
        return Generation("no idea", "", {"prompt_tokens": count_tokens(list(messages))}, 0.1, 0.05, "stop")

    async def judge(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("long-context has no judge")


def long_context(tmp_path: Path, corpus: str, **fields: Any) -> LongContext:
    (tmp_path / "corpus.txt").write_text(corpus, encoding="utf-8")
    spec = BenchmarkSpec(name="long-context", dataset=DatasetSource(uri=str(tmp_path)), **fields)
    bench = known_benchmarks()["long-context"](spec, Sampling())
    assert isinstance(bench, LongContext)
    return bench


async def _run(bench: LongContext, ctx: CountingContext, repeats: int = 1) -> list[Item]:
    async with bench.session(ctx, repeats):  # type: ignore[arg-type]
        units = [bench.evaluate(q, r, ctx) for r in range(repeats) for q in bench.questions]  # type: ignore[arg-type]
        return [item for items in await asyncio.gather(*units) for item in items]


@pytest.mark.parametrize(("corpus", "chars_per_token"), [(EN_CORPUS, 1.5), (JA_CORPUS, 3.0)])
def test_prompts_are_sized_with_the_servers_token_counts_whatever_the_estimate(
    tmp_path: Path, corpus: str, chars_per_token: float
) -> None:
    # The estimate is far off the double's 4 characters a token either way; the measured counts fix it.
    bench = long_context(
        tmp_path, corpus, context_lengths=[1024, 8192], depths=[0.5], chars_per_token=chars_per_token
    )
    bench.load(tmp_path)
    ctx = CountingContext()
    items = asyncio.run(_run(bench, ctx))
    for item in items:
        target = int(item.question_id.split("-")[0][3:]) - 64  # the length less maxTokens (default 64)
        measured = item.extra["measured_tokens"]
        assert item.extra["target_tokens"] == target and item.extra["token_count"] == "server"
        assert target * (1 - LENGTH_TOLERANCE) - 16 <= measured <= target
        assert measured == item.prompt_tokens  # what was sent is what was measured
    assert bench.metrics(items)["prompt_tokens_measured"] == 1.0
    assert bench.warnings == ["no KV-cache usage: the server's /metrics did not answer"]


def test_without_a_tokenizer_lengths_are_estimated_and_the_run_says_so(tmp_path: Path) -> None:
    bench = long_context(tmp_path, EN_CORPUS, context_lengths=[2048], depths=[0.5], chars_per_token=4.0)
    bench.load(tmp_path)
    items = asyncio.run(_run(bench, CountingContext(tokenize=False)))
    assert [i.extra["token_count"] for i in items] == ["estimate"]
    assert items[0].extra["measured_tokens"] is None
    assert bench.metrics(items)["prompt_tokens_measured"] == 0.0
    assert any("no /tokenize" in w and "charsPerToken 4" in w for w in bench.warnings)


def test_a_yarn_deployment_carries_the_reports_caveat(tmp_path: Path) -> None:
    bench = long_context(tmp_path, EN_CORPUS, context_lengths=[1024])
    bench.target = EvalTarget(
        endpoint="http://m:8000/v1", served_name="m", rope_scaling=RopeScaling(type="yarn", factor=4)
    )
    bench.load(tmp_path)
    assert bench.warnings == [f"the model is served with YaRN (ropeScaling factor 4): {YARN_CAVEAT}"]
    plain = long_context(tmp_path, EN_CORPUS, context_lengths=[1024])
    plain.target = EvalTarget(endpoint="http://m:8000/v1", served_name="m")
    plain.load(tmp_path)
    assert plain.warnings == []


def item(label: str, score: float, failures: list[str], consistent: bool, latency: float) -> Item:
    return Item(
        "long-context",
        f"q-{label}-{latency}",
        label,
        1,
        0,
        "match",
        score=score,
        latency_s=latency,
        ttft_s=latency / 2,
        prompt_tokens=100,
        extra={"failures": failures, "citation_consistent": consistent, "measured_tokens": 100},
    )


def test_metrics_break_down_per_length_shortest_first(tmp_path: Path) -> None:
    bench = long_context(tmp_path, EN_CORPUS)
    items = [
        item("32k", 0.0, ["repetition", "truncated"], False, 4.0),
        item("8k", 1.0, [], True, 1.0),
        item("8k", 0.0, ["wrong_language"], False, 2.0),
        item("8k", 1.0, [], False, 3.0),
        Item("long-context", "failed", "8k", 1, 0, "match", error="generation failed"),
    ]
    metrics = bench.metrics(items)
    assert next(iter(metrics)).startswith("8k/")
    assert metrics["8k/items"] == 3 and metrics["8k/accuracy"] == pytest.approx(2 / 3)
    assert metrics["8k/citation_consistency"] == pytest.approx(1 / 3)
    assert metrics["8k/failures/wrong_language"] == 1 and metrics["8k/failures/repetition"] == 0
    assert metrics["32k/failures/repetition"] == 1 and metrics["32k/failures/truncated"] == 1
    assert metrics["8k/latency_s_p50"] == 2.0 and metrics["8k/latency_s_p95"] == pytest.approx(2.9)
    assert metrics["8k/ttft_s_p95"] == pytest.approx(1.45)
    per_item = bench.item_metrics(items[2])
    assert per_item["8k/wrong_language"] == 1.0 and per_item["8k/repetition"] == 0.0
    assert per_item["8k/citation_consistency"] == 0.0


def test_quantiles_interpolate_between_order_statistics() -> None:
    values = [float(v) for v in range(1, 21)]
    stats = quantiles(values)
    assert stats == {"mean": 10.5, "p50": 10.5, "p95": pytest.approx(19.05)}
    assert stats["p95"] == pytest.approx(float(np.percentile(values, 95)))
    assert quantiles([]) == {}


# -- the server's metrics -----------------------------------------------------------------------------

VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen3"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="qwen3"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="qwen3"} 0.625
vllm:kv_cache_usage_perc{engine="0",model_name="other"} 0.99
"""


def test_the_kv_gauge_is_the_fullest_engine_of_the_served_model() -> None:
    assert gauge_value(VLLM_METRICS, "vllm:kv_cache_usage_perc", "qwen3") == 0.625
    assert gauge_value(VLLM_METRICS, "vllm:kv_cache_usage_perc") == 0.99
    assert gauge_value(VLLM_METRICS, "vllm:kv_cache_usage_perc", "absent-model") is None
    assert gauge_value("# TYPE up gauge\nup 1\n", "vllm:kv_cache_usage_perc") is None
    assert gauge_value("<html>not metrics</html>", "vllm:kv_cache_usage_perc") is None
    assert gauge_value("vllm:kv_cache_usage_perc NaN\n", "vllm:kv_cache_usage_perc") is None


def test_usage_summary() -> None:
    assert usage_summary([0.25, 0.5, 0.75]) == {
        "kv_usage_max": 0.75,
        "kv_usage_mean": 0.5,
        "kv_usage_samples": 3.0,
    }
    assert usage_summary([]) == {}
