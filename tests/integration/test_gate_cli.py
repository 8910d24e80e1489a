"""`shinsa gate`, as a process, on results that real evaluations wrote: two models served by the
OpenAI-compatible test double, one whose answers its judge rates higher."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import ExitCode, read_results
from shinsa.evaluation.runner import run_evaluation

pytestmark = pytest.mark.e2e


def evaluate(spec: dict[str, Any]) -> Path:
    result = asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))
    assert result.exit_code == ExitCode.OK
    return Path(spec["engine"]["outputDir"])


def gate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shinsa.cli", "gate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )


@pytest.fixture
def evaluated(make_graded_spec: Any, tmp_path: Path) -> dict[str, Path]:
    return {
        name: evaluate(make_graded_spec(name, tmp_path / name)) for name in ("plain-model", "better-model")
    }


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "gates.yaml"
    rules: list[dict[str, Any]] = [
        {"type": "superiority", "benchmark": "mt-bench"},
        {"type": "maxErrorRate", "limit": 0.05},
    ]
    path.write_text(yaml.safe_dump({"minPairs": 20, "rules": rules}), encoding="utf-8")
    return path


def test_the_better_model_passes_superiority_over_the_plain_one(
    evaluated: dict[str, Path], policy: Path
) -> None:
    better, plain = read_results(evaluated["better-model"]), read_results(evaluated["plain-model"])
    assert better.benchmarks["mt-bench"].mean > plain.benchmarks["mt-bench"].mean  # type: ignore[operator]

    done = gate("--candidate", evaluated["better-model"], "--baseline", evaluated["plain-model"],
                "--policy", policy, "-o", "json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    decision = json.loads(done.stdout)
    assert decision["decision"] == "Passed"
    superiority = decision["rules"][0]
    assert superiority["verdict"] == "Passed" and superiority["n_pairs"] == 30
    assert superiority["ci_low"] > 0
    assert "could not be checked" not in superiority["explanation"]


def test_the_reverse_pair_fails_and_says_so_in_the_table(evaluated: dict[str, Path], policy: Path) -> None:
    done = gate("-c", evaluated["plain-model"], "-b", evaluated["better-model"], "-p", policy)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Decision: Failed" in done.stdout
    assert "plain-model vs better-model" in done.stdout


def test_items_jsonl_alone_decides_too_and_says_provenance_was_not_checked(
    evaluated: dict[str, Path], policy: Path
) -> None:
    done = gate("-c", evaluated["better-model"] / "items.jsonl", "-b", evaluated["plain-model"],
                "-p", policy, "-o", "json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    superiority = json.loads(done.stdout)["rules"][0]
    assert superiority["verdict"] == "Passed"
    assert "could not be checked: the candidate results do not record them" in superiority["explanation"]


def test_a_bad_policy_exits_2_before_reading_anything(evaluated: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n- type: minimum\n  benchmark: mt-bench\n", encoding="utf-8")
    done = gate("-c", evaluated["better-model"], "-p", bad)
    assert done.returncode == 2
    assert "threshold is required" in done.stderr
