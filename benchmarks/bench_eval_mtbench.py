"""MT-Bench-sized evaluation: Shinsa's engine against a client paced to one request start per 0.5 s.

The work is what the LLM-jp-4 report's MT-Bench evaluation asks for: 80 two-turn questions, 3 repeats,
every turn judged by one judge, i.e. 80 x 2 x 3 = 480 generations and 480 judgments. The dataset is
synthetic (the project's own text, in the FastChat / llm-jp-judge layout, with reference answers for
math, reasoning and coding) and is written to a temporary directory.

Two servers (the test double, `tests/support/openai_server.py`) stand in for the model and the judge,
each with a fixed service time (`--latency`) and a batch limit (`--concurrency`).

- **Shinsa**: the real engine (`run_evaluation`, repeats 3, one judge, `concurrency` per endpoint).
- **Paced baseline**: the same request graph (turn 2 after turn 1, each judgment after the generation
  it judges, same prompts) driven by a small asyncio scheduler that lets one request *start* every
  `--pace` seconds, FIFO. This is what llm-jp-judge does by default: its OpenAI client
  (`config/client/openai.yaml`, `async_request_interval: 0.5`) delays item k by interval x turns and
  sleeps the interval between turns. llm-jp-judge also runs generation and judging as separate phases;
  the baseline here does not wait between phases, so it is the *fastest* paced schedule, and the
  speed-up it reports is a lower bound.

Running the paced baseline at 0.5 s over 960 requests takes 8 minutes, so by default:

1. the engine runs at the real latency (`--latency`, default 0.2 s);
2. the paced baseline runs over the *full* graph with pace and latency both multiplied by
   `--time-scale` (default 0.1: 0.05 s pace, 0.02 s latency); its wall time divided by the scale is
   reported as the real-time equivalent. Pacing dominates that schedule (one start per pace, nothing
   else waits), so it scales linearly; the model is wall = (requests - 1) x pace + latency;
3. a short paced sample at the real pace and latency (`--sample-questions` questions, 1 repeat)
   checks that model against the clock.

`--time-scale 1` runs the paced baseline at the real pace (about 8 minutes at the defaults).

    .venv/bin/python benchmarks/bench_eval_mtbench.py
    .venv/bin/python benchmarks/bench_eval_mtbench.py --latency 1.0 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shinsa.evaluation.benchmarks.mt_bench import MtBench
from shinsa.evaluation.config import EvalConfig, parse_config
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import BenchmarkResult
from shinsa.evaluation.runner import build_benchmarks, run_evaluation
from support.openai_server import FakeOpenAI

JUDGE_MODEL = "judge-a"
TURNS = 2
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
TOPICS = (
    "a lighthouse keeper",
    "a night train",
    "a community garden",
    "a paper map",
    "a rainy market",
    "an old bicycle",
    "a mountain hut",
    "a village library",
    "a harbour festival",
    "a snowed-in station",
)
NAMES = ("Aiko", "Ben", "Chiara", "Daisuke", "Elif", "Femi", "Goro", "Hana", "Ivan", "Jun")


# -- dataset -------------------------------------------------------------------------------------
def _question(category: str, k: int) -> tuple[list[str], list[str] | None]:
    """Two turns of the project's own text, and reference answers for the reference categories."""
    topic = TOPICS[k]
    a, b, c = NAMES[k], NAMES[(k + 3) % 10], NAMES[(k + 6) % 10]
    n = 3 + k
    if category == "writing":
        return [f"Write a short blog paragraph about {topic}.", "Rewrite it as a four-line poem."], None
    if category == "roleplay":
        return [
            f"Pretend you are {a}, who looks after {topic}. Greet a visitor.",
            "The visitor asks for advice about the weather. Answer in character.",
        ], None
    if category == "reasoning":
        return [
            f"{a} is older than {b}. {b} is older than {c}. Who is the youngest?",
            f"If {c} were older than {a}, who would be the oldest?",
        ], [c, c]
    if category == "math":
        return [
            f"What is {n} times {n + 1}?",
            f"Add {n} to that result and divide by {n}.",
        ], [str(n * (n + 1)), str((n * (n + 1) + n) // n)]
    if category == "coding":
        return [
            f"Write a Python function that returns the sum of the first {n} odd numbers.",
            "Generalise it to take the count as a parameter and reject negative counts.",
        ], [
            f"def f(): return {n * n}",
            "def f(k):\n    if k < 0: raise ValueError(k)\n    return k * k",
        ]
    if category == "extraction":
        return [
            f"From 'On day {n}, {a} sold {n * 2} lanterns at {topic}.', extract the name and count as JSON.",
            "Now add a field with the day number.",
        ], None
    if category == "stem":
        return [
            f"Explain in three sentences why sound travels faster in water than in air; mention {topic}.",
            "Give one everyday consequence of that.",
        ], None
    return [
        f"Describe one way {topic} could shape a small town's culture.",
        "Name a historical parallel and explain it briefly.",
    ], None


def write_dataset(root: Path, questions: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows, refs = [], []
    for i in range(questions):
        category = CATEGORIES[i % len(CATEGORIES)]
        qid = str(81 + i)
        turns, reference = _question(category, (i // len(CATEGORIES)) % 10)
        rows.append({"question_id": qid, "category": category, "turns": turns})
        if reference:
            refs.append({"question_id": qid, "choices": [{"index": 0, "turns": reference}]})
    (root / "question.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "reference_answer").mkdir(exist_ok=True)
    (root / "reference_answer" / "reference.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in refs), encoding="utf-8"
    )
    return root


def make_config(
    data: Path, model: FakeOpenAI, judge: FakeOpenAI, repeats: int, concurrency: int, out: Path
) -> EvalConfig:
    return parse_config(
        {
            "model": {"endpoint": model.url, "servedName": model.model},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": str(data)}}],
            "judges": [{"name": "judge", "endpoint": judge.url, "model": JUDGE_MODEL}],
            "repeats": repeats,
            "concurrency": concurrency,
            "timeoutSeconds": 120,
            "engine": {"outputDir": str(out)},
        }
    )


# -- the two ways of running it ------------------------------------------------------------------
@dataclass
class Measured:
    wall_s: float
    model_requests: int
    judge_requests: int
    errors: int = 0

    @property
    def requests(self) -> int:
        return self.model_requests + self.judge_requests


def _reset(*servers: FakeOpenAI) -> None:
    for server in servers:
        server.reset()


def run_engine(config: EvalConfig, model: FakeOpenAI, judge: FakeOpenAI) -> tuple[Measured, BenchmarkResult]:
    """The whole `run_evaluation` call: dataset loading, preflight, requests, statistics and outputs."""
    _reset(model, judge)
    started = time.perf_counter()
    result = asyncio.run(run_evaluation(config, reporter=JsonLinesReporter(stream=io.StringIO())))
    wall = time.perf_counter() - started
    measured = Measured(wall, model.count(target="model"), judge.count(target="judge"), result.results.errors)
    return measured, result.results.benchmarks["mt-bench"]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class Pacer:
    """One request start per `interval` seconds, granted first come, first served.

    Starts are due on a fixed grid (t0, t0 + interval, ...), as llm-jp-judge's precomputed waits are,
    so timer overshoot does not accumulate; when nothing is ready, the next start is due at once."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = asyncio.Lock()  # asyncio locks wake waiters in FIFO order
        self._next = 0.0

    async def start(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                due = self._next
            else:
                due = now
            self._next = due + self.interval


async def _paced(
    benchmark: MtBench,
    questions: list[Question],
    repeats: int,
    model: FakeOpenAI,
    judge: FakeOpenAI,
    pace: float,
    in_flight: int | None = None,
) -> None:
    """The request graph, one request start per `pace`; with `in_flight`, at most that many requests
    at once per endpoint, as the engine's `concurrency` holds them."""
    pacer = Pacer(pace)
    judge_sampling = {"temperature": 0.0, "max_tokens": 2048}  # what the engine sends the judge
    slots = {url: asyncio.Semaphore(in_flight or 1_000_000) for url in (model.url, judge.url)}

    async with httpx.AsyncClient(
        timeout=120, limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
    ) as http:

        async def post(url: str, body: dict[str, Any]) -> str:
            await pacer.start()
            async with slots[url]:
                resp = await http.post(f"{url}/chat/completions", json=body)
            resp.raise_for_status()
            return str(resp.json()["choices"][0]["message"]["content"])

        async def judged(question: Question, turn: int, answers: list[str]) -> None:
            messages = benchmark.judge_messages(question, turn, answers)
            await post(judge.url, {"model": JUDGE_MODEL, "messages": messages, **judge_sampling})

        async def unit(question: Question) -> None:
            messages: list[dict[str, str]] = benchmark.start_messages()
            answers: list[str] = []
            judging: list[asyncio.Task[None]] = []
            for turn, text in enumerate(question.turns, start=1):
                messages.append({"role": "user", "content": text})
                answer = await post(model.url, {"model": model.model, "messages": list(messages)})
                answers.append(answer)
                messages.append({"role": "assistant", "content": answer})
                judging.append(asyncio.create_task(judged(question, turn, list(answers))))
            await asyncio.gather(*judging)

        await asyncio.gather(*(unit(q) for _ in range(repeats) for q in questions))


def run_paced(
    benchmark: MtBench,
    questions: list[Question],
    repeats: int,
    model: FakeOpenAI,
    judge: FakeOpenAI,
    pace: float,
    latency: float,
) -> Measured:
    _reset(model, judge)
    model.latency_s = judge.latency_s = latency
    started = time.perf_counter()
    asyncio.run(_paced(benchmark, questions, repeats, model, judge, pace))
    wall = time.perf_counter() - started
    return Measured(wall, model.count(target="model"), judge.count(target="judge"))


def paced_model(requests: int, pace: float, latency: float) -> float:
    return (requests - 1) * pace + latency


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=80)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2, help="server service time per request (s)")
    parser.add_argument("--concurrency", type=int, default=16, help="engine concurrency = server batch limit")
    parser.add_argument(
        "--pace", type=float, default=0.5, help="paced baseline: seconds between request starts"
    )
    parser.add_argument(
        "--time-scale", type=float, default=0.1, help="paced full graph runs with pace and latency times this"
    )
    parser.add_argument("--sample-questions", type=int, default=5, help="real-pace sample (1 repeat)")
    args = parser.parse_args()

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
        benchmark = build_benchmarks(config)[0]
        assert isinstance(benchmark, MtBench)
        benchmark.load(Path(tmp) / "cache")
        references = sum(q.references is not None for q in benchmark.questions)

        model.latency_s = judge.latency_s = args.latency
        engine, summary = run_engine(config, model, judge)
        full = run_paced(
            benchmark,
            benchmark.questions,
            args.repeats,
            model,
            judge,
            args.pace * args.time_scale,
            args.latency * args.time_scale,
        )
        sample = run_paced(
            benchmark, benchmark.questions[: args.sample_questions], 1, model, judge, args.pace, args.latency
        )

    n = engine.requests
    paced_real = full.wall_s / args.time_scale
    predicted = paced_model(full.requests, args.pace, args.latency)
    sample_predicted = paced_model(sample.requests, args.pace, args.latency)
    ideal = max(engine.model_requests, engine.judge_requests) * args.latency / args.concurrency

    print(
        f"MT-Bench-sized run: {args.questions} questions x {TURNS} turns x {args.repeats} repeats, 1 judge "
        f"({references} questions with references); service time {args.latency * 1000:.0f} ms, "
        f"concurrency {args.concurrency} per endpoint; pace {args.pace:g} s, time scale {args.time_scale:g}"
    )
    print("| run | requests (model + judge) | wall (s) | req/s |")
    print("|---|---|---|---|")
    print(
        f"| shinsa engine | {n} ({engine.model_requests} + {engine.judge_requests}) | {engine.wall_s:.1f} "
        f"| {n / engine.wall_s:.1f} |"
    )
    print(
        f"| paced baseline, measured at x{args.time_scale:g} | {full.requests} ({full.model_requests} + "
        f"{full.judge_requests}) | {full.wall_s:.1f} | {full.requests / full.wall_s:.1f} |"
    )
    print(
        f"| paced baseline, real time (measured / {args.time_scale:g}) | {full.requests} | {paced_real:.1f} "
        f"| {full.requests / paced_real:.2f} |"
    )
    print(f"| paced model (n-1) x pace + latency | {full.requests} | {predicted:.1f} | - |")
    print(
        f"| paced sample at real pace ({args.sample_questions} questions, 1 repeat) | {sample.requests} "
        f"| {sample.wall_s:.1f} (model {sample_predicted:.1f}) | {sample.requests / sample.wall_s:.2f} |"
    )
    print(
        f"engine: request phase {summary.wall_time_s:.1f} s of {engine.wall_s:.1f} s (the rest: dataset, "
        f"preflight, bootstrap CIs, outputs and plots); server-bound ideal {ideal:.1f} s"
    )
    # The smaller of the measured and modelled paced times: the speed-up is not flattered by timer overhead
    # that the time scale magnifies.
    print(f"speed-up (paced real time / engine): {min(paced_real, predicted) / engine.wall_s:.1f}x")
    print(
        f"engine errors: {engine.errors}; mt-bench mean {_num(summary.mean)} "
        f"[{_num(summary.ci_low)}, {_num(summary.ci_high)}], std {_num(summary.std)}"
    )
    if full.requests != n:
        raise SystemExit(f"request counts differ: engine {n}, paced {full.requests}")
    if engine.errors:
        raise SystemExit("the engine run had errors")


if __name__ == "__main__":
    main()
