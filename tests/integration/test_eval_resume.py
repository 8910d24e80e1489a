"""A run killed or stopped midway and resumed repeats no request for work it had finished."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from shinsa.evaluation.results import ExitCode, read_results
from support.openai_server import FakeOpenAI

pytestmark = pytest.mark.e2e


def item_key(record: dict[str, Any]) -> str:
    return "/".join(
        [
            record["benchmark"],
            record["question_id"],
            str(record["turn"]),
            str(record["repeat"]),
            record["judge"] or "generation",
        ]
    )


def checkpoint_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        # The line being written when the process was killed may be torn.
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def started_events(output: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in output.splitlines() if line.strip()]
    return [e for e in events if e["event"] == "benchmark started"]


def start_eval(config: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shinsa.commands.eval", "run", "--config", str(config), "--json-logs", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_killed_run_resumes_without_repeating_finished_requests(
    make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI, tmp_path: Path
) -> None:
    openai_double.latency_s = 0.05
    config = manifest_file(make_spec(concurrency=2, repeats=2))
    records_file = tmp_path / "results" / "checkpoint" / "records.jsonl"
    total = 6 * 2 * 2 * 2  # questions x turns x repeats x (generation + one judgment)

    first = start_eval(config)
    deadline = time.monotonic() + 60
    while len(checkpoint_records(records_file)) < 12:
        assert first.poll() is None, first.communicate()[0].decode()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()

    finished = {item_key(r) for r in checkpoint_records(records_file)}
    assert 12 <= len(finished) < total
    requested_before = set(openai_double.items_requested())
    judged = {key for key in finished if not key.endswith("/generation")}
    openai_double.reset()

    second = start_eval(config)
    output = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, output
    assert [e["resumed"] for e in started_events(output)] == [len(judged)]

    # Every request the resumed run sent was for unfinished work, each sent once (no faults, no retries).
    assert openai_double.requests == total - len(finished)
    requested_after = set(openai_double.items_requested())
    assert requested_after.isdisjoint(finished)
    assert requested_before | requested_after >= {item_key(r) for r in checkpoint_records(records_file)}
    assert len({item_key(r) for r in checkpoint_records(records_file)}) == total
    scores = read_results(tmp_path / "results")
    assert scores.status == "Succeeded" and scores.items == 6 * 2 * 2
    assert scores.reused_from_checkpoint == len(finished)

    # A third run has nothing left to do.
    openai_double.reset()
    third = start_eval(config)
    output = third.communicate(timeout=120)[0].decode()
    assert third.returncode == 0, output
    assert openai_double.requests == 0
    assert [e["resumed"] for e in started_events(output)] == [6 * 2 * 2]


def s3_records(bucket: str, prefix: str) -> list[dict[str, Any]]:
    s3 = boto3.client("s3")
    records = []
    for part in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=part["Key"])["Body"].read().decode()
        records.extend(json.loads(line) for line in body.splitlines() if line.strip())
    return records


def test_sigterm_flushes_an_s3_checkpoint_and_the_resumed_run_repeats_nothing(
    s3_server: str, make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI
) -> None:
    boto3.client("s3").create_bucket(Bucket="eval-runs")
    openai_double.latency_s = 0.05
    spec = make_spec(concurrency=2, repeats=2, engine={"checkpointUri": "s3://eval-runs/sigterm"})
    config = manifest_file(spec)
    total = 6 * 2 * 2 * 2  # questions x turns x repeats x (generation + one judgment)

    first = start_eval(config)
    deadline = time.monotonic() + 60
    # Well inside the first 2 s, before the periodic upload: only the flush on SIGTERM saves these.
    while openai_double.requests < 12:
        assert first.poll() is None, first.communicate()[0].decode()
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)
    first.send_signal(signal.SIGTERM)
    output = first.communicate(timeout=60)[0].decode()
    assert first.returncode == ExitCode.TERMINATED, output
    assert "terminated by SIGTERM" in output

    finished = {item_key(r) for r in s3_records("eval-runs", "sigterm/records-")}
    requested_before = set(openai_double.items_requested())
    assert len(finished) < total
    # At most one request per slot (2 on the model, 2 on the judge) was still unanswered.
    assert len(requested_before - finished) <= 4
    openai_double.reset()

    second = start_eval(config)
    output = second.communicate(timeout=120)[0].decode()
    assert second.returncode == 0, output
    assert openai_double.requests == total - len(finished)
    assert set(openai_double.items_requested()).isdisjoint(finished)
    assert len({item_key(r) for r in s3_records("eval-runs", "sigterm/records-")}) == total


def test_no_resume_starts_over(make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI) -> None:
    config = manifest_file(make_spec(repeats=1))
    assert start_eval(config).wait(timeout=120) == 0
    first_count = openai_double.requests
    openai_double.reset()
    assert start_eval(config, "--no-resume").wait(timeout=120) == 0
    assert openai_double.requests == first_count


def test_changed_settings_do_not_reuse_stale_answers(
    make_spec: Any, manifest_file: Any, openai_double: FakeOpenAI
) -> None:
    assert start_eval(manifest_file(make_spec(repeats=1))).wait(timeout=120) == 0
    openai_double.reset()
    changed = make_spec(repeats=1, sampling={"temperature": 0.5})
    assert start_eval(manifest_file(changed)).wait(timeout=120) == 0
    assert openai_double.count(target="model") == 12
