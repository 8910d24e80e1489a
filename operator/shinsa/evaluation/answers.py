"""Pre-generated answers (`spec.answers`, `shinsa eval run --answers`): judged instead of asking the model.

Two layouts are read, told apart by their content:

- llm-jp-judge's generation output (checked against llm-jp-judge v2.0.0, commit 4392b3b:
  `generate.py`, `dataset/__init__.py`, `dataset/*.py` `load_*_raw_output`, `client/remote.py`):
  a directory of `<benchmark>.jsonl` files and a `metadata.json` (`{"model_name": ...}`), or one such
  `.jsonl` file. A row is `{"ID", "prompt": [turn, ...], "response": [answer or null, ...],
  "error_messages": [[message, ...], ...], ...}`: one answer per question and turn (llm-jp-judge
  generates one repeat). A `null` response is a failed generation; its last error message says why.
  The file name is llm-jp-judge's benchmark name, mapped to Shinsa's by `LLM_JP_JUDGE_BENCHMARKS`.
- Shinsa's own `generations.jsonl` (the file, or the results directory holding it): generation
  records keyed by benchmark, question, turn and repeat; a record with an `error` is a failed
  generation.

Pure apart from `load_answers`, which finds and reads the files (downloading an `s3://` URI first,
as datasets are).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shinsa.api.eval_run import DATASET_URI_PATTERN, BenchmarkName
from shinsa.evaluation.datasets import DatasetError, Question, locate, read_text

LLM_JP_JUDGE_BENCHMARKS: Mapping[str, str] = {
    "mt_bench_ja": BenchmarkName.MT_BENCH_JA,
    "mt_bench_en": BenchmarkName.MT_BENCH,
    "quality_ja": BenchmarkName.LLM_JP_INSTRUCTIONS,
    "safety_ja": BenchmarkName.ANSWER_CAREFULLY,
    # Three llm-jp-judge benchmarks, one generic benchmark of Shinsa's: a spec runs one of them.
    "culture_ja": "rubric",
    "safety_borderline_ja": "rubric",
    "safety_boundary_ja": "rubric",
}
"""llm-jp-judge's benchmark names (its output file names) -> Shinsa's benchmarks."""

METADATA_FILE = "metadata.json"
GENERATIONS_FILE = "generations.jsonl"
LLM_JP_JUDGE = "llm-jp-judge"
SHINSA = "shinsa"
_SHOWN_IDS = 5


class AnswersError(DatasetError):
    """Answers that cannot be used: missing, malformed, or not matching the benchmark's questions."""


@dataclass(frozen=True)
class Answer:
    """One pre-generated answer to a question's turn in one repeat."""

    answer: str | None
    """The answer's text; None when its generation failed."""
    error: str | None = None
    """Why its generation failed (None when it did not)."""
    reasoning: str = ""
    prompt: str | None = None
    """The turn's text as the source recorded it, to tell answers to other questions apart."""
    record: Mapping[str, Any] = field(default_factory=dict)
    """The source's own record (usage, latency, finish reason of a Shinsa generation)."""


Key = tuple[str, int, int]
"""(question id, turn from 1, repeat from 0)."""


@dataclass(frozen=True)
class BenchmarkAnswers:
    """The answers of one benchmark, from one file."""

    benchmark: str
    source: str
    """The file they were read from, for messages."""
    answers: Mapping[Key, Answer]

    @property
    def repeats(self) -> int:
        return 1 + max((repeat for _, _, repeat in self.answers), default=-1)

    @property
    def digest(self) -> str:
        """A digest of the answers' content, which the checkpoint fingerprints include: a resumed run
        never mixes judgments of one set of answers with another's."""
        rows = sorted(
            (qid, turn, repeat, a.answer, a.error, a.reasoning)
            for (qid, turn, repeat), a in self.answers.items()
        )
        blob = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    def get(self, question_id: str, turn: int, repeat: int) -> Answer | None:
        return self.answers.get((question_id, turn, repeat))


RUBRIC = "rubric"
_RUBRIC_PREFIX = RUBRIC + "/"


def llm_jp_judge_names(benchmark: str, available: Iterable[str] = ()) -> list[str]:
    """The llm-jp-judge benchmark names (output file stems) whose answers Shinsa's `benchmark` judges.

    A rubric benchmark (`rubric/<id>`) takes the file its id is named after, llm-jp-judge's name
    with `-` for `_` (`rubric/culture-ja` <- culture_ja.jsonl), or that name and a suffix (the
    `rubric/safety-borderline-ja-refusal` and `-safety` rubrics both rate safety_borderline_ja.jsonl);
    failing that, the only rubric file in `available`; none when several are there."""
    if not benchmark.startswith(_RUBRIC_PREFIX):
        return sorted(k for k, v in LLM_JP_JUDGE_BENCHMARKS.items() if v == benchmark)
    rubric_id = benchmark.removeprefix(_RUBRIC_PREFIX)
    rubrics = sorted(k for k, v in LLM_JP_JUDGE_BENCHMARKS.items() if v == RUBRIC)
    named = [
        k
        for k in rubrics
        if rubric_id == k.replace("_", "-") or rubric_id.startswith(k.replace("_", "-") + "-")
    ]
    if named:
        return named
    present = [k for k in rubrics if k in set(available)]
    return present if len(present) == 1 else []


@dataclass(frozen=True)
class Answers:
    """Pre-generated answers of one or more benchmarks."""

    uri: str
    layout: str
    """`llm-jp-judge` or `shinsa`."""
    sets: Mapping[str, BenchmarkAnswers]
    """By Shinsa benchmark name (Shinsa's layout) or llm-jp-judge benchmark name (its layout)."""
    model: str | None = None
    """The model that generated them, where the source says (llm-jp-judge's metadata `model_name`)."""

    def of(self, benchmark: str) -> BenchmarkAnswers:
        """The answers of Shinsa's `benchmark`; AnswersError naming what the source holds when none."""
        if self.layout == SHINSA:
            if benchmark in self.sets:
                return self.sets[benchmark]
            hint = ""
        else:
            names = llm_jp_judge_names(benchmark, self.sets)
            found = [n for n in names if n in self.sets]
            if found:
                return replace(self.sets[found[0]], benchmark=benchmark)
            if names:
                hint = f"; llm-jp-judge writes them to {' or '.join(n + '.jsonl' for n in names)}"
            elif benchmark.startswith(_RUBRIC_PREFIX):
                hint = (
                    "; a rubric takes the file its id is named after (id culture-ja: culture_ja.jsonl, "
                    "safety-borderline-ja-<suffix>: safety_borderline_ja.jsonl)"
                )
            else:
                hint = ""
        held = ", ".join(f"{a.source}" for _, a in sorted(self.sets.items())) or "none"
        raise AnswersError(f"answers: {self.uri} holds no answers for {benchmark} (it holds: {held}){hint}")


# -- parsing (pure) ----------------------------------------------------------------------------------


def _ids(keys: Iterable[Key]) -> str:
    shown = sorted(keys)[:_SHOWN_IDS]
    return ", ".join(f"{qid} turn {turn} repeat {repeat}" for qid, turn, repeat in shown)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_llm_jp_judge_rows(rows: Iterable[tuple[int, Any]], source: str) -> dict[Key, Answer]:
    """llm-jp-judge generation output rows ((line number, row)) -> answers, all of repeat 0."""
    out: dict[Key, Answer] = {}
    seen: set[str] = set()
    for number, row in rows:
        where = f"{source}:{number}"
        if not isinstance(row, dict):
            raise AnswersError(f"{where}: expected a JSON object")
        if "ID" not in row or not isinstance(row["ID"], int | str) or isinstance(row["ID"], bool):
            raise AnswersError(f"{where}: no ID (an llm-jp-judge generation row has ID, prompt and response)")
        qid = str(row["ID"])
        if qid in seen:
            raise AnswersError(f"{where}: duplicate ID {qid}")
        seen.add(qid)
        responses = row.get("response")
        if not isinstance(responses, list) or not responses:
            raise AnswersError(f"{where}: ID {qid}: response must be a non-empty list of answers, one a turn")
        prompts = _list(row.get("prompt"))
        errors = _list(row.get("error_messages"))
        for index, text in enumerate(responses):
            prompt = prompts[index] if index < len(prompts) and isinstance(prompts[index], str) else None
            if text is None:
                messages = errors[index] if index < len(errors) and isinstance(errors[index], list) else []
                reason = str(messages[-1]) if messages else "no response recorded"
                out[(qid, index + 1, 0)] = Answer(None, error=f"llm-jp-judge: {reason}", prompt=prompt)
            elif isinstance(text, str):
                out[(qid, index + 1, 0)] = Answer(text, prompt=prompt)
            else:
                raise AnswersError(f"{where}: ID {qid}: response[{index}] is not a string or null")
    return out


def parse_shinsa_generations(rows: Iterable[tuple[int, Any]], source: str) -> dict[str, dict[Key, Answer]]:
    """generations.jsonl rows ((line number, record)) -> answers per benchmark."""
    out: dict[str, dict[Key, Answer]] = {}
    for number, row in rows:
        where = f"{source}:{number}"
        if not isinstance(row, dict):
            raise AnswersError(f"{where}: expected a JSON object")
        if row.get("kind", "generation") != "generation":
            continue
        try:
            benchmark = str(row["benchmark"])
            key = (str(row["question_id"]), int(row["turn"]), int(row.get("repeat", 0)))
        except (KeyError, TypeError, ValueError):
            raise AnswersError(
                f"{where}: not a generation record (needs benchmark, question_id, turn, repeat)"
            ) from None
        answers = out.setdefault(benchmark, {})
        if key in answers:
            raise AnswersError(f"{where}: a second answer for {benchmark} {_ids([key])}")
        error = row.get("error")
        text = row.get("answer")
        if error is not None or text is None:
            answers[key] = Answer(None, error=str(error or "no answer recorded"), record=row)
        elif isinstance(text, str):
            answers[key] = Answer(text, reasoning=str(row.get("reasoning") or ""), record=row)
        else:
            raise AnswersError(f"{where}: answer is not a string")
    return out


def check_answers(
    answers: BenchmarkAnswers, questions: Sequence[Question], repeats: int, *, compare_prompts: bool = False
) -> list[str]:
    """Raise AnswersError when the answers cannot stand for the model's on these questions (fewer
    repeats than `repeats`, or a question's turn without an answer); return warnings about answers no
    question uses and, with `compare_prompts`, answers recorded for a different question text."""
    benchmark, source = answers.benchmark, answers.source
    if answers.repeats < repeats:
        origin = (
            " (llm-jp-judge generates one answer per question)"
            if repeats > 1 and answers.repeats == 1
            else ""
        )
        raise AnswersError(
            f"spec.repeats: {repeats}, but {source} holds {answers.repeats} answer(s) per question and "
            f"turn of {benchmark}{origin}; set spec.repeats to {answers.repeats} or generate the others"
        )
    wanted: set[Key] = set()
    missing: list[Key] = []
    differing: list[Key] = []
    for question in questions:
        for repeat in range(repeats):
            failed = False
            for turn, text in enumerate(question.turns, start=1):
                key = (question.question_id, turn, repeat)
                wanted.add(key)
                answer = answers.answers.get(key)
                if answer is None:
                    # A failed turn's later turns were never generated (Shinsa stops a conversation there).
                    if not failed:
                        missing.append(key)
                    continue
                failed = failed or answer.answer is None
                if compare_prompts and answer.prompt is not None and answer.prompt != text:
                    differing.append(key)
    if missing:
        raise AnswersError(
            f"answers: {source} has no answer for {len(missing)} of the {len(wanted)} turns of {benchmark} "
            f"to judge (first: {_ids(missing)}); were they generated from another dataset, or with limit?"
        )
    warnings = []
    unused = [k for k in answers.answers if k not in wanted and k[2] < repeats]
    if unused:
        warnings.append(
            f"{source}: {len(unused)} answer(s) to turns not in the dataset were ignored "
            f"(first: {_ids(unused)})"
        )
    if differing:
        warnings.append(
            f"{source}: {len(differing)} answer(s) were generated for a different question text than the "
            f"dataset's (first: {_ids(differing)}): check that the answers and the dataset match"
        )
    return warnings


# -- reading ---------------------------------------------------------------------------------------


def _jsonl_rows(path: Path, name: str) -> list[tuple[int, Any]]:
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise AnswersError(f"{name}:{number}: not valid JSON ({exc.msg})") from None
    return rows


def _is_shinsa(rows: Sequence[tuple[int, Any]]) -> bool:
    first = rows[0][1] if rows else None
    return isinstance(first, dict) and "question_id" in first and "benchmark" in first


def _metadata_model(directory: Path, name: str) -> str | None:
    path = directory / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise AnswersError(f"{name}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise AnswersError(f"{name}: expected a JSON object with model_name")
    model = data.get("model_name")
    return str(model) if model is not None else None


def _llm_jp_judge_file(path: Path, name: str) -> BenchmarkAnswers:
    if path.stem not in LLM_JP_JUDGE_BENCHMARKS:
        known = ", ".join(sorted(LLM_JP_JUDGE_BENCHMARKS))
        raise AnswersError(f"{name}: {path.stem} is not an llm-jp-judge benchmark Shinsa runs ({known})")
    return BenchmarkAnswers(path.stem, name, parse_llm_jp_judge_rows(_jsonl_rows(path, name), name))


def _shinsa_file(path: Path, name: str) -> dict[str, BenchmarkAnswers]:
    parsed = parse_shinsa_generations(_jsonl_rows(path, name), name)
    return {b: BenchmarkAnswers(b, name, answers) for b, answers in parsed.items()}


def read_answers(path: Path, uri: str) -> Answers:
    """The answers at a local `path` (a file or a directory) that `uri` names. Files are named in
    messages and results by `uri` and their place under it, not by where a download put them."""
    if path.is_file():
        if path.suffix != ".jsonl":
            raise AnswersError(f"answers: {uri}: expected a .jsonl file or a directory")
        if _is_shinsa(_jsonl_rows(path, uri)):
            return Answers(uri, SHINSA, _shinsa_file(path, uri))
        sibling = uri.rpartition("/")[0] + "/" + METADATA_FILE
        model = _metadata_model(path.parent, sibling)
        return Answers(uri, LLM_JP_JUDGE, {path.stem: _llm_jp_judge_file(path, uri)}, model=model)

    def name(file: Path) -> str:
        return uri.rstrip("/") + "/" + file.relative_to(path).as_posix()

    if (path / GENERATIONS_FILE).is_file():
        return Answers(uri, SHINSA, _shinsa_file(path / GENERATIONS_FILE, name(path / GENERATIONS_FILE)))
    files = sorted(p for p in path.glob("*.jsonl") if p.stem in LLM_JP_JUDGE_BENCHMARKS)
    if not files:
        raise AnswersError(
            f"answers: {uri}: neither a Shinsa results directory ({GENERATIONS_FILE}) nor llm-jp-judge "
            f"generation output (<benchmark>.jsonl and {METADATA_FILE})"
        )
    sets = {p.stem: _llm_jp_judge_file(p, name(p)) for p in files}
    return Answers(uri, LLM_JP_JUDGE, sets, model=_metadata_model(path, name(path / METADATA_FILE)))


def load_answers(uri: str, cache_dir: Path) -> Answers:
    """The answers at `uri`: an absolute local path, `s3://bucket/prefix` or `pvc://claim/path`."""
    try:
        path = locate(uri, cache_dir)
    except DatasetError as exc:
        raise AnswersError(f"answers: {exc}") from None
    return read_answers(path, uri)


def cli_uri(value: str) -> str:
    """`--answers` as a URI of `spec.answers`: a relative local path becomes absolute."""
    import re

    if "://" not in value:
        value = str(Path(value).expanduser().resolve())
    if not re.match(DATASET_URI_PATTERN, value):
        raise AnswersError(
            f"--answers: {value!r} is not a local path, s3://bucket/prefix or pvc://claim/path"
        )
    return value


__all__ = [
    "LLM_JP_JUDGE_BENCHMARKS",
    "Answer",
    "Answers",
    "AnswersError",
    "BenchmarkAnswers",
    "check_answers",
    "cli_uri",
    "llm_jp_judge_names",
    "load_answers",
    "parse_llm_jp_judge_rows",
    "parse_shinsa_generations",
    "read_answers",
]
