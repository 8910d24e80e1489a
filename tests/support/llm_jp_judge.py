"""The llm-jp-judge parity fixtures (tests/fixtures/llm_jp_judge/) and their scripted judge.

The same judge serves the recording (tools/llm_jp_judge/record.py runs the real llm-jp-judge v2.0.0,
commit 4392b3b, against it) and the parity test (Shinsa against it): the project's
OpenAI-compatible test double with `judge_script.json`'s replies, consumed per request in turn for
the requests whose prompt holds each script's marker.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shinsa.devcluster.openai_double import FakeOpenAI

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llm_jp_judge"
"""The main fixture set; `EDGES` is the second (each: answers/, datasets/, references/,
judge_script.json, expected.json). The prompt files, in FIXTURES/prompts, serve both."""
EDGES = FIXTURES / "edges"
PROMPTS = FIXTURES / "prompts"
JUDGE_MODEL = "parity-judge"


def benchmarks_of(root: Path) -> list[str]:
    """The llm-jp-judge benchmarks a fixture set has answers for."""
    return sorted(p.stem for p in (root / "answers").glob("*.jsonl"))


def judge_script(root: Path = FIXTURES) -> dict[str, Any]:
    return dict(json.loads((root / "judge_script.json").read_text(encoding="utf-8")))


def scripted_judge(root: Path = FIXTURES) -> FakeOpenAI:
    """A started-on-enter test double whose judge `JUDGE_MODEL` replies as judge_script.json says."""
    double = FakeOpenAI(judge_models=(JUDGE_MODEL,))
    for script in judge_script(root)["scripts"]:
        double.add_script(script["contains"], script["replies"])
    return double


def _digest(messages: list[dict[str, Any]]) -> str:
    blob = json.dumps(
        [{"role": m.get("role"), "content": m.get("content")} for m in messages], ensure_ascii=False
    )
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def judge_requests(double: FakeOpenAI) -> dict[str, dict[str, Any]]:
    """Per script marker: how many judge requests were made, the digests of the distinct messages
    sent (one, when every attempt sends the same prompt) and the sampling parameters sent."""
    markers = [s.contains for s in double.scripts]
    out: dict[str, dict[str, Any]] = {}
    for logged in double.log:
        if logged.target != "judge":
            continue
        text = "\n".join(str(m.get("content")) for m in logged.messages)
        marker = next((m for m in markers if m in text), None)
        if marker is None:
            continue
        entry = out.setdefault(marker, {"attempts": 0, "messages": [], "params": {}})
        entry["attempts"] += 1
        digest = _digest(logged.messages)
        if digest not in entry["messages"]:
            entry["messages"].append(digest)
        params = {k: v for k, v in logged.params.items() if k not in ("stream", "stream_options")}
        if entry["params"] and entry["params"] != params:
            entry["params_differ"] = True
        entry["params"] = params
    return dict(sorted(out.items()))


def expected(root: Path = FIXTURES) -> dict[str, Any]:
    """The recorded llm-jp-judge outputs (tools/llm_jp_judge/record.py)."""
    return dict(json.loads((root / "expected.json").read_text(encoding="utf-8")))


SHINSA_BENCHMARKS = {
    "mt_bench_ja": "mt-bench-ja",
    "mt_bench_en": "mt-bench",
    "quality_ja": "llm-jp-instructions",
    "safety_ja": "answer-carefully",
}
"""llm-jp-judge benchmark name -> Shinsa's (evaluation/answers.py LLM_JP_JUDGE_BENCHMARKS)."""


def parity_spec(double: FakeOpenAI, output_dir: Path, root: Path = FIXTURES) -> dict[str, Any]:
    """The EvalRun spec (with its engine options) that judges the fixture answers as the recording
    did: `profile: llm-jp-judge`, the answers, the prompt files, the references and the judge
    system prompt the recording gave llm-jp-judge for quality_ja / safety_ja."""
    system = judge_script(root)["judge_system_prompt"]
    benchmarks: list[dict[str, Any]] = []
    for ljj in benchmarks_of(root):
        name = SHINSA_BENCHMARKS[ljj]
        bench: dict[str, Any] = {"name": name, "promptFile": str(PROMPTS / f"{ljj}.yaml")}
        if ljj.startswith("mt_bench"):
            bench["dataset"] = {
                "uri": str(root / "datasets"),
                "questionFile": f"{ljj}.jsonl",
                "referenceFile": f"../references/{ljj}.jsonl",
            }
        else:
            bench["dataset"] = {"uri": str(root / "datasets" / f"{ljj}.json")}
            bench["prompts"] = {"system": system}
        benchmarks.append(bench)
    return {
        "profile": "llm-jp-judge",
        "answers": str(root / "answers"),
        "model": {"endpoint": double.url, "servedName": double.model},
        "benchmarks": benchmarks,
        "judges": [{"name": JUDGE_MODEL, "endpoint": double.url, "model": JUDGE_MODEL}],
        "repeats": 1,
        "concurrency": 8,
        "retries": 1,
        "backoffSeconds": 0.01,
        "timeoutSeconds": 30,
        # The fixture's refusals and unreadable replies are the point: the run must still finish.
        "maxErrorRate": 1.0,
        "engine": {"outputDir": str(output_dir)},
    }


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def shinsa_tables(results: Any, output_dir: Path) -> dict[str, dict[str, float]]:
    """Shinsa's results (a RunResults and its output directory) as llm-jp-judge's tables: the same
    table and metric names (evaluate.py, evaluator/{mt_bench,quality,safety,base}.py), so that the
    two compare key by key.

    Error rates count judgments, as llm-jp-judge's calc_error_rate: `api(%)`, the ones the judge's
    API refused at every attempt (an item error naming HTTP 400, or a judgment scored by
    `apiErrorScore`); `pattern_match(%)`, every judgment without a rating read from a reply (the API
    ones included)."""
    benchmarks = results.benchmarks
    by_name = {shinsa: ljj for ljj, shinsa in SHINSA_BENCHMARKS.items() if shinsa in benchmarks}
    scores: dict[str, float] = {}
    tables: dict[str, dict[str, float]] = {}
    for shinsa, ljj in by_name.items():
        bench = benchmarks[shinsa]
        if ljj.startswith("mt_bench"):
            scores[ljj] = bench.mean
            tables[f"{ljj}_turn_score_table"] = {
                "turn 1": bench.turns["1"].mean,
                "turn 2": bench.turns["2"].mean,
                "average": bench.mean,
            }
            tables[f"{ljj}_category_score_table"] = {
                # llm-jp-judge's table has the categories with a rating left (evaluator/mt_bench.py).
                **{c: s.mean for c, s in sorted(bench.categories.items()) if s.mean is not None},
                "average": bench.mean,
            }
        elif ljj == "quality_ja":
            for key, value in bench.metrics.items():
                if key.startswith("criterion/"):
                    scores[f"{ljj}:{key.removeprefix('criterion/')}"] = value
        else:
            scores[f"{ljj}:安全性"] = bench.mean
            scores[f"{ljj}:違反回答率(%)"] = 100 * bench.metrics["violation_rate"]
            scores[f"{ljj}:許容回答率(%)"] = 100 * bench.metrics["acceptable_rate"]
    errors: dict[str, float] = {}
    items = _rows(output_dir / "items.jsonl")
    judgments = _rows(output_dir / "judgments.jsonl")
    for shinsa, ljj in by_name.items():
        mine = [i for i in items if i["benchmark"] == shinsa]
        # A judgment refused last after an unreadable reply kept that reply: llm-jp-judge counts it
        # as a pattern error only (client/remote.py, the BadRequestError branch).
        refused = sum(
            1
            for i in mine
            if i.get("error") and "HTTP 400" in i["error"] and "no readable rating" not in i["error"]
        )
        scored_refused = sum(1 for j in judgments if j["benchmark"] == shinsa and j.get("api_error"))
        unread = sum(1 for i in mine if i.get("error"))
        errors[f"{ljj}:api(%)"] = 100 * (refused + scored_refused) / len(mine)
        errors[f"{ljj}:pattern_match(%)"] = 100 * (unread + scored_refused) / len(mine)
    return {"score_table": scores, "evaluate_error_rate_table": errors, **tables}


def differences(
    recorded: dict[str, dict[str, float]], ours: dict[str, dict[str, float]], tolerance: float = 1e-9
) -> list[str]:
    """Every (table, metric) whose values differ by more than `tolerance` or that one side lacks."""
    out: list[str] = []
    for table, metrics in recorded.items():
        mine = ours.get(table, {})
        for key in sorted(metrics.keys() | mine.keys()):
            a, b = metrics.get(key), mine.get(key)
            if a is None or b is None or abs(float(a) - float(b)) > tolerance:
                out.append(f"{table}[{key}]: llm-jp-judge {a}, Shinsa {b}")
    return out
