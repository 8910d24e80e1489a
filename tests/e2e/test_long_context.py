"""The long-context benchmark end to end against the OpenAI-compatible test double: prompts sized
with the server's /tokenize, KV-cache usage scraped from its /metrics, failure modes counted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from shinsa.evaluation.benchmarks.long_context import LENGTH_TOLERANCE, YARN_CAVEAT
from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import read_results
from shinsa.evaluation.runner import RunResult, run_evaluation
from tests.support.openai_server import FakeOpenAI, count_tokens

pytestmark = pytest.mark.e2e

CORPUS = (
    "The harbour town woke slowly. Fishing boats returned before noon, and the market filled with "
    "voices. Children ran between the stalls while the baker counted loaves.\n"
)


def run_long_context(server: FakeOpenAI, tmp_path: Path, **model: Any) -> RunResult:
    (tmp_path / "corpus").mkdir(exist_ok=True)
    (tmp_path / "corpus" / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    spec = {
        "model": {"endpoint": server.url, "servedName": server.model, **model},
        "repeats": 1,
        "retries": 0,
        "benchmarks": [
            {
                "name": "long-context",
                "dataset": {"uri": str(tmp_path / "corpus")},
                "contextLengths": [1024, 4096],
                "depths": [0.5],
                "samplesPerLength": 3,
                # Far from the double's 4 characters a token: the measured counts must correct it.
                "charsPerToken": 2.0,
            }
        ],
        "engine": {"outputDir": str(tmp_path / "results")},
    }
    return asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))


def items_of(result: RunResult) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (result.output_dir / "items.jsonl").read_text().splitlines()]
    return {row["question_id"]: row for row in rows}


def test_lengths_are_the_servers_tokens_with_kv_usage_and_failure_modes(tmp_path: Path) -> None:
    # Requests take 2 s, so the 1 s scrape of /metrics sees each length's requests in flight.
    with FakeOpenAI(latency_s=2.0) as server:
        fault = {"target": "model", "kind": "malformed"}
        server.add_fault(item="len1024-depth0.5-s0/", text="アクセスコードは分かりません。", **fault)
        server.add_fault(item="len1024-depth0.5-s1/", text="", **fault)
        server.add_fault(item="len4096-depth0.5-s0/", text="the archive, " * 8, **fault)
        server.add_fault("length", target="model", item="len4096-depth0.5-s1/")
        result = run_long_context(server, tmp_path, ropeScaling={"type": "yarn", "factor": 4})
        sent = {r.item.split("/")[1]: count_tokens(r.messages) for r in server.log if r.target == "model"}
        assert server.tokenize_requests >= 6

    items = items_of(result)
    for qid, row in items.items():
        target = int(qid.split("-")[0][3:]) - 64  # the length less maxTokens (default 64)
        assert row["extra"]["token_count"] == "server"
        assert row["extra"]["target_tokens"] == target
        assert target * (1 - LENGTH_TOLERANCE) - 16 <= row["extra"]["measured_tokens"] <= target
        # The prompt the model got is the one measured, as the server counts it.
        assert sent[qid] == row["extra"]["measured_tokens"] == row["prompt_tokens"]

    metrics = read_results(result.output_dir).benchmarks["long-context"].metrics
    assert metrics["prompt_tokens_measured"] == 1.0
    assert 4096 - 64 - 0.03 * 4096 <= metrics["4k/prompt_tokens_measured_mean"] <= 4096 - 64
    # One answer in each length is right and cites the planted passage.
    assert metrics["1k/accuracy"] == pytest.approx(1 / 3) and metrics["4k/accuracy"] == pytest.approx(1 / 3)
    assert metrics["1k/citation_consistency"] == pytest.approx(1 / 3)
    counts = {k: v for k, v in metrics.items() if "/failures/" in k}
    assert counts == {
        "1k/failures/repetition": 0,
        "1k/failures/empty": 1,
        "1k/failures/wrong_language": 1,
        "1k/failures/truncated": 0,
        "4k/failures/repetition": 1,
        "4k/failures/empty": 0,
        "4k/failures/wrong_language": 0,
        "4k/failures/truncated": 1,
    }
    assert items["len4096-depth0.5-s1"]["extra"]["finish_reason"] == "length"
    # Lengths ran one after another: each one's KV usage is its own three prompts'.
    assert metrics["1k/kv_usage_samples"] >= 1 and metrics["4k/kv_usage_samples"] >= 1
    assert 0 < metrics["1k/kv_usage_max"] <= 3 * 1024 / server.kv_capacity_tokens
    assert metrics["4k/kv_usage_max"] > metrics["1k/kv_usage_max"]
    for label in ("1k", "4k"):
        assert metrics[f"{label}/latency_s_p50"] >= 2.0
        assert metrics[f"{label}/ttft_s_p95"] >= metrics[f"{label}/ttft_s_p50"] > 0
    assert metrics["rope_scaling_factor"] == 4.0
    assert result.results.model.rope_scaling == "yarn x4"
    assert any(YARN_CAVEAT in w for w in result.results.warnings)


def test_a_server_without_tokenize_or_metrics_gets_estimates_and_says_so(tmp_path: Path) -> None:
    with FakeOpenAI(serve_tokenize=False, serve_metrics=False) as server:
        result = run_long_context(server, tmp_path)
    items = items_of(result)
    assert {row["extra"]["token_count"] for row in items.values()} == {"estimate"}
    metrics = result.results.benchmarks["long-context"].metrics
    assert metrics["prompt_tokens_measured"] == 0.0
    assert not any("kv_usage" in key for key in metrics)
    assert metrics["1k/accuracy"] == 1.0 and metrics["1k/citation_consistency"] == 1.0
    warnings = "\n".join(result.results.warnings)
    assert "no /tokenize" in warnings and "no KV-cache usage" in warnings
    assert YARN_CAVEAT not in warnings
