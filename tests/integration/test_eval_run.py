"""Full evaluation runs against a real OpenAI-compatible HTTP server (the test double)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from shinsa.commands.eval import run_command
from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import ExitCode, read_results
from shinsa.evaluation.runner import RunResult, run_evaluation
from support.openai_server import SECRET_REASONING, FakeOpenAI, judge_rating

pytestmark = pytest.mark.e2e


def run(spec: dict[str, Any], **options: Any) -> RunResult:
    return asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60), **options))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_benchmark_runs_end_to_end(make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path) -> None:
    spec = make_spec(
        benchmarks=["mt-bench", "mt-bench-ja", "llm-jp-instructions", "answer-carefully", "long-context"],
        judges=[
            {"name": "judge-a", "endpoint": openai_double.url, "model": "judge-a"},
            {"name": "judge-b", "endpoint": openai_double.url, "model": "judge-b"},
        ],
    )
    spec["benchmarks"][4].update(contextLengths=[1024, 2048], depths=[0.5])
    result = run(spec)
    assert result.exit_code == ExitCode.OK and result.status == "Succeeded"

    out = tmp_path / "results"
    scores = read_results(out)
    items = read_jsonl(out / "items.jsonl")
    # mt-bench 6x2 turns, ja 3x2, instructions 4, safety 4: 26 turns x 2 repeats x 2 judges; needles 2 x 2.
    assert len(items) == 26 * 2 * 2 + 2 * 2
    assert scores.errors == 0 and all(i["error"] is None for i in items)
    assert {"judgments.jsonl", "generations.jsonl", "config.json"} <= {p.name for p in out.iterdir()}
    assert (out / "plots" / "mt-bench-categories.png").stat().st_size > 1000

    mt = scores.benchmarks["mt-bench"]
    primary = [i["score"] for i in items if i["benchmark"] == "mt-bench" and i["judge"] == "judge-a"]
    assert mt.mean == pytest.approx(sum(primary) / len(primary))
    assert mt.ci_low <= mt.mean <= mt.ci_high
    assert set(mt.categories) == {"writing", "roleplay", "math", "reasoning", "coding", "humanities"}
    assert set(mt.turns) == {"1", "2"}
    assert set(mt.judges) == {"judge-a", "judge-b"}
    assert mt.judge_agreement[0].n_questions == 6
    score_table = mt.table("score") or {}
    assert set(score_table["m1"]) == {"1", "2"} and len(score_table["m1"]["1"]) == 2
    assert set(scores.benchmarks["answer-carefully"].metrics) == {"violation_rate", "acceptable_rate"}
    safety_questions = {i["question_id"] for i in items if i["benchmark"] == "answer-carefully"}
    assert set(scores.benchmarks["answer-carefully"].table("violation_rate") or {}) == safety_questions
    assert "criterion/fluency" in scores.benchmarks["llm-jp-instructions"].metrics
    long_context = scores.benchmarks["long-context"]
    assert long_context.mean == 1.0
    assert long_context.metrics["2k/accuracy"] == 1.0
    assert long_context.metrics["1k/ttft_s_mean"] > 0


def test_judge_ratings_come_through_unchanged(
    make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    run(make_spec(repeats=1))
    judgments = read_jsonl(tmp_path / "results" / "judgments.jsonl")
    prompts = {
        (r.item or "").split("/")[1] + "/" + (r.item or "").split("/")[2]: r.messages[-1]["content"]
        for r in openai_double.log
        if r.target == "judge"
    }
    for judgment in judgments:
        prompt = prompts[f"{judgment['question_id']}/{judgment['turn']}"]
        assert judgment["score"] == judge_rating(prompt, 10, "judge-a")


def test_reasoning_never_reaches_the_judge(make_spec: Any, tmp_path: Path, datasets: dict[str, Path]) -> None:
    for style in ("field", "think", "harmony"):
        with FakeOpenAI(reasoning=style) as server:
            spec = make_spec(repeats=1, engine={"outputDir": str(tmp_path / style)})
            spec["model"]["endpoint"] = server.url
            spec["judges"][0]["endpoint"] = server.url
            assert run(spec).exit_code == ExitCode.OK
            judge_text = json.dumps([r.messages for r in server.log if r.target == "judge"])
            assert SECRET_REASONING not in judge_text, style
            generations = read_jsonl(tmp_path / style / "generations.jsonl")
            assert all(g["reasoning"] == SECRET_REASONING for g in generations), style
            assert all(SECRET_REASONING not in g["answer"] for g in generations), style


def test_repeats_are_independent_draws_when_seeded(make_spec: Any) -> None:
    spec = make_spec(repeats=3, sampling={"seed": 100, "temperature": 0.8})
    result = run(spec)
    seeds = {g["repeat"]: g["sampling"]["seed"] for g in result.generations}
    assert seeds == {0: 100, 1: 101, 2: 102}
    mt = result.results.benchmarks["mt-bench"]
    assert len(mt.per_repeat) == 3 and mt.std > 0


def test_injected_faults_are_recovered_with_the_same_scores(
    make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    clean = run(make_spec(engine={"outputDir": str(tmp_path / "clean")}))
    openai_double.reset()
    openai_double.add_fault("status", status=429, retry_after="0.2", count=3, target="model")
    openai_double.add_fault("status", status=500, count=2, target="judge")
    openai_double.add_fault("status", status=503, count=1, target="judge", retry_after="0")
    openai_double.add_fault("delay", delay_s=3.0, count=2, target="model")
    openai_double.add_fault("malformed", count=2, target="judge")
    openai_double.add_fault("drop", count=1, target="judge")
    faulty = run(make_spec(timeoutSeconds=1, engine={"outputDir": str(tmp_path / "faulty")}))

    assert faulty.exit_code == ExitCode.OK
    assert faulty.results.errors == 0
    assert faulty.results.benchmarks["mt-bench"].mean == clean.results.benchmarks["mt-bench"].mean
    assert openai_double.count(outcome="429") == 3
    assert openai_double.count(outcome="malformed") == 2
    # Each malformed rating was asked again once; both may fall on the same judgment (which then
    # took 3 attempts, within parseRetries: 2), depending on which requests arrive first.
    assert sum(j["attempts"] - 1 for j in faulty.judgments) == 2


def test_persistent_failures_are_recorded_and_make_the_run_incomplete(
    make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    # Question m1's judgments fail for good: 4 of 24 items (17%) is above the 5% limit.
    openai_double.add_fault("status", status=500, count=1000, target="judge", item="/m1/")
    openai_double.add_fault("malformed", count=1000, target="judge", item="/w1/1/0/")
    result = run(make_spec(retries=1))
    assert result.exit_code == ExitCode.INCOMPLETE and result.status == "Incomplete"
    items = read_jsonl(tmp_path / "results" / "items.jsonl")
    failed = [i for i in items if i["error"]]
    assert len(failed) == 5
    assert all(i["score"] is None for i in failed)
    assert {i["question_id"] for i in failed} == {"m1", "w1"}
    assert any("HTTP 500" in i["error"] for i in failed)
    assert any("unparsable judgment after 3 attempts" in i["error"] for i in failed)
    scores = read_results(tmp_path / "results")
    assert scores.status == "Incomplete" and scores.errors == 5
    # The mean is over what was judged; nothing was filled in with a default.
    judged = [i["score"] for i in items if i["score"] is not None]
    assert scores.benchmarks["mt-bench"].mean == pytest.approx(sum(judged) / len(judged))


def test_failed_items_are_retried_on_resume(make_spec: Any, openai_double: FakeOpenAI) -> None:
    openai_double.add_fault("status", status=400, count=2, target="model", item="/c1/1/")
    first = run(make_spec())
    assert first.results.errors > 0
    openai_double.reset()
    second = run(make_spec())
    assert second.results.errors == 0
    # Only the failed question (both turns, both repeats' worth of what failed) is asked again.
    assert {item.split("/")[1] for item in openai_double.items_requested()} == {"c1"}


def test_cli_exit_codes(
    make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    assert run_command(manifest_file(make_spec(repeats=1)), None, True, True) == ExitCode.OK

    openai_double.reset()
    bad = make_spec()
    bad["benchmarks"][0]["name"] = "no-such-benchmark"
    assert run_command(manifest_file(bad), None, True, True) == ExitCode.CONFIG
    not_served = make_spec()
    not_served["model"]["servedName"] = "some-other-model"
    assert run_command(manifest_file(not_served), None, True, True) == ExitCode.CONFIG
    assert openai_double.requests == 0  # config errors stop before any chat request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    down = make_spec()
    down["model"]["endpoint"] = f"http://127.0.0.1:{closed_port}/v1"
    started = time.monotonic()
    assert run_command(manifest_file(down), None, True, True) == ExitCode.CRASH
    assert time.monotonic() - started < 10


def test_cli_exits_3_when_the_error_rate_is_above_the_limit(
    make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    # Question m1's judgments fail for good: 2 of 12 items (17%) against a 10% limit.
    openai_double.add_fault("status", status=500, count=1000, target="judge", item="/m1/")
    config = manifest_file(make_spec(repeats=1, retries=0, maxErrorRate=0.1))
    last_words = tmp_path / "termination-log"
    assert run_command(config, None, True, True, termination_log=last_words) == ExitCode.INCOMPLETE
    scores = read_results(tmp_path / "results")
    assert scores.status == "Incomplete" and scores.errors == 2
    # What the pod's status carries: one line saying why, for kubectl describe and the EvalRun.
    assert last_words.read_text() == (
        "Incomplete: 12 items, 2 errors; error rate 16.7% above maxErrorRate 10.0%, "
        "too many failed requests for the scores to be trusted"
    )
    # Within the limit it is a success: 2 of 12 against 20%.
    openai_double.reset()
    openai_double.add_fault("status", status=500, count=1000, target="judge", item="/m1/")
    lenient = manifest_file(make_spec(repeats=1, retries=0, maxErrorRate=0.2), "lenient.yaml")
    assert run_command(lenient, None, True, True) == ExitCode.OK


def test_unreachable_endpoint_message_names_the_url(
    make_spec: Any, manifest_file: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    spec = make_spec()
    spec["judges"][0]["endpoint"] = f"http://127.0.0.1:{closed_port}/v1"
    assert run_command(manifest_file(spec), None, True, True) == ExitCode.CRASH
    assert f"http://127.0.0.1:{closed_port}/v1/models" in capsys.readouterr().err.replace("\n", "")


def test_long_context_accuracy_falls_where_the_model_loses_the_needle(
    make_spec: Any, openai_double: FakeOpenAI
) -> None:
    openai_double.context_limit_chars = 5000
    openai_double.ttft_s = 0.05
    spec = make_spec(benchmarks=["long-context"], judges=[], repeats=1)
    spec["benchmarks"][0].update(contextLengths=[1024, 4096], depths=[0.25, 0.75], charsPerToken=3.0)
    result = run(spec)
    metrics = result.results.benchmarks["long-context"].metrics
    assert metrics["1k/accuracy"] == 1.0 and metrics["4k/accuracy"] == 0.0
    assert metrics["1k/ttft_s_mean"] >= 0.05
    assert metrics["4k/prompt_tokens_mean"] > metrics["1k/prompt_tokens_mean"]
    assert all(r.stream for r in openai_double.log)
    assert math.isclose(result.results.benchmarks["long-context"].mean, 0.5)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_answer_carefully_runs_from_an_llm_jp_judge_json_file(
    make_spec: Any, openai_double: FakeOpenAI, datasets: dict[str, Path], tmp_path: Path
) -> None:
    # The same questions as the FastChat-layout fixture, as llm-jp-judge's test.json has them.
    source = datasets["answer-carefully"]
    references = {
        r["question_id"]: r["choices"][0]["turns"][0]
        for r in read_jsonl(source / "reference_answer" / "reference.jsonl")
    }
    rows = [
        {"ID": q["question_id"], "text": q["turns"][0], "output": references[q["question_id"]]}
        for q in read_jsonl(source / "question.jsonl")
    ]
    test_json = tmp_path / "AnswerCarefully" / "test.json"
    test_json.parent.mkdir()
    test_json.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    spec = make_spec(benchmarks=["answer-carefully"], repeats=1)
    spec["benchmarks"][0]["dataset"]["uri"] = str(test_json)

    result = run(spec)
    assert result.exit_code == ExitCode.OK and result.results.errors == 0
    assert result.results.items == len(rows)
    judge_prompts = [r.messages[-1]["content"] for r in openai_double.log if r.target == "judge"]
    # Each question's "output" reached the judge as the reference answer.
    for reference in references.values():
        assert sum(reference in prompt for prompt in judge_prompts) == 1


def test_json_logs_keep_every_output_line_a_json_object(
    make_spec: Any, manifest_file: Any, tmp_path: Path
) -> None:
    config = manifest_file(make_spec(repeats=1))
    done = subprocess.run(
        [sys.executable, "-m", "shinsa.commands.eval", "run", "--config", str(config), "--json-logs"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]
    assert all(isinstance(event, dict) for event in events)
    summary = next(e for e in events if e["event"] == "summary")
    assert summary["status"] == "Succeeded"
    scores = read_results(tmp_path / "results")
    figures = summary["benchmarks"]["mt-bench"]["judges"]["judge-a"]
    assert figures["mean"] == pytest.approx(scores.benchmarks["mt-bench"].mean)
    assert figures["n_items"] == 12 and figures["n_errors"] == 0


def test_an_unreachable_mlflow_server_fails_before_any_request(
    make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    tracking_uri = f"http://127.0.0.1:{closed_port()}"
    spec = make_spec(mlflow={"trackingUri": tracking_uri})
    started = time.monotonic()
    assert run_command(manifest_file(spec), None, True, True) == ExitCode.CRASH
    assert time.monotonic() - started < 10
    assert openai_double.requests == 0
    err = capsys.readouterr().err.replace("\n", "")
    assert f"mlflow.trackingUri: {tracking_uri}/health" in err
