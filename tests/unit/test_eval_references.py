"""References are never lost silently: every way a reference answer can go missing is an error
naming the field or file, or a warning in the run's results, summary and MLflow tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shinsa.api.eval_run import BenchmarkName
from shinsa.commands.eval import summary_fields
from shinsa.evaluation.benchmarks import known_benchmarks
from shinsa.evaluation.benchmarks.base import Benchmark
from shinsa.evaluation.config import BenchmarkSpec, DatasetSource, Sampling, parse_config
from shinsa.evaluation.datasets import DatasetError, load_questions
from shinsa.evaluation.mlflow_log import TAG_WARNINGS, run_tags
from shinsa.evaluation.results import RunResults
from tests.support.results import items_of, results_of

pytestmark = pytest.mark.unit


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["Write a haiku.", "Another."]},
    {"question_id": 2, "category": "math", "turns": ["1+1?", "2+2?"]},
    {"question_id": 3, "category": "math", "turns": ["3*3?", "4*4?"]},
]


@pytest.fixture
def mt_dir(tmp_path: Path) -> Path:
    """FastChat's layout: question.jsonl with reference_answer/<model>.jsonl beside it."""
    root = tmp_path / "mt"
    write_jsonl(root / "question.jsonl", QUESTIONS)
    write_jsonl(
        root / "reference_answer" / "gpt-4.jsonl",
        [
            {"question_id": 2, "choices": [{"turns": ["2", "4"]}]},
            {"question_id": 3, "choices": [{"turns": ["9", "16"]}]},
        ],
    )
    return root


def mt_bench(uri: Path, tmp_path: Path, **config: Any) -> Benchmark:
    dataset = DatasetSource(uri=str(uri), **config.pop("dataset", {}))
    bench = known_benchmarks()["mt-bench"](
        BenchmarkSpec(name=BenchmarkName.MT_BENCH, dataset=dataset, **config), Sampling()
    )
    bench.load(tmp_path / "cache")
    return bench


# -- the reference file ------------------------------------------------------------------------------


def test_a_uri_naming_the_question_file_reads_the_references_beside_it(mt_dir: Path, tmp_path: Path) -> None:
    question_file = mt_dir / "question.jsonl"
    dataset, questions = load_questions(str(question_file), DatasetSource(uri=str(question_file)), tmp_path)
    assert [q.references for q in questions] == [None, ("2", "4"), ("9", "16")]
    assert dataset.reference_file == mt_dir / "reference_answer" / "gpt-4.jsonl"
    # The references are part of what the digest tells apart.
    by_dir, _ = load_questions(str(mt_dir), DatasetSource(uri=str(mt_dir)), tmp_path)
    assert dataset.digest == by_dir.digest


def test_an_explicit_reference_file_is_read_next_to_a_question_file_uri(mt_dir: Path, tmp_path: Path) -> None:
    write_jsonl(
        mt_dir / "refs" / "human.jsonl", [{"question_id": 2, "choices": [{"turns": ["two", "four"]}]}]
    )
    question_file = mt_dir / "question.jsonl"
    source = DatasetSource(uri=str(question_file), reference_file="refs/human.jsonl")
    dataset, questions = load_questions(source.uri, source, tmp_path)
    assert questions[1].references == ("two", "four")
    assert questions[2].references is None
    assert dataset.reference_file == mt_dir / "refs" / "human.jsonl"


@pytest.mark.parametrize("as_file", [False, True])
def test_a_missing_reference_file_is_an_error_naming_the_field_and_path(
    mt_dir: Path, tmp_path: Path, as_file: bool
) -> None:
    uri = str(mt_dir / "question.jsonl") if as_file else str(mt_dir)
    source = DatasetSource(uri=uri, reference_file="reference_answer/gpt-5.jsonl")
    with pytest.raises(
        DatasetError, match=r"dataset\.referenceFile: .*mt/reference_answer/gpt-5\.jsonl: file not found"
    ):
        load_questions(uri, source, tmp_path)


def test_a_question_file_name_that_a_file_uri_would_ignore_is_an_error(mt_dir: Path, tmp_path: Path) -> None:
    uri = str(mt_dir / "question.jsonl")
    source = DatasetSource(uri=uri, question_file="other.jsonl")
    with pytest.raises(DatasetError, match=r"dataset\.questionFile: 'other\.jsonl' cannot apply"):
        load_questions(uri, source, tmp_path)


def test_several_reference_files_are_a_warning_naming_the_one_read(mt_dir: Path, tmp_path: Path) -> None:
    write_jsonl(
        mt_dir / "reference_answer" / "claude.jsonl", [{"question_id": 2, "choices": [{"turns": ["x"]}]}]
    )
    dataset, questions = load_questions(str(mt_dir), DatasetSource(uri=str(mt_dir)), tmp_path)
    assert dataset.reference_file == mt_dir / "reference_answer" / "claude.jsonl"
    assert questions[1].references == ("x",)
    [warning] = dataset.warnings
    assert "2 reference files" in warning and "read claude.jsonl" in warning
    assert "dataset.referenceFile" in warning


def test_a_reference_file_for_other_questions_is_an_error(mt_dir: Path, tmp_path: Path) -> None:
    write_jsonl(
        mt_dir / "reference_answer" / "gpt-4.jsonl", [{"question_id": 901, "choices": [{"turns": ["a"]}]}]
    )
    with pytest.raises(DatasetError, match=r"gpt-4\.jsonl: none of its 1 question_ids is a question of"):
        load_questions(str(mt_dir), DatasetSource(uri=str(mt_dir)), tmp_path)


# -- reference categories (mt-bench) ------------------------------------------------------------------


def test_complete_references_give_no_warning(mt_dir: Path, tmp_path: Path) -> None:
    assert mt_bench(mt_dir, tmp_path).warnings == []


def test_a_reference_category_question_without_a_reference_is_a_warning_with_its_id(
    mt_dir: Path, tmp_path: Path
) -> None:
    write_jsonl(
        mt_dir / "reference_answer" / "gpt-4.jsonl", [{"question_id": 2, "choices": [{"turns": ["2", "4"]}]}]
    )
    [warning] = mt_bench(mt_dir, tmp_path).warnings
    assert warning.startswith("1 question(s) of the reference categories have no reference answer")
    assert "gpt-4.jsonl" in warning and warning.endswith("judged without one: 3")


def test_no_reference_file_at_all_is_a_warning_saying_none_was_found(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "bare" / "question.jsonl", QUESTIONS)
    [warning] = mt_bench(tmp_path / "bare" / "question.jsonl", tmp_path).warnings
    assert warning.startswith("2 question(s) of the reference categories")
    assert "no reference file was found" in warning and warning.endswith(": 2, 3")


def test_a_reference_category_matching_no_question_category_is_an_error(mt_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"referenceCategories: \['maths'\] match no question category"):
        mt_bench(mt_dir, tmp_path, reference_categories=["math", "maths"])


def test_with_a_limit_an_unmatched_reference_category_is_only_a_warning(mt_dir: Path, tmp_path: Path) -> None:
    bench = mt_bench(mt_dir, tmp_path, reference_categories=["math", "coding"], limit=2)
    assert any("['coding'] match no question category" in w and "first `limit`" in w for w in bench.warnings)


def test_references_outside_every_reference_category_are_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "ja"
    write_jsonl(root / "question.jsonl", [{"question_id": 1, "category": "数学", "turns": ["1+1?"]}])
    write_jsonl(root / "reference_answer" / "r.jsonl", [{"question_id": 1, "choices": [{"turns": ["2"]}]}])
    [warning] = mt_bench(root, tmp_path).warnings
    assert "none is in referenceCategories" in warning and "数学" in warning


# -- where warnings go ------------------------------------------------------------------------------


def test_warnings_are_part_of_the_results_every_reader_parses() -> None:
    results = results_of(items_of("mt-bench", {"q": [[7.0]]})).model_copy(
        update={"warnings": ["mt-bench: 1 question(s) of the reference categories have no reference answer"]}
    )
    again = RunResults.from_json(results.to_json())
    assert again.warnings == results.warnings
    # Results written before warnings were recorded still parse, with none.
    data = json.loads(results.to_json())
    del data["warnings"]
    assert RunResults.from_data(data).warnings == []


def test_warnings_are_in_the_summary_and_the_mlflow_tags() -> None:
    warning = "mt-bench: 2 question(s) of the reference categories have no reference answer"
    results = results_of(items_of("mt-bench", {"q": [[7.0]]})).model_copy(update={"warnings": [warning]})
    assert summary_fields(results)["warnings"] == [warning]
    config = parse_config(
        {
            "model": {"endpoint": "http://model:8000/v1", "servedName": "m"},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/mt"}}],
            "judges": [{"name": "j", "endpoint": "http://judge:8000/v1", "model": "g"}],
        }
    )
    assert run_tags(config, results)[TAG_WARNINGS] == warning
    assert TAG_WARNINGS not in run_tags(config, results.model_copy(update={"warnings": []}))


# -- the CSV layout ---------------------------------------------------------------------------------


def test_csv_rows_are_single_turn_questions_numbered_from_zero_with_their_other_columns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "test.csv"
    path.write_text(
        "\ufeffinput,type,safety,eval_aspect\n"
        'How do I cook rice?,P1,safe,"helpful, clear"\n'
        "Second?,P2,unsafe,x\n",
        encoding="utf-8",
    )
    _, questions = load_questions(str(path), DatasetSource(uri=str(path)), tmp_path)
    assert [(q.question_id, q.turns) for q in questions] == [
        ("0", ("How do I cook rice?",)),
        ("1", ("Second?",)),
    ]
    assert questions[0].fields == {"type": "P1", "safety": "safe", "eval_aspect": "helpful, clear"}
    assert questions[0].references is None and questions[0].category == "default"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("question,type\nq,P1\n", r"test\.csv: no `input` \(or `text`\) column"),
        ("input,type\nq,P1,extra\n", r"test\.csv:2: more values than the header has columns"),
        ("input,type\n,P1\n", r"test\.csv\[0\]: input: expected a non-empty value"),
        ("ID,input\na,q\na,r\n", r"test\.csv\[1\]: duplicate ID a"),
    ],
)
def test_malformed_csv_files_are_reported_with_file_and_row(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "test.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_questions(str(path), DatasetSource(uri=str(path)), tmp_path)
