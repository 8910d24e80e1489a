"""`shinsa eval run` end to end, process start included, against a bare asyncio loop; and `--help` times.

The work is MT-Bench JA-sized: 80 two-turn questions x 3 repeats, every turn judged by one judge
(480 generations + 480 judgments), on the project's own synthetic dataset (`bench_eval_mtbench`'s).
Model and judge are two instances of the test double, each with a 1 s service time and at most 64
requests at once, as a GPU server with a batch limit behaves; each runs in a process of its own
(in one process, the two servers' threads share one interpreter lock and could not keep up).

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
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_eval_mtbench import JUDGE_MODEL, _paced, make_config, write_dataset
from shinsa.evaluation.benchmarks.mt_bench import MtBench
from shinsa.evaluation.config import load_config
from shinsa.evaluation.runner import build_benchmarks

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


@contextlib.contextmanager
def served(model: str, latency: float, concurrency: int) -> Iterator[SimpleNamespace]:
    """The test double as a process of its own, serving `model` (and the judge models)."""
    argv = [sys.executable, "-m", "shinsa.devcluster.openai_double", "--port", "0", "--model", model]
    argv += ["--latency", str(latency), "--max-concurrency", str(concurrency)]
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().split()[1]  # "serving http://127.0.0.1:PORT/v1 (model ...)"
        yield SimpleNamespace(url=url, model=model)
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_shinsa(config_file: Path, out: Path) -> tuple[float, dict[str, int]]:
    wall = _timed([str(SHINSA), "eval", "run", "--config", str(config_file)])
    return wall, dict(json.loads((out / "scores.json").read_text(encoding="utf-8"))["requests"])


def floor_loop(config_file: Path, cache: Path) -> float:
    """The bare loop over the config's request graph, in this process; its wall time."""
    config = load_config(config_file)
    benchmark = build_benchmarks(config)[0]
    assert isinstance(benchmark, MtBench)
    benchmark.load(cache)
    model = SimpleNamespace(url=config.endpoint.rstrip("/"), model=config.served_name)
    judge = SimpleNamespace(url=str(config.spec.judges[0].endpoint).rstrip("/"))
    started = time.perf_counter()
    stand_in: Any = model  # _paced reads only the servers' url and model
    repeats, in_flight = config.spec.repeats, config.spec.concurrency
    asyncio.run(_paced(benchmark, benchmark.questions, repeats, stand_in, judge, 0.0, in_flight))
    return time.perf_counter() - started


def run_floor(config_file: Path, cache: Path) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--floor-of", str(config_file), "--cache", str(cache)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(json.loads(out.splitlines()[-1])["wall_s"])


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

    with (
        tempfile.TemporaryDirectory() as tmp,
        served("model-under-test", args.latency, args.concurrency) as model,
        served("judge-host", args.latency, args.concurrency) as judge,
    ):
        data = write_dataset(Path(tmp) / "mt-bench", args.questions)
        stand_in: Any = model  # make_config reads only the servers' url and model
        config = make_config(data, stand_in, judge, args.repeats, args.concurrency, Path(tmp) / "out")
        config_file = Path(tmp) / "evalrun.yaml"
        spec = config.model_dump(mode="json", by_alias=True)
        config_file.write_text(yaml.safe_dump(spec), encoding="utf-8")
        shinsa_wall, requests = run_shinsa(config_file, Path(tmp) / "out")
        floor_wall = run_floor(config_file, Path(tmp) / "cache")
    helps = help_times(args.help_runs)

    graph = args.questions * 2 * args.repeats
    print(
        f"MT-Bench JA-sized: {args.questions} questions x 2 turns x {args.repeats} repeats + judging "
        f"({JUDGE_MODEL}); service time {args.latency:g} s, {args.concurrency} at once per endpoint"
    )
    print("| run | requests (model + judge) | wall (s) |")
    print("|---|---|---|")
    print(f"| `shinsa eval run`, process start included | {requests} | {shinsa_wall:.2f} |")
    print(f"| bare asyncio loop (floor) | {2 * graph} ({graph} + {graph}) | {floor_wall:.2f} |")
    print(f"server-bound ideal: {graph / args.concurrency * args.latency:.1f} s per endpoint")
    print(f"ratio shinsa / floor: {shinsa_wall / floor_wall:.2f} (target <= 1.3)")
    print()
    print(f"| command | median wall (s) of {args.help_runs} | / typer floor |")
    print("|---|---|---|")
    base = helps["typer app --help (floor)"]
    for name, value in helps.items():
        print(f"| `{name}` | {value:.3f} | {value / base:.2f} |")
    if sum(requests.values()) != 2 * graph:
        raise SystemExit(f"request counts differ: shinsa {requests}, the graph {2 * graph}")


if __name__ == "__main__":
    main()
