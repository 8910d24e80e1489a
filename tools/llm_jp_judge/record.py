"""Records tests/fixtures/llm_jp_judge/{,edges/}expected.json from real llm-jp-judge runs (by hand, not CI).

Runs llm-jp-judge v2.0.0 (commit 4392b3b) `python -m llm_jp_judge.evaluate` on the fixture answers
(answers/ of each fixture set, its generation-output layout) with the fixture prompt files
and references, against the scripted judge of tests/support/llm_jp_judge.py on 127.0.0.1, and
writes what it reported: score_table.json and evaluate_error_rate_table.json (metric names and
numbers only), the MT-Bench turn and category tables, and per judge-prompt marker the number of
requests, the digest of the messages and the sampling parameters it sent.

    .venv/bin/python tools/llm_jp_judge/record.py --ljj-python /tmp/ljj-venv/bin/python \
        --ljj-src /tmp/ljj-src/src

See tools/llm_jp_judge/README.md for setting up the scratch venv.
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

from tests.support.llm_jp_judge import (  # noqa: E402
    EDGES,
    FIXTURES,
    JUDGE_MODEL,
    PROMPTS,
    benchmarks_of,
    judge_requests,
    judge_script,
    scripted_judge,
)

COMMIT = "4392b3b"


def _overrides(url: str, conf: Path, out: Path, root: Path, system_prompt: str) -> list[str]:
    args = [
        "client=openai",
        f"client.base_url={url}",
        f"client.model_name={JUDGE_MODEL}",
        "client.api_key=parity-test-key",
        "client.async_request_interval=0",
        f"input.dir={root / 'answers'}",
        f"output.dir={out}",
        f"hydra.run.dir={out / 'hydra'}",
        f"hydra.searchpath=[file://{conf}]",
    ]
    for name in benchmarks_of(root):
        # Replaces the benchmark's prompt-file default (config/benchmark/evaluate.yaml's defaults list).
        args.append(f"benchmark/prompt/evaluate@benchmark.{name}.prompt_template=parity_{name}")
    for name in benchmarks_of(root):
        if name.startswith("mt_bench"):
            args.append(f"benchmark.{name}.reference.path={root / 'references' / (name + '.jsonl')}")
        else:
            args.append(f"benchmark.{name}.system_prompt='{system_prompt}'")
    return args


def _table(path: Path) -> dict[str, object]:
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert len(rows) == 1, path
    return {k: v for k, v in rows[0].items() if k not in ("generation_model", "evaluation_model")}


def _check_prompts(out: Path, root: Path) -> None:
    """Fails unless llm-jp-judge judged with the fixture prompt files (not its own defaults)."""
    import yaml

    for name in benchmarks_of(root):
        ours = yaml.safe_load((PROMPTS / f"{name}.yaml").read_text(encoding="utf-8"))
        rows = json.loads((out / f"{name}_raw_output_table.json").read_text(encoding="utf-8"))
        if name.startswith("mt_bench"):
            systems = {t["system_prompt"] for t in ours.values()}
            assert all(r["system prompt"] in systems for r in rows), name
        else:
            templates = [v for k, v in ours.items() if k.startswith("prompt_template")]
            prefixes = tuple(t[: t.index("{")] for t in templates)
            assert all(r["evaluation prompt"].startswith(prefixes) for r in rows), name


def record(ljj_python: str, ljj_src: str, root: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ljj-record-") as tmp:
        work = Path(tmp)
        conf = work / "conf" / "benchmark" / "prompt" / "evaluate"
        conf.mkdir(parents=True)
        for name in benchmarks_of(root):
            shutil.copy(PROMPTS / f"{name}.yaml", conf / f"parity_{name}.yaml")
        out = work / "out"
        with scripted_judge(root) as double:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
            env["PYTHONPATH"] = ljj_src
            cmd = [ljj_python, "-m", "llm_jp_judge.evaluate"]
            cmd += _overrides(double.url, work / "conf", out, root, judge_script(root)["judge_system_prompt"])
            # cwd: an empty directory, as llm-jp-judge loads a .env from it (client/remote.py).
            subprocess.run(cmd, cwd=work, env=env, check=True)
            requests = judge_requests(double)
        _check_prompts(out, root)
        tables = {
            "score_table": _table(out / "score_table.json"),
            "evaluate_error_rate_table": _table(out / "evaluate_error_rate_table.json"),
        }
        for name in (n for n in benchmarks_of(root) if n.startswith("mt_bench")):
            for kind in ("turn_score_table", "category_score_table"):
                tables[f"{name}_{kind}"] = _table(out / f"{name}_{kind}.json")
        return {
            "llm_jp_judge": {"version": "v2.0.0", "commit": COMMIT},
            **tables,
            "judge_requests": requests,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ljj-python", default="/tmp/ljj-venv/bin/python", help="the scratch venv's python")
    parser.add_argument("--ljj-src", default="/tmp/ljj-src/src", help="llm-jp-judge 4392b3b's src/ directory")
    args = parser.parse_args()
    for root in (FIXTURES, EDGES):
        result = record(args.ljj_python, args.ljj_src, root)
        path = root / "expected.json"
        path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
