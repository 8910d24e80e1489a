"""Records tests/fixtures/llm_jp_judge/rubric/expected.json from a real llm-jp-judge run (by hand).

Runs llm-jp-judge v2.0.0 (commit 4392b3b) `python -m llm_jp_judge.evaluate` on the rubric fixture
answers (culture_ja, safety_borderline_ja, safety_boundary_ja, its generation-output layout) with
the fixture prompt files, against the scripted judge of tests/support/llm_jp_judge_rubric.py, and
writes its score_table and evaluate_error_rate_table (metric names and numbers only) and, per
judge-prompt marker, the requests it made (count, message digests, sampling parameters).

    .venv/bin/python tools/llm_jp_judge/record_rubric.py --ljj-python /tmp/ljj-venv/bin/python \
        --ljj-src /tmp/ljj-src/src

The scratch venv is set up as tools/llm_jp_judge/README.md says.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "operator")]

from tests.support.llm_jp_judge import judge_requests  # noqa: E402
from tests.support.llm_jp_judge_rubric import (  # noqa: E402
    ANSWERS,
    BENCHMARKS,
    EXPECTED,
    JUDGE_MODEL,
    PROMPTS,
    judge_script,
    scripted_judge,
)

COMMIT = "4392b3b"


def _overrides(url: str, conf: Path, out: Path, system_prompt: str) -> list[str]:
    args = [
        "client=openai",
        f"client.base_url={url}",
        f"client.model_name={JUDGE_MODEL}",
        "client.api_key=parity-test-key",
        "client.async_request_interval=0",
        f"input.dir={ANSWERS}",
        f"output.dir={out}",
        f"hydra.run.dir={out / 'hydra'}",
        f"hydra.searchpath=[file://{conf}]",
    ]
    for name in BENCHMARKS:
        args.append(f"benchmark/prompt/evaluate@benchmark.{name}.prompt_template=parity_{name}")
    # safety_boundary_ja reads its Jinja2 template from prompt_template.path (relative paths are
    # taken from the working directory, so give it absolute).
    args.append(f"benchmark.safety_boundary_ja.prompt_template.path={PROMPTS / 'safety_boundary_ja.j2'}")
    # culture_ja and safety_borderline_ja send their benchmark's system_prompt to the judge;
    # safety_boundary_ja has none (null), as llm-jp-judge's evaluate.yaml sets it.
    for name in ("culture_ja", "safety_borderline_ja"):
        args.append(f"benchmark.{name}.system_prompt='{system_prompt}'")
    return args


def _table(path: Path) -> dict[str, object]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert len(rows) == 1, path
    return {k: v for k, v in rows[0].items() if k not in ("generation_model", "evaluation_model")}


def record(ljj_python: str, ljj_src: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ljj-record-rubric-") as tmp:
        work = Path(tmp)
        conf = work / "conf" / "benchmark" / "prompt" / "evaluate"
        conf.mkdir(parents=True)
        for name in BENCHMARKS:
            shutil.copy(PROMPTS / f"{name}.yaml", conf / f"parity_{name}.yaml")
        out = work / "out"
        with scripted_judge() as double:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
            env["PYTHONPATH"] = ljj_src
            cmd = [ljj_python, "-m", "llm_jp_judge.evaluate"]
            cmd += _overrides(double.url, work / "conf", out, judge_script()["judge_system_prompt"])
            # cwd: an empty directory, as llm-jp-judge loads a .env from it (client/remote.py).
            subprocess.run(cmd, cwd=work, env=env, check=True)
            requests = judge_requests(double)
        unmatched = [m for m in (s["contains"] for s in judge_script()["scripts"]) if m not in requests]
        assert not unmatched, f"judge script markers llm-jp-judge never sent: {unmatched}"
        return {
            "llm_jp_judge": {"version": "v2.0.0", "commit": COMMIT},
            "score_table": _table(out / "score_table.json"),
            "evaluate_error_rate_table": _table(out / "evaluate_error_rate_table.json"),
            "judge_requests": requests,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ljj-python", default="/tmp/ljj-venv/bin/python", help="the scratch venv's python")
    parser.add_argument("--ljj-src", default="/tmp/ljj-src/src", help="llm-jp-judge 4392b3b's src/ directory")
    args = parser.parse_args()
    result = record(args.ljj_python, args.ljj_src)
    EXPECTED.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {EXPECTED}")


if __name__ == "__main__":
    main()
