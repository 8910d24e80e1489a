"""The checkpoint remembers finished work across restarts, and only for the settings that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shinsa.evaluation.checkpoint import Checkpoint

pytestmark = pytest.mark.unit


def generation(question: str, fingerprint: str = "fp1", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "generation",
        "benchmark": "mt-bench",
        "question_id": question,
        "turn": 1,
        "repeat": 0,
        "judge": "",
        "fingerprint": fingerprint,
        "answer": f"answer to {question}",
        **extra,
    }


def test_records_survive_a_reopen(tmp_path: Path) -> None:
    first = Checkpoint.open(str(tmp_path / "ckpt"))
    first.put(generation("q1"))
    first.put(generation("q2"))
    # Not closed: a killed process does not get to close its files either.
    again = Checkpoint.open(str(tmp_path / "ckpt"))
    assert len(again) == 2
    found = again.get("generation", "mt-bench", "q1", 1, 0, "", "fp1")
    assert found is not None and found["answer"] == "answer to q1"


def test_records_from_other_settings_are_not_reused(tmp_path: Path) -> None:
    ckpt = Checkpoint.open(str(tmp_path))
    ckpt.put(generation("q1", fingerprint="old-model"))
    reopened = Checkpoint.open(str(tmp_path))
    assert reopened.get("generation", "mt-bench", "q1", 1, 0, "", "new-model") is None


def test_a_torn_last_line_is_skipped_and_appending_continues_cleanly(tmp_path: Path) -> None:
    ckpt = Checkpoint.open(str(tmp_path))
    ckpt.put(generation("q1"))
    ckpt.close()
    with (tmp_path / "records.jsonl").open("a") as handle:
        handle.write('{"kind": "generation", "benchmark": "mt-be')
    reopened = Checkpoint.open(str(tmp_path))
    assert reopened.skipped_lines == 1 and len(reopened) == 1
    reopened.put(generation("q2"))
    reopened.close()
    final = Checkpoint.open(str(tmp_path))
    assert len(final) == 2 and final.skipped_lines == 1


def test_no_resume_starts_empty_and_keeps_the_old_file(tmp_path: Path) -> None:
    ckpt = Checkpoint.open(str(tmp_path))
    ckpt.put(generation("q1"))
    ckpt.close()
    fresh = Checkpoint.open(str(tmp_path), resume=False)
    assert len(fresh) == 0
    assert len(list(tmp_path.glob("records.*.jsonl.old"))) == 1
