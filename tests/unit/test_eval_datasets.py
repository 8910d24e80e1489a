"""Datasets in the FastChat / llm-jp-judge layout load from a path or a PVC mount; bad files are named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shinsa.evaluation.config import DatasetSource
from shinsa.evaluation.datasets import DatasetError, load_corpus, load_questions, locate

pytestmark = pytest.mark.unit


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def mt_dir(tmp_path: Path) -> Path:
    root = tmp_path / "mt"
    write_jsonl(
        root / "question.jsonl",
        [
            {"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Shorter."]},
            {"question_id": 111, "category": "math", "turns": ["1+1?", "2+2?"]},
        ],
    )
    write_jsonl(
        root / "reference_answer" / "ref.jsonl", [{"question_id": 111, "choices": [{"turns": ["2", "4"]}]}]
    )
    return root


def test_questions_and_references_are_joined_by_id(mt_dir: Path, tmp_path: Path) -> None:
    dataset, questions = load_questions(str(mt_dir), DatasetSource(uri=str(mt_dir)), tmp_path)
    assert [q.question_id for q in questions] == ["81", "111"]
    assert questions[0].turns == ("Write a poem.", "Shorter.")
    assert questions[0].references is None
    assert questions[1].references == ("2", "4")
    assert dataset.digest.startswith("sha256:")


def test_digest_changes_with_content(mt_dir: Path, tmp_path: Path) -> None:
    before, _ = load_questions(str(mt_dir), DatasetSource(uri=str(mt_dir)), tmp_path)
    write_jsonl(
        mt_dir / "reference_answer" / "ref.jsonl", [{"question_id": 111, "choices": [{"turns": ["3", "4"]}]}]
    )
    after, _ = load_questions(str(mt_dir), DatasetSource(uri=str(mt_dir)), tmp_path)
    assert before.digest != after.digest


def test_pvc_uris_resolve_under_the_mount_root(
    mt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHINSA_PVC_ROOT", str(tmp_path))
    assert locate("pvc://mt", tmp_path) == mt_dir
    _, questions = load_questions("pvc://mt", DatasetSource(uri="pvc://mt"), tmp_path)
    assert len(questions) == 2


def test_explicit_file_names(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "q.jsonl", [{"question_id": "a", "category": "c", "turns": ["hi"]}])
    write_jsonl(tmp_path / "d" / "refs.jsonl", [{"question_id": "a", "choices": [{"turns": ["hello"]}]}])
    source = DatasetSource(uri=str(tmp_path / "d"), question_file="q.jsonl", reference_file="refs.jsonl")
    _, questions = load_questions(source.uri, source, tmp_path)
    assert questions[0].references == ("hello",)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "question.jsonl:2: not valid JSON"),
        ('{"category": "x", "turns": ["q"]}', "question.jsonl:2: missing question_id"),
        ('{"question_id": 2, "turns": []}', "question.jsonl:2: turns: expected a non-empty list"),
        ('{"question_id": 1, "turns": ["dup"]}', "question.jsonl:2: duplicate question_id 1"),
    ],
)
def test_malformed_lines_are_reported_with_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "question.jsonl"
    path.write_text('{"question_id": 1, "turns": ["ok"]}\n' + line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_questions(str(tmp_path), DatasetSource(uri=str(tmp_path)), tmp_path)


def test_missing_dataset_names_the_uri(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="/nowhere/at/all: not found"):
        load_questions("/nowhere/at/all", DatasetSource(uri="/nowhere/at/all"), tmp_path)


def test_corpus_from_a_file_or_a_directory(tmp_path: Path) -> None:
    (tmp_path / "corpus.txt").write_text("Some text. More text.")
    _, text = load_corpus(str(tmp_path), DatasetSource(uri=str(tmp_path)), tmp_path)
    assert text.startswith("Some text")
    _, same = load_corpus(
        str(tmp_path / "corpus.txt"), DatasetSource(uri=str(tmp_path / "corpus.txt")), tmp_path
    )
    assert same == text


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "reference.jsonl:1: expected a JSON object"),
        ('{"choices": [{"turns": ["a"]}]}', "reference.jsonl:1: missing question_id"),
        ('{"question_id": 1, "choices": []}', "reference.jsonl:1: expected choices"),
        (
            '{"question_id": 1, "choices": [{"turns": "a"}]}',
            r"reference.jsonl:1: choices\[0\].turns: expected",
        ),
    ],
)
def test_malformed_references_are_reported_with_file_and_line(
    tmp_path: Path, line: str, message: str
) -> None:
    (tmp_path / "question.jsonl").write_text('{"question_id": 1, "turns": ["ok"]}\n')
    (tmp_path / "reference_answer").mkdir()
    (tmp_path / "reference_answer" / "reference.jsonl").write_text(line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_questions(str(tmp_path), DatasetSource(uri=str(tmp_path)), tmp_path)


def write_json(path: Path, rows: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def test_llm_jp_judge_json_arrays_are_single_turn_questions_with_their_output_as_reference(
    tmp_path: Path,
) -> None:
    path = write_json(
        tmp_path / "ac" / "test.json",
        [
            {"ID": 7, "text": "隣人の電話番号を教えて。", "output": "個人情報はお伝えできません。"},
            {"ID": "ac-2", "text": "Is this safe?", "category": "medical"},
        ],
    )
    dataset, questions = load_questions(str(path), DatasetSource(uri=str(path)), tmp_path)
    assert [q.question_id for q in questions] == ["7", "ac-2"]
    assert questions[0].turns == ("隣人の電話番号を教えて。",)
    assert questions[0].references == ("個人情報はお伝えできません。",)
    assert questions[0].category == "default"
    assert questions[1].category == "medical" and questions[1].references is None
    assert dataset.digest.startswith("sha256:")


def test_llm_jp_judge_file_named_inside_a_directory(tmp_path: Path) -> None:
    write_json(tmp_path / "ac" / "test.json", [{"ID": 1, "text": "q", "output": "r"}])
    source = DatasetSource(uri=str(tmp_path / "ac"), question_file="test.json")
    _, questions = load_questions(source.uri, source, tmp_path)
    assert questions[0].references == ("r",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"ID": 1, "text": "q"}, {"text": "no id"}]', r"test.json\[1\]: missing ID"),
        ('[{"ID": 1, "text": "q"}, {"ID": 1, "text": "again"}]', r"test.json\[1\]: duplicate ID 1"),
        ('[{"ID": 1, "text": ""}]', r"test.json\[0\]: text: expected a non-empty string"),
        ('[{"ID": 1, "text": "q", "output": ["r"]}]', r"test.json\[0\]: output: expected a string"),
        ('[{"ID": 1, "text": "q"}, "just text"]', r"test.json\[1\]: expected a JSON object"),
        ('{"ID": 1, "text": "q"}', "test.json: expected a JSON array"),
        ('[{"ID": 1,\n "text": }]', "test.json:2: not valid JSON"),
        ("[]", "test.json: no questions"),
    ],
)
def test_malformed_llm_jp_judge_files_are_reported_with_file_and_index(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "test.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        load_questions(str(path), DatasetSource(uri=str(path)), tmp_path)
