"""Pre-generated answers: llm-jp-judge's generation output and Shinsa's generations.jsonl are read,
matched to a benchmark's questions, and refused with a message naming the file and the ids when they
cannot stand for the model's answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shinsa.evaluation.answers import (
    LLM_JP_JUDGE,
    SHINSA,
    AnswersError,
    BenchmarkAnswers,
    check_answers,
    cli_uri,
    load_answers,
    parse_llm_jp_judge_rows,
    parse_shinsa_generations,
)
from shinsa.evaluation.config import ConfigError, Phase, parse_config
from shinsa.evaluation.datasets import Question

pytestmark = pytest.mark.unit

QUESTIONS = [
    Question("1", "writing", ("Write a haiku.", "Now a limerick.")),
    Question("2", "math", ("What is 7 times 6?", "And halved?")),
]


def ljj_row(qid: Any, responses: list[str | None], errors: list[list[str]] | None = None) -> dict[str, Any]:
    # The fields llm-jp-judge v2.0.0's MTBenchDatasetItem dumps (dataset/__init__.py, mt_bench.py).
    turns = next(q.turns for q in QUESTIONS if q.question_id == str(qid))
    return {
        "ID": qid,
        "category": "writing",
        "prompt": list(turns[: len(responses)]),
        "response": responses,
        "error_messages": errors or [[] for _ in responses],
        "pattern": [None for _ in responses],
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def generation(
    benchmark: str, qid: str, turn: int, repeat: int, answer: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "generation",
        "benchmark": benchmark,
        "question_id": qid,
        "turn": turn,
        "repeat": repeat,
        "answer": answer,
        **extra,
    }


def test_llm_jp_judge_rows_give_one_answer_per_turn_and_a_failed_turn_its_last_error() -> None:
    rows = [
        (1, ljj_row(1, ["haiku", None], [[], ["rate limited", "content filter"]])),
        (2, ljj_row(2, ["42", "21"])),
    ]
    answers = parse_llm_jp_judge_rows(rows, "mt_bench_ja.jsonl")
    assert answers[("1", 1, 0)].answer == "haiku"
    failed = answers[("1", 2, 0)]
    assert failed.answer is None and failed.error == "llm-jp-judge: content filter"
    assert answers[("2", 2, 0)].prompt == "And halved?"
    assert {repeat for _, _, repeat in answers} == {0}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": ["x"], "response": ["y"]}, r"f.jsonl:3: no ID"),
        ({"ID": 1, "prompt": ["x"], "response": "y"}, r"f.jsonl:3: ID 1: response must be a non-empty list"),
        ({"ID": 1, "prompt": ["x"], "response": [7]}, r"f.jsonl:3: ID 1: response\[0\] is not a string"),
    ],
)
def test_a_malformed_llm_jp_judge_row_is_named_by_file_and_line(row: dict[str, Any], message: str) -> None:
    with pytest.raises(AnswersError, match=message):
        parse_llm_jp_judge_rows([(3, row)], "f.jsonl")


def test_a_duplicate_llm_jp_judge_id_is_an_error() -> None:
    with pytest.raises(AnswersError, match=r"f.jsonl:2: duplicate ID 1"):
        parse_llm_jp_judge_rows([(1, ljj_row(1, ["a"])), (2, ljj_row(1, ["b"]))], "f.jsonl")


def test_shinsa_generations_are_read_by_benchmark_and_a_recorded_error_is_a_failed_answer() -> None:
    rows = [
        generation("mt-bench", "1", 1, 0, "haiku", reasoning="thought", usage={"completion_tokens": 3}),
        generation("mt-bench", "1", 1, 1, None, error="HTTP 400: too long"),
        {"kind": "judgment", "benchmark": "mt-bench", "question_id": "1", "turn": 1, "repeat": 0},
        generation("llm-jp-instructions", "i1", 1, 0, "done"),
    ]
    parsed = parse_shinsa_generations(enumerate(rows, start=1), "generations.jsonl")
    assert set(parsed) == {"mt-bench", "llm-jp-instructions"}
    first = parsed["mt-bench"][("1", 1, 0)]
    assert (first.answer, first.reasoning, first.record["usage"]) == (
        "haiku",
        "thought",
        {"completion_tokens": 3},
    )
    assert parsed["mt-bench"][("1", 1, 1)].error == "HTTP 400: too long"
    with pytest.raises(
        AnswersError, match=r"generations.jsonl:2: a second answer for mt-bench 1 turn 1 repeat 0"
    ):
        parse_shinsa_generations(enumerate(rows[:1] * 2, start=1), "generations.jsonl")


def answers_of(rows: list[dict[str, Any]]) -> BenchmarkAnswers:
    return BenchmarkAnswers(
        "mt-bench-ja", "out/mt_bench_ja.jsonl", parse_llm_jp_judge_rows(enumerate(rows), "x")
    )


def test_answers_covering_every_turn_pass_and_extra_ones_are_a_warning() -> None:
    extra = {"ID": 99, "prompt": ["?"], "response": ["!"]}
    warnings = check_answers(
        answers_of([ljj_row(1, ["a", "b"]), ljj_row(2, ["c", "d"]), extra]), QUESTIONS, 1
    )
    assert warnings == [
        "out/mt_bench_ja.jsonl: 1 answer(s) to turns not in the dataset were ignored "
        "(first: 99 turn 1 repeat 0)"
    ]


def test_missing_answers_are_an_error_naming_the_count_and_the_first_ids() -> None:
    with pytest.raises(AnswersError) as caught:
        check_answers(answers_of([ljj_row(1, ["a"])]), QUESTIONS, 1)
    assert "out/mt_bench_ja.jsonl has no answer for 3 of the 4 turns of mt-bench-ja" in str(caught.value)
    assert "first: 1 turn 2 repeat 0, 2 turn 1 repeat 0, 2 turn 2 repeat 0" in str(caught.value)


def test_fewer_repeats_than_the_spec_asks_for_name_spec_repeats() -> None:
    with pytest.raises(AnswersError, match=r"spec.repeats: 3, but out/mt_bench_ja.jsonl holds 1 answer\(s\)"):
        check_answers(answers_of([ljj_row(1, ["a", "b"]), ljj_row(2, ["c", "d"])]), QUESTIONS, 3)


def test_turns_after_a_failed_turn_may_be_missing() -> None:
    parsed = parse_shinsa_generations(
        enumerate(
            [
                generation("mt-bench", "1", 1, 0, None, error="HTTP 500"),
                generation("mt-bench", "2", 1, 0, "c"),
                generation("mt-bench", "2", 2, 0, "d"),
            ]
        ),
        "g.jsonl",
    )
    assert check_answers(BenchmarkAnswers("mt-bench", "g.jsonl", parsed["mt-bench"]), QUESTIONS, 1) == []


def test_answers_to_another_question_text_are_a_warning_when_compared() -> None:
    row = ljj_row(1, ["a", "b"])
    row["prompt"] = ["Write a sonnet.", "Now a limerick."]
    answers = answers_of([row, ljj_row(2, ["c", "d"])])
    assert check_answers(answers, QUESTIONS, 1) == []
    [warning] = check_answers(answers, QUESTIONS, 1, compare_prompts=True)
    assert "1 answer(s) were generated for a different question text" in warning and "1 turn 1" in warning


def test_the_digest_changes_with_any_answer() -> None:
    one = answers_of([ljj_row(1, ["a", "b"])])
    assert one.digest == answers_of([ljj_row(1, ["a", "b"])]).digest
    assert one.digest != answers_of([ljj_row(1, ["a", "B"])]).digest


def test_a_llm_jp_judge_directory_maps_its_benchmarks_and_names_its_model(tmp_path: Path) -> None:
    out = tmp_path / "ljj"
    write_jsonl(out / "mt_bench_ja.jsonl", [ljj_row(1, ["a", "b"])])
    write_jsonl(out / "culture_ja.jsonl", [{"ID": 0, "prompt": ["q"], "response": ["r"]}])
    write_jsonl(out / "safety_borderline_ja.jsonl", [{"ID": 0, "prompt": ["q"], "response": ["s"]}])
    (out / "metadata.json").write_text(json.dumps({"model_name": "llm-jp/llm-jp-4-8b"}), encoding="utf-8")
    answers = load_answers(str(out), tmp_path / "cache")
    assert (answers.layout, answers.model) == (LLM_JP_JUDGE, "llm-jp/llm-jp-4-8b")
    assert answers.of("mt-bench-ja").source == str(out / "mt_bench_ja.jsonl")
    assert answers.of("mt-bench-ja").benchmark == "mt-bench-ja"
    assert answers.of("rubric/culture-ja").get("0", 1, 0).answer == "r"  # type: ignore[union-attr]
    refusal = answers.of("rubric/safety-borderline-ja-refusal")
    assert refusal.get("0", 1, 0).answer == "s"  # type: ignore[union-attr]
    with pytest.raises(
        AnswersError, match=r"holds no answers for mt-bench .*llm-jp-judge writes them to mt_bench_en.jsonl"
    ):
        answers.of("mt-bench")
    with pytest.raises(AnswersError, match=r"no answers for rubric/other .*a rubric takes the file its id"):
        answers.of("rubric/other")


def test_the_only_rubric_file_answers_any_rubric(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "safety_boundary_ja.jsonl", [{"ID": 0, "prompt": ["q"], "response": ["r"]}])
    answers = load_answers(str(path), tmp_path / "cache")
    assert answers.model is None  # no metadata.json beside the file
    assert answers.of("rubric/boundary").source == str(path)


def test_a_shinsa_results_directory_and_its_generations_file_read_alike(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "results" / "generations.jsonl", [generation("mt-bench", "1", 1, 0, "a")])
    for uri in (tmp_path / "results", path):
        answers = load_answers(str(uri), tmp_path / "cache")
        assert answers.layout == SHINSA
        assert answers.of("mt-bench").get("1", 1, 0).answer == "a"  # type: ignore[union-attr]
    with pytest.raises(AnswersError, match=r"holds no answers for mt-bench-ja"):
        answers.of("mt-bench-ja")


def test_unreadable_answers_are_errors_naming_the_uri(tmp_path: Path) -> None:
    with pytest.raises(AnswersError, match=r"answers: .*missing: not found"):
        load_answers(str(tmp_path / "missing"), tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnswersError, match=r"neither a Shinsa results directory .* nor llm-jp-judge"):
        load_answers(str(tmp_path / "empty"), tmp_path / "cache")
    other = write_jsonl(tmp_path / "jmmlu.jsonl", [{"ID": 0, "prompt": ["q"], "response": ["r"]}])
    with pytest.raises(AnswersError, match=r"jmmlu is not an llm-jp-judge benchmark Shinsa runs"):
        load_answers(str(other), tmp_path / "cache")
    broken = tmp_path / "broken" / "mt_bench_ja.jsonl"
    broken.parent.mkdir()
    broken.write_text('{"ID": 1\n', encoding="utf-8")
    with pytest.raises(AnswersError, match=r"broken/mt_bench_ja.jsonl:1: not valid JSON"):
        load_answers(str(broken.parent), tmp_path / "cache")


def test_the_cli_uri_is_made_absolute_and_other_schemes_are_refused(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_uri("results") == str(tmp_path / "results")
    assert cli_uri("s3://bucket/answers") == "s3://bucket/answers"
    with pytest.raises(AnswersError, match=r"--answers: 'https://host/answers' is not a local path"):
        cli_uri("https://host/answers")


SPEC: dict[str, Any] = {
    "model": {
        "endpoint": "http://model:8000/v1",
        "servedName": "m",
        "apiKeySecretRef": {"name": "s", "key": "k"},
    },
    "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/mt-bench"}}],
    "judges": [
        {
            "name": "gpt",
            "endpoint": "https://judge.example/v1",
            "model": "j",
            "apiKeySecretRef": {"name": "s", "key": "k"},
        }
    ],
}


def test_each_phase_needs_only_the_keys_it_uses(monkeypatch: Any) -> None:
    monkeypatch.delenv("SHINSA_JUDGE_API_KEY_GPT", raising=False)
    monkeypatch.setenv("SHINSA_MODEL_API_KEY", "x")
    assert parse_config(SPEC, phase=Phase.GENERATE).spec.answers is None
    with pytest.raises(ConfigError, match="SHINSA_JUDGE_API_KEY_GPT"):
        parse_config(SPEC)
    monkeypatch.setenv("SHINSA_JUDGE_API_KEY_GPT", "x")
    monkeypatch.delenv("SHINSA_MODEL_API_KEY")
    judged = parse_config(SPEC, phase=Phase.JUDGE, answers="/answers")
    assert judged.spec.answers == "/answers"


def test_the_phases_refuse_what_they_cannot_run() -> None:
    with pytest.raises(
        ConfigError, match=r"--phase judge: no answers to judge: set spec.answers or pass --answers"
    ):
        parse_config(SPEC, phase=Phase.JUDGE)
    with pytest.raises(ConfigError, match=r"--phase generate: answers are given"):
        parse_config({**SPEC, "answers": "/answers"}, phase=Phase.GENERATE)
    with pytest.raises(ConfigError, match=r"answers: String should match pattern"):
        parse_config({**SPEC, "answers": "relative/path"})
