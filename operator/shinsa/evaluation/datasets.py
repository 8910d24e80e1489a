"""Finding and reading benchmark datasets.

Datasets are licensed separately and never shipped: they are read from a local path, an S3 prefix
(boto3; endpoint from AWS_ENDPOINT_URL) or a PVC mounted under SHINSA_PVC_ROOT (default /mnt/pvc).
Question sets use one of two layouts, told apart by the question file's name:

- FastChat (`*.jsonl`), one JSON object a line: {"question_id", "category", "turns": [str, ...]},
  with reference answers one a line: {"question_id", "choices": [{"turns": [str, ...]}]}
- llm-jp-judge (`*.json`, e.g. AnswerCarefully's or llm-jp-instructions' test.json), one JSON array
  of {"ID", "text", "output" (optional reference answer), "category" (optional)}: single-turn.
- CSV (`*.csv`, e.g. llm-jp-judge's safety_boundary_ja test set), a header row then one question a
  row: its text in `input` (or `text`), its id in `ID` (default: the 0-based row number, as
  llm-jp-judge v2.0.0's dataset/safety_boundary.py numbers them), `category` and `output` optional.

Every other string field of a JSON or CSV row is kept as one of the question's `fields`, which
rubric templates can name (`{eval_aspect}`).

References are never lost silently: a `referenceFile` that cannot be read is an error naming the
field, a reference file none of whose ids is a question's is an error, and a choice between several
reference files is a warning (`Dataset.warnings`) naming the one taken. A `uri` naming the question
file itself finds its references next to it, as a directory would.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from shinsa.evaluation.config import DatasetSource

DEFAULT_PVC_ROOT = "/mnt/pvc"


class DatasetError(Exception):
    """A dataset that is missing or does not have the expected layout; the message names the file."""


@dataclass(frozen=True)
class Question:
    question_id: str
    category: str
    turns: tuple[str, ...]
    references: tuple[str, ...] | None = None
    # (name, value) pairs rather than a dict, so that a question stays hashable.
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def fields(self) -> Mapping[str, str]:
        """The row's other string fields (llm-jp-judge's `eval_aspect`, `safety`, ...)."""
        return dict(self.extra)


@dataclass(frozen=True)
class Dataset:
    uri: str
    root: Path  # a local directory or file holding the dataset
    digest: str  # sha256 over the bytes of the files read, so runs can tell datasets apart
    reference_file: Path | None = None
    """The reference-answer file read, None when there was none."""
    warnings: tuple[str, ...] = ()
    """What the user should know about how the data was read (which of several reference files)."""


def _s3_client() -> Any:
    import boto3

    # Recent boto3 reads AWS_ENDPOINT_URL itself; passing it keeps older versions pointed at MinIO etc.
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _download_s3(bucket: str, prefix: str, dest: Path) -> Path:
    from botocore.exceptions import BotoCoreError, ClientError

    client = _s3_client()
    try:
        if prefix and not prefix.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=prefix)
            except ClientError:
                pass
            else:
                target = dest / prefix
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, prefix, str(target))
                return target
        dir_prefix = prefix.rstrip("/") + "/" if prefix else ""
        paginator = client.get_paginator("list_objects_v2")
        found = False
        for page in paginator.paginate(Bucket=bucket, Prefix=dir_prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                target = dest / key
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
                found = True
    except (BotoCoreError, ClientError) as exc:
        raise DatasetError(f"s3://{bucket}/{prefix}: {exc}") from None
    if not found:
        raise DatasetError(f"s3://{bucket}/{prefix}: no objects under this prefix")
    return dest / dir_prefix.rstrip("/") if dir_prefix else dest


def locate(uri: str, cache_dir: Path) -> Path:
    """A local path holding the dataset at `uri`, downloading it first when it lives in S3."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        return _download_s3(parsed.netloc, parsed.path.lstrip("/"), cache_dir / "s3" / parsed.netloc)
    if parsed.scheme == "pvc":
        root = Path(os.environ.get("SHINSA_PVC_ROOT", DEFAULT_PVC_ROOT))
        path = root / parsed.netloc / parsed.path.lstrip("/")
    elif parsed.scheme == "file":
        path = Path(parsed.path)
    else:
        path = Path(uri).expanduser()
    if not path.exists():
        raise DatasetError(f"{uri}: not found (looked at {path})")
    return path


def _member(root: Path, name: str) -> Path:
    path = root if root.is_file() else root / name
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    return path


def _not_utf8(path: Path, line: int, offset: int, byte: int) -> DatasetError:
    # The byte and where it is, never the text around it: a dataset is licensed data, and
    # UnicodeDecodeError's own message carries the whole line.
    return DatasetError(f"{path}:{line}: not UTF-8 (byte 0x{byte:02x} at byte offset {offset})")


def read_text(path: Path) -> str:
    """A dataset file as text; a byte that is not UTF-8 is a DatasetError naming line and offset."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data.count(b"\n", 0, exc.start) + 1, exc.start, data[exc.start]) from None


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open("rb") as handle:
        offset = 0
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, number, offset + exc.start, raw[exc.start]) from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object")
            yield number, row


def _json_array(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        rows = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(rows, list):
        raise DatasetError(f"{path}: expected a JSON array of objects")
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise DatasetError(f"{path}[{index}]: expected a JSON object")
        yield index, row


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise DatasetError(f"{where}: expected a non-empty list of strings")
    return tuple(value)


def _sibling_uri(uri: str, name: str) -> str:
    """The URI of `name` next to the file `uri` names (a local path, file:, s3:// or pvc://)."""
    head, slash, _ = uri.rstrip("/").rpartition("/")
    return head + slash + name if slash else name


def _reference_file(
    uri: str, root: Path, source: DatasetSource, cache_dir: Path
) -> tuple[Path | None, list[str]]:
    """The reference file to read and what to warn about the choice.

    A uri naming the question file itself reads `referenceFile` (or `reference_answer/*.jsonl`)
    next to it: llm-jp-judge's and FastChat's layouts keep them side by side."""
    if root.is_file() and "question_file" in source.model_fields_set and source.question_file != root.name:
        raise DatasetError(
            f"dataset.questionFile: {source.question_file!r} cannot apply: dataset.uri {uri} names the "
            f"file {root.name} itself; name the directory in dataset.uri, or drop dataset.questionFile"
        )
    base = root.parent if root.is_file() else root
    if source.reference_file:
        path = base / source.reference_file
        if root.is_file() and not path.is_file():
            # From S3 only the question file was downloaded: fetch the reference file beside it.
            with contextlib.suppress(DatasetError):
                path = locate(_sibling_uri(uri, source.reference_file), cache_dir)
        if not path.is_file():
            raise DatasetError(
                f"dataset.referenceFile: {path}: file not found (looked next to the questions of {uri})"
            )
        return path, []
    folder = base / "reference_answer"
    candidates = sorted(folder.glob("*.jsonl"))
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        return candidates[0], [
            f"{len(candidates)} reference files in {folder} ({names}): read {candidates[0].name}; "
            "set dataset.referenceFile to choose another"
        ]
    return (candidates[0] if candidates else None), []


def _digest(paths: Iterable[Path]) -> str:
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return "sha256:" + sha.hexdigest()


def read_references(path: Path) -> dict[str, tuple[str, ...]]:
    refs: dict[str, tuple[str, ...]] = {}
    for number, row in _jsonl(path):
        where = f"{path}:{number}"
        if "question_id" not in row:
            raise DatasetError(f"{where}: missing question_id")
        choices = row.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise DatasetError(f"{where}: expected choices[0].turns")
        refs[str(row["question_id"])] = _strings(choices[0].get("turns"), f"{where}: choices[0].turns")
    return refs


def _is_llm_jp_judge(path: Path) -> bool:
    return path.suffix == ".json"


def _is_csv(path: Path) -> bool:
    return path.suffix == ".csv"


def _id_field(path: Path) -> str:
    return "ID" if _is_llm_jp_judge(path) or _is_csv(path) else "question_id"


# Fields of a JSON or CSV row that are the question itself rather than one of its `fields`.
_OWN_FIELDS = frozenset({"ID", "text", "input", "output", "category"})


def _extra(row: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), v) for k, v in row.items() if k not in _OWN_FIELDS and isinstance(v, str) and k)


def _fastchat_question(row: dict[str, Any], where: str) -> Question:
    if "question_id" not in row:
        raise DatasetError(f"{where}: missing question_id")
    return Question(
        question_id=str(row["question_id"]),
        category=str(row.get("category") or "default"),
        turns=_strings(row.get("turns"), f"{where}: turns"),
    )


def _llm_jp_judge_question(row: dict[str, Any], where: str) -> Question:
    if "ID" not in row:
        raise DatasetError(f"{where}: missing ID")
    text = row.get("text")
    if not isinstance(text, str) or not text:
        raise DatasetError(f"{where}: text: expected a non-empty string")
    output = row.get("output")
    if output is not None and not isinstance(output, str):
        raise DatasetError(f"{where}: output: expected a string")
    return Question(
        question_id=str(row["ID"]),
        category=str(row.get("category") or "default"),
        turns=(text,),
        # An empty reference is no reference: the benchmarks that need one then say which is missing.
        references=(output,) if output else None,
        extra=_extra(row),
    )


def _csv_rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    # A spreadsheet's export may start with a byte-order mark, which would rename the first column.
    reader = csv.DictReader(io.StringIO(read_text(path).removeprefix("\ufeff"), newline=""))
    if not reader.fieldnames:
        raise DatasetError(f"{path}: no header row")
    text_column = next((c for c in ("input", "text") if c in reader.fieldnames), None)
    if text_column is None:
        raise DatasetError(f"{path}: no `input` (or `text`) column; columns: {reader.fieldnames}")
    try:
        for index, row in enumerate(reader):
            if None in row:
                raise DatasetError(f"{path}:{reader.line_num}: more values than the header has columns")
            yield index, {"text": row.pop(text_column) or ""} | {k: v or "" for k, v in row.items()}
    except csv.Error as exc:
        raise DatasetError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def _csv_question(index: int, row: dict[str, str], where: str) -> Question:
    text = row.get("text")
    if not text:
        raise DatasetError(f"{where}: input: expected a non-empty value")
    return Question(
        question_id=row.get("ID") or str(index),
        category=row.get("category") or "default",
        turns=(text,),
        references=(row["output"],) if row.get("output") else None,
        extra=_extra(row),
    )


def _read_questions(path: Path) -> Iterable[tuple[str, Question]]:
    """(where, question) for every question in `path`; `where` names the file and line or index."""
    if _is_llm_jp_judge(path):
        for index, row in _json_array(path):
            where = f"{path}[{index}]"
            yield where, _llm_jp_judge_question(row, where)
    elif _is_csv(path):
        for index, csv_row in _csv_rows(path):
            where = f"{path}[{index}]"
            yield where, _csv_question(index, csv_row, where)
    else:
        for number, row in _jsonl(path):
            where = f"{path}:{number}"
            yield where, _fastchat_question(row, where)


def load_questions(uri: str, source: DatasetSource, cache_dir: Path) -> tuple[Dataset, list[Question]]:
    root = locate(uri, cache_dir)
    question_path = _member(root, source.question_file)
    reference_path, warnings = _reference_file(uri, root, source, cache_dir)
    references = read_references(reference_path) if reference_path else {}

    questions: list[Question] = []
    seen: set[str] = set()
    for where, question in _read_questions(question_path):
        if question.question_id in seen:
            raise DatasetError(f"{where}: duplicate {_id_field(question_path)} {question.question_id}")
        seen.add(question.question_id)
        if question.references is None:
            question = replace(question, references=references.get(question.question_id))
        questions.append(question)
    if not questions:
        raise DatasetError(f"{question_path}: no questions")
    if references and not references.keys() & seen:
        # A reference file for another question set: judging against it would be judging nonsense.
        raise DatasetError(
            f"{_reference_field(source)}{reference_path}: none of its {len(references)} question_ids is "
            f"a question of {question_path} (its first: {next(iter(references))!r})"
        )
    files = [question_path] + ([reference_path] if reference_path else [])
    dataset = Dataset(
        uri=uri,
        root=root,
        digest=_digest(files),
        reference_file=reference_path,
        warnings=tuple(warnings),
    )
    return dataset, questions


def _reference_field(source: DatasetSource) -> str:
    return "dataset.referenceFile: " if source.reference_file else ""


def load_corpus(uri: str, source: DatasetSource, cache_dir: Path) -> tuple[Dataset, str]:
    root = locate(uri, cache_dir)
    path = _member(root, source.corpus_file)
    text = read_text(path)
    if not text.strip():
        raise DatasetError(f"{path}: corpus is empty")
    return Dataset(uri=uri, root=root, digest=_digest([path])), text


def _ids(ids: list[str], shown: int = 10) -> str:
    return ", ".join(ids[:shown]) + (f" ... ({len(ids) - shown} more)" if len(ids) > shown else "")


def reference_warnings(
    dataset: Dataset,
    questions: Iterable[Question],
    categories: Iterable[str],
    *,
    explicit: bool,
    limited: bool,
) -> list[str]:
    """What a benchmark that judges the questions of `categories` against their reference answers
    should tell the user; raises DatasetError for an explicit `referenceCategories` entry that names
    no category of the dataset (a typo would otherwise judge every question without its reference).

    `limited`: only the first `limit` questions were kept, so a category may be missing from them
    legitimately; the error is then a warning."""
    questions = list(questions)
    wanted = list(categories)
    present = sorted({q.category for q in questions})
    unmatched = [c for c in wanted if c not in present]
    warnings: list[str] = []
    if explicit and unmatched:
        message = f"referenceCategories: {unmatched} match no question category of {dataset.uri}"
        if not limited:
            raise DatasetError(f"{message} (its categories: {present})")
        warnings.append(f"{message} among the first `limit` questions (their categories: {present})")
    missing = [q.question_id for q in questions if q.category in wanted and not q.references]
    if missing:
        where = (
            f"not in {dataset.reference_file}"
            if dataset.reference_file
            else "no reference file was found (dataset.referenceFile unset, no reference_answer/*.jsonl "
            "next to the questions)"
        )
        warnings.append(
            f"{len(missing)} question(s) of the reference categories have no reference answer ({where}) "
            f"and are judged without one: {_ids(missing)}"
        )
    unused = [q.question_id for q in questions if q.category not in wanted and q.references]
    if unused and not any(q.category in wanted and q.references for q in questions):
        warnings.append(
            f"{len(unused)} question(s) have a reference answer but none is in referenceCategories "
            f"{wanted}, so no reference is used (categories with references: "
            f"{sorted({q.category for q in questions if q.references})}): {_ids(unused)}"
        )
    return warnings
