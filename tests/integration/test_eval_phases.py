"""Generation and judging as separate phases, and judging pre-generated answers, against the
OpenAI-compatible test double."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from shinsa.commands.eval import run_command
from shinsa.evaluation.config import ConfigError, Phase, parse_config
from shinsa.evaluation.datasets import DatasetError
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import ExitCode, RunStatus, read_results
from shinsa.evaluation.runner import RunResult, run_evaluation
from support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e


def run(
    spec: dict[str, Any], phase: Phase = Phase.ALL, answers: str | None = None, **options: Any
) -> RunResult:
    config = parse_config(spec, phase=phase, answers=answers)
    return asyncio.run(run_evaluation(config, phase=phase, reporter=JsonLinesReporter(every_s=60), **options))


def headline(result: RunResult) -> dict[str, tuple[float | None, list[float | None]]]:
    return {name: (bench.mean, bench.per_repeat) for name, bench in sorted(result.results.benchmarks.items())}


def test_generate_then_judge_scores_as_one_run_and_the_judge_phase_never_calls_the_model(
    make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    benchmarks = ["mt-bench", "llm-jp-instructions"]
    whole = run(make_spec(benchmarks=benchmarks, engine={"outputDir": str(tmp_path / "all")}))
    assert whole.status is RunStatus.SUCCEEDED

    openai_double.reset()
    generated = run(
        make_spec(benchmarks=benchmarks, engine={"outputDir": str(tmp_path / "gen")}), Phase.GENERATE
    )
    assert generated.exit_code == ExitCode.OK
    assert openai_double.count(target="judge") == 0
    scores = read_results(tmp_path / "gen")
    assert scores.status is RunStatus.GENERATED
    # mt-bench 6 questions x 2 turns, instructions 4 x 1: 16 turns x 2 repeats.
    assert (scores.items, scores.errors, scores.benchmarks, scores.judges) == (32, 0, {}, [])
    assert len((tmp_path / "gen" / "generations.jsonl").read_text().splitlines()) == 32

    openai_double.reset()
    judged = run(
        make_spec(benchmarks=benchmarks, engine={"outputDir": str(tmp_path / "judge")}),
        Phase.JUDGE,
        answers=str(tmp_path / "gen"),
    )
    assert judged.status is RunStatus.SUCCEEDED
    assert openai_double.count(target="model") == 0
    assert judged.results.requests["model"] == 0
    assert openai_double.count(target="judge") == 32
    assert headline(judged) == headline(whole)
    assert judged.results.model.answers == str(tmp_path / "gen")
    assert judged.results.model.endpoint is None


def test_the_cli_runs_the_phases_and_refuses_a_judge_phase_without_answers(
    make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    manifest = manifest_file(make_spec(engine={"outputDir": str(tmp_path / "gen")}))
    assert run_command(manifest, None, True, True, phase=Phase.GENERATE) == ExitCode.OK
    assert run_command(manifest, tmp_path / "x", True, True, phase=Phase.JUDGE) == ExitCode.CONFIG

    openai_double.reset()
    code = run_command(
        manifest, tmp_path / "judged", True, True, phase=Phase.JUDGE, answers=str(tmp_path / "gen")
    )
    assert code == ExitCode.OK
    assert openai_double.count(target="model") == 0
    assert read_results(tmp_path / "judged").benchmarks["mt-bench"].n_scored == 24


def test_a_failed_generation_stays_failed_when_its_answers_are_judged(
    make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    openai_double.add_fault("status", status=400, target="model", item="mt-bench/m1/1/0/")
    spec = make_spec(repeats=1, maxErrorRate=0.5, engine={"outputDir": str(tmp_path / "gen")})
    generated = run(spec, Phase.GENERATE)
    # m1's turn 1 failed: turn 2 was never asked.
    assert (generated.results.items, generated.results.errors) == (12, 2)
    failed = [g for g in generated.generations if g.get("error")]
    assert [(g["question_id"], g["turn"]) for g in failed] == [("m1", 1)]

    judged = run(make_spec(repeats=1, maxErrorRate=0.5), Phase.JUDGE, answers=str(tmp_path / "gen"))
    errors = {(i.question_id, i.turn): i.error for i in judged.items if i.error}
    assert set(errors) == {("m1", 1), ("m1", 2)}
    assert "400" in (errors[("m1", 1)] or "")


def questions(dataset: Path) -> list[tuple[str, str, list[str]]]:
    rows = [
        json.loads(line) for line in (dataset / "question.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return [(r["question_id"], r["category"], r["turns"]) for r in rows]


def llm_jp_judge_output(directory: Path, rows: list[dict[str, Any]], model: str = "org/some-model") -> Path:
    """A directory in llm-jp-judge v2.0.0's generation-output layout (generate.py)."""
    directory.mkdir(parents=True)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (directory / "mt_bench_ja.jsonl").write_text(lines, encoding="utf-8")
    (directory / "metadata.json").write_text(json.dumps({"model_name": model}), encoding="utf-8")
    return directory


def test_llm_jp_judge_answers_are_judged_and_name_their_model(
    make_spec: Any, openai_double: FakeOpenAI, datasets: dict[str, Path], tmp_path: Path
) -> None:
    rows = [
        {
            "ID": qid,
            "category": category,
            "prompt": turns,
            "response": [f"answer {qid} {n}" for n in range(len(turns))],
            "error_messages": [[] for _ in turns],
            "pattern": [None for _ in turns],
        }
        for qid, category, turns in questions(datasets["mt-bench-ja"])
    ]
    rows[0]["response"][1] = None
    rows[0]["error_messages"][1] = ["content filter triggered"]
    answers = llm_jp_judge_output(tmp_path / "ljj", rows)
    result = run(make_spec(benchmarks=["mt-bench-ja"], repeats=1), Phase.JUDGE, answers=str(answers))
    assert openai_double.count(target="model") == 0
    assert result.results.model.answers_model == "org/some-model"
    errors = {(i.question_id, i.turn): i.error for i in result.items if i.error}
    assert list(errors) == [("j1", 2)]
    assert "content filter triggered" in (errors[("j1", 2)] or "")
    judged = [m for r in openai_double.log if r.target == "judge" for m in r.messages]
    assert any("answer j2 1" in str(m.get("content")) for m in judged)


def test_answers_that_do_not_cover_the_run_are_refused_before_any_request(
    make_spec: Any, openai_double: FakeOpenAI, datasets: dict[str, Path], tmp_path: Path
) -> None:
    rows = [
        {"ID": qid, "prompt": turns, "response": ["a"] * len(turns)}
        for qid, _, turns in questions(datasets["mt-bench-ja"])[1:]
    ]
    answers = llm_jp_judge_output(tmp_path / "ljj", rows)
    with pytest.raises(DatasetError, match=r"no answer for 2 of the 6 turns of mt-bench-ja .*j1 turn 1"):
        run(make_spec(benchmarks=["mt-bench-ja"], repeats=1), Phase.JUDGE, answers=str(answers))
    with pytest.raises(DatasetError, match=r"spec.repeats: 2, but .*mt_bench_ja.jsonl holds 1"):
        run(make_spec(benchmarks=["mt-bench-ja"], repeats=2), Phase.JUDGE, answers=str(answers))
    with pytest.raises(DatasetError, match=r"holds no answers for mt-bench .*mt_bench_en.jsonl"):
        run(make_spec(benchmarks=["mt-bench"], repeats=1), Phase.JUDGE, answers=str(answers))
    with pytest.raises(ConfigError, match="--phase generate: answers are given"):
        run(make_spec(), Phase.GENERATE, answers=str(answers))
    assert openai_double.requests == 0


def test_answers_in_s3_are_judged_and_named_by_their_uri(
    s3_server: str, make_spec: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    run(make_spec(repeats=1, engine={"outputDir": str(tmp_path / "gen")}), Phase.GENERATE)
    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="eval-answers")
    s3.upload_file(str(tmp_path / "gen" / "generations.jsonl"), "eval-answers", "run-1/generations.jsonl")

    openai_double.reset()
    judged = run(make_spec(repeats=1), Phase.JUDGE, answers="s3://eval-answers/run-1")
    assert openai_double.count(target="model") == 0
    assert judged.results.benchmarks["mt-bench"].n_scored == 12
    assert {g["answers"] for g in judged.generations} == {"s3://eval-answers/run-1/generations.jsonl"}
