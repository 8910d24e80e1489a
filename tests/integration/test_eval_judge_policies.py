"""Judging policies through the engine, against the OpenAI-compatible test double: attempts that
count unreadable and refused replies, a judge's refusal (HTTP 400, as a content filter answers)
scored `apiErrorScore`, the request sampling per benchmark, and what judgments.jsonl records."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import RunStatus
from shinsa.evaluation.runner import RunResult, run_evaluation
from support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e


def run(spec: dict[str, Any]) -> RunResult:
    return asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))


def judgments(result: RunResult) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (result.output_dir / "judgments.jsonl").read_text().splitlines()]
    return {r["question_id"]: r for r in rows}


def safety_spec(make_spec: Any, judging: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    spec = make_spec(benchmarks=["answer-carefully"], repeats=1, **overrides)
    spec["benchmarks"][0]["judging"] = judging
    return spec


def test_a_refused_judgment_is_scored_api_error_score_and_refusals_count_as_attempts(
    make_spec: Any, openai_double: FakeOpenAI
) -> None:
    judge = {"target": "judge"}
    # s1: refused at every attempt; s2: one unreadable reply, then a rating; s3: refused once, then rated.
    openai_double.add_fault("status", status=400, count=10, item="answer-carefully/s1/", **judge)
    openai_double.add_fault("malformed", count=1, item="answer-carefully/s2/", **judge)
    openai_double.add_fault("status", status=400, count=1, item="answer-carefully/s3/", **judge)
    result = run(safety_spec(make_spec, {"attempts": 3, "retryRefused": True, "apiErrorScore": 1}))

    assert result.status is RunStatus.SUCCEEDED
    assert result.results.errors == 0
    by_question = judgments(result)
    assert {q: r["attempts"] for q, r in by_question.items()} == {"s1": 3, "s2": 2, "s3": 2, "s4": 1}
    assert by_question["s1"]["score"] == 1
    # The others were rated by the judge, on its 1-5 scale.
    assert all(1 <= by_question[q]["score"] <= 5 and "api_error" not in by_question[q] for q in ("s2", "s3"))
    assert "HTTP 400" in by_question["s1"]["api_error"]
    assert openai_double.count(target="judge") == 3 + 2 + 2 + 1
    # The refused answer's score counts in the mean and the violation rate, as llm-jp-judge counts it.
    scores = [r["score"] for r in by_question.values()]
    bench = result.results.benchmarks["answer-carefully"]
    assert bench.mean == pytest.approx(sum(scores) / 4)
    assert bench.metrics["violation_rate"] == pytest.approx(sum(s < 3 for s in scores) / 4)


def test_without_api_error_score_a_refusal_is_an_item_error_at_once(
    make_spec: Any, openai_double: FakeOpenAI
) -> None:
    openai_double.add_fault("status", status=400, count=10, item="answer-carefully/s1/", target="judge")
    result = run(safety_spec(make_spec, {"attempts": 3}, maxErrorRate=0.5))
    [failed] = [i for i in result.items if i.error]
    assert (failed.question_id, failed.error.startswith("judge failed: ")) == ("s1", True)
    assert "HTTP 400" in failed.error
    assert openai_double.count(target="judge") == 1 + 3


def test_attempts_bound_the_requests_for_an_unreadable_judgment(
    make_spec: Any, openai_double: FakeOpenAI
) -> None:
    openai_double.add_fault("malformed", count=10, item="answer-carefully/s4/", target="judge")
    result = run(safety_spec(make_spec, {"attempts": 2}, maxErrorRate=0.5))
    [failed] = [i for i in result.items if i.error]
    assert failed.question_id == "s4"
    assert "unparsable judgment after 2 attempts" in failed.error
    assert openai_double.count(target="judge") == 3 + 2


def test_judgments_record_the_template_the_reference_and_the_full_prompt_with_the_sampling_sent(
    make_spec: Any, openai_double: FakeOpenAI
) -> None:
    spec = make_spec(benchmarks=["mt-bench"], repeats=1, profile="llm-jp-judge")
    spec["judges"][0] |= {"topP": 0.9, "seed": 5}
    result = run(spec)
    rows = [json.loads(line) for line in (result.output_dir / "judgments.jsonl").read_text().splitlines()]
    math_turn_2 = next(r for r in rows if r["question_id"] == "m1" and r["turn"] == 2)
    writing_turn_1 = next(r for r in rows if r["question_id"] == "w1" and r["turn"] == 1)
    assert (math_turn_2["template"], math_turn_2["reference"]) == ("multiReference", True)
    assert (writing_turn_1["template"], writing_turn_1["reference"]) == ("single", False)
    sent = next(
        r for r in openai_double.log if r.target == "judge" and r.item and r.item.startswith("mt-bench/m1/2/")
    )
    assert math_turn_2["prompt"] == sent.messages
    assert [m["role"] for m in math_turn_2["prompt"]] == ["system", "user"]


def test_a_refusal_after_an_unreadable_reply_is_not_an_api_error(
    make_spec: Any, openai_double: FakeOpenAI
) -> None:
    """As llm-jp-judge: a judgment that got a reply, even an unreadable one, is a rating failure,
    never scored `apiErrorScore`; one refused at every attempt is."""
    judge = {"target": "judge"}
    openai_double.add_fault("status", status=400, count=10, item="answer-carefully/s1/", **judge)
    openai_double.add_fault("malformed", count=1, item="answer-carefully/s2/", **judge)
    openai_double.add_fault("status", status=400, count=10, item="answer-carefully/s2/", **judge)
    result = run(safety_spec(make_spec, {"attempts": 3, "retryRefused": True}, maxErrorRate=0.5))
    errors = {i.question_id: i.error for i in result.items if i.error}
    assert errors.keys() == {"s1", "s2"}
    assert "refused at all 3 attempts: " in errors["s1"]
    assert "no readable rating in 3 attempts, the last refused: " in errors["s2"]

    openai_double.reset()
    openai_double.add_fault("malformed", count=1, item="answer-carefully/s2/", **judge)
    openai_double.add_fault("status", status=400, count=10, item="answer-carefully/s2/", **judge)
    scored = run(
        safety_spec(make_spec, {"attempts": 3, "retryRefused": True, "apiErrorScore": 1}, maxErrorRate=0.5)
    )
    assert [i.question_id for i in scored.items if i.error] == ["s2"]
