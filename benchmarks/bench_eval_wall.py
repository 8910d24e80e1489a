"""`shinsa eval run` end to end, process start included, against a bare asyncio loop; and `--help` times.

The work is MT-Bench JA-sized: 80 two-turn questions x 3 repeats, every turn judged by one judge
(480 generations + 480 judgments), on the project's own synthetic dataset (`bench_eval_mtbench`'s).
Model and judge are two instances of the test double, each with a 1 s service time and at most 64
requests at once, as a GPU server with a batch limit behaves.

- **shinsa**: `shinsa eval run --config ...` as a user runs it, in its own process: interpreter start,
  imports, config and dataset load, preflight, the requests, statistics, output files and plots.
- **floor**: the same request graph (turn 2 after turn 1, each judgment after the answer it
  judges, the same judge prompts) driven by a bare asyncio loop over one httpx client, no pacing,
  at most `concurrency` (64) requests at once per endpoint as the engine holds them, in a process
  of its own as `shinsa eval run` is (the servers' threads keep this one busy). Its wall time is
  the loop's alone, without process start: what the servers allow and nothing else.

The ratio shinsa / floor is the figure (target <= 1.3); both run in the same session on the same
servers, so the machine's noise cancels out. The `--help` part times `shinsa --help` and
`shinsa eval run --help` against a one-command Typer app's `--help` (the floor any Typer CLI pays),
median of `--help-runs`.

    .venv/bin/python benchmarks/bench_eval_wall.py
    .venv/bin/python benchmarks/bench_eval_wall.py --questions 20 --help-runs 3   # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_eval_mtbench import JUDGE_MODEL, Measured, _paced, make_config, write_dataset
from shinsa.evaluation.benchmarks.mt_bench import MtBench
from shinsa.evaluation.config import load_config
from shinsa.evaluation.runner import build_benchmarks
from support.openai_server import FakeOpenAI

SHINSA = Path(sys.executable).with_name("shinsa")

_TYPER_FLOOR = textwrap.dedent(
    '''
    import typer
    app = typer.Typer()
    @app.command()
    def run(count: int = 1) -> None:
        """One command."""
    app()
    '''
)


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def help_times(runs: int) -> dict[str, float]:
    """Median wall time of each `--help`, interleaved so drift in load hits all of them alike."""
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp) / "floor.py"
        floor.write_text(_TYPER_FLOOR, encoding="utf-8")
        argvs = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "typer app --help (floor)": [sys.executable, str(floor), "--help"],
            "shinsa --help": [str(SHINSA), "--help"],
            "shinsa eval run --help": [str(SHINSA), "eval", "run", "--help"],
        }
        samples: dict[str, list[float]] = {name: [] for name in argvs}
        for _ in range(runs):
            for name, argv in argvs.items():
                samples[name].append(_timed(argv))
    return {name: statistics.median(values) for name, values in samples.items()}


def run_shinsa(config_file: Path, model: FakeOpenAI, judge: FakeOpenAI) -> tuple[float, int, int]:
    model.reset()
    judge.reset()
    wall = _timed([str(SHINSA), "eval", "run", "--config", str(config_file)])
    return wall, model.count(target="model"), judge.count(target="judge")


def floor_loop(config_file: Path, cache: Path) -> float:
    """The bare loop over the config's request graph, in this process; its wall time."""
    config = load_config(config_file)
    benchmark = build_benchmarks(config)[0]
    assert isinstance(benchmark, MtBench)
    benchmark.load(cache)
    model = SimpleNamespace(url=config.endpoint.rstrip("/"), model=config.served_name)
    judge = SimpleNamespace(url=str(config.spec.judges[0].endpoint).rstrip("/"))
    started = time.perf_counter()
    servers: Any = (model, judge)  # _paced reads only their url and model
    asyncio.run(
        _paced(benchmark, benchmark.questions, config.spec.repeats, *servers, 0.0, config.spec.concurrency)
    )
    return time.perf_counter() - started


def run_floor(config_file: Path, cache: Path, model: FakeOpenAI, judge: FakeOpenAI) -> Measured:
    model.reset()
    judge.reset()
    out = subprocess.run(
        [sys.executable, __file__, "--floor-of", str(config_file), "--cache", str(cache)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = float(json.loads(out.splitlines()[-1])["wall_s"])
    return Measured(wall, model.count(target="model"), judge.count(target="judge"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0, help="server service time per request (s)")
    parser.add_argument("--concurrency", type=int, default=64, help="server batch limit = engine concurrency")
    parser.add_argument("--help-runs", type=int, default=7)
    parser.add_argument("--floor-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_of:
        print(json.dumps({"wall_s": floor_loop(args.floor_of, args.cache)}))
        return

    def server(name: str) -> FakeOpenAI:
        return FakeOpenAI(
            model=name, latency_s=args.latency, max_concurrency=args.concurrency, keep_messages=False
        )

    with (
        tempfile.TemporaryDirectory() as tmp,
        server("model-under-test") as model,
        server("judge-host") as judge,
    ):
        data = write_dataset(Path(tmp) / "mt-bench", args.questions)
        config = make_config(data, model, judge, args.repeats, args.concurrency, Path(tmp) / "out")
        config_file = Path(tmp) / "evalrun.yaml"
        config_file.write_text(
            yaml.safe_dump(config.model_dump(mode="json", by_alias=True)), encoding="utf-8"
        )
        shinsa_wall, model_requests, judge_requests = run_shinsa(config_file, model, judge)
        floor = run_floor(config_file, Path(tmp) / "cache", model, judge)
    helps = help_times(args.help_runs)

    n = model_requests + judge_requests
    print(
        f"MT-Bench JA-sized: {args.questions} questions x 2 turns x {args.repeats} repeats + judging "
        f"({JUDGE_MODEL}); service time {args.latency:g} s, {args.concurrency} at once per endpoint"
    )
    print("| run | requests (model + judge) | wall (s) |")
    print("|---|---|---|")
    print(
        f"| `shinsa eval run`, process start included | {n} ({model_requests} + {judge_requests}) "
        f"| {shinsa_wall:.2f} |"
    )
    print(
        f"| bare asyncio loop (floor) | {floor.requests} ({floor.model_requests} + {floor.judge_requests}) "
        f"| {floor.wall_s:.2f} |"
    )
    print(f"ratio shinsa / floor: {shinsa_wall / floor.wall_s:.2f} (target <= 1.3)")
    print()
    print(f"| command | median wall (s) of {args.help_runs} | / typer floor |")
    print("|---|---|---|")
    base = helps["typer app --help (floor)"]
    for name, value in helps.items():
        print(f"| `{name}` | {value:.3f} | {value / base:.2f} |")
    if n != floor.requests:
        raise SystemExit(f"request counts differ: shinsa {n}, floor {floor.requests}")


if __name__ == "__main__":
    main()
