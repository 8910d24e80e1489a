"""Evaluation throughput: Shinsa's engine against a bare asyncio loop, same requests, same concurrency.

The work is a judged single-turn benchmark: for each question one generation request to the model,
then one judgment request (the MT-Bench judge prompt quoting the answer) to the judge. Every
contender sends exactly these requests with at most `--concurrency` in flight per endpoint, which is
what the engine's `concurrency` setting means (the model and each judge get their own budget):

- bare    : two httpx.AsyncClients and two asyncio.Semaphores, nothing else;
- client  : the same loop through two Shinsa ChatClients (retries, rate limiter, timeouts);
- engine  : `run_evaluation` on the same questions (checkpoint, records, progress, scoring, outputs).

The engine is reported twice: its request phase (from the benchmark's start to its last finished
question, taken from the reporter callbacks: the window of the run's own `wall_time_s`) and end to
end. The difference is its fixed cost (dataset load, preflight, checkpoint open, scoring with
bootstrap CIs, output files and plots), reported separately and broken down. "Fixed" is loose:
scoring and outputs grow with the number of questions, only more slowly than the requests do.

The server is the test double (fixed service time, concurrency cap), run in a child process so that
its request handling does not compete with the client for the interpreter lock. With a short
service time the client's CPU is the bottleneck (see `ideal`), so the ratios measure how much CPU
each layer spends per request; CPU ms per request is reported for that reason. Each contender runs
`--rounds` times, alternating the order, and the medians are reported (shared machines are noisy).

    .venv/bin/python benchmarks/bench_eval_throughput.py --requests 2000 --concurrency 16 --latency 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shinsa.evaluation import prompts
from shinsa.evaluation.client import ChatClient
from shinsa.evaluation.config import Sampling, parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.runner import run_evaluation
from support.openai_server import FakeOpenAI

MODEL = "test-model"
JUDGE = "judge-a"


def _serve(latency: float, cap: int, conn: Connection) -> None:
    with FakeOpenAI(latency_s=latency, max_concurrency=cap, keep_messages=False) as server:
        conn.send(server.url)
        conn.recv()  # anything, or EOF, means stop


def _question(i: int) -> str:
    return f"Question number {i}: say something."


def _judge_prompt(i: int, answer: str) -> list[dict[str, str]]:
    """The judge request the engine sends for a single-turn MT-Bench question (same size on the wire)."""
    text = prompts.SINGLE.format_map({"question": _question(i), "answer": answer, "language_note": ""})
    return [{"role": "system", "content": prompts.JUDGE_SYSTEM}, {"role": "user", "content": text}]


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    requests: int
    total_s: float | None = None  # end to end, engine only
    phases: dict[str, float] = field(default_factory=dict)


async def bare_loop(url: str, questions: int, concurrency: int) -> Measured:
    model_slots, judge_slots = asyncio.Semaphore(concurrency), asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with (
        httpx.AsyncClient(limits=limits, timeout=60) as model,
        httpx.AsyncClient(limits=limits, timeout=60) as judge,
    ):

        async def post(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
            resp = await http.post(f"{url}/chat/completions", json=body)
            resp.raise_for_status()
            return str(resp.json()["choices"][0]["message"]["content"])

        async def one(i: int) -> None:
            async with model_slots:
                messages = [{"role": "user", "content": _question(i)}]
                answer = await post(model, {"model": MODEL, "messages": messages})
            async with judge_slots:
                await post(judge, {"model": JUDGE, "messages": _judge_prompt(i, answer)})

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(questions)))
        return Measured(time.perf_counter() - wall, time.process_time() - cpu, 2 * questions)


async def shinsa_client(url: str, questions: int, concurrency: int) -> Measured:
    model = ChatClient(url, MODEL, concurrency=concurrency, timeout_s=60)
    judge = ChatClient(url, JUDGE, concurrency=concurrency, timeout_s=60)
    try:

        async def one(i: int) -> None:
            generated = await model.chat([{"role": "user", "content": _question(i)}], Sampling())
            await judge.chat(_judge_prompt(i, generated.answer), Sampling())

        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one(i) for i in range(questions)))
        return Measured(time.perf_counter() - wall, time.process_time() - cpu, 2 * questions)
    finally:
        await model.aclose()
        await judge.aclose()


class _Clock(JsonLinesReporter):
    """The usual JSON-lines reporter (into a buffer) that also notes when each phase ends."""

    def __init__(self) -> None:
        super().__init__(stream=io.StringIO())
        self.marks: dict[str, tuple[float, float]] = {}

    def _mark(self, name: str) -> None:
        self.marks[name] = (time.perf_counter(), time.process_time())

    def benchmark_started(self, name: str, total: int, resumed: int) -> None:
        self._mark("requests_start")
        super().benchmark_started(name, total, resumed)

    def advance(self, name: str, items: int, errors: int) -> None:
        super().advance(name, items, errors)
        self._mark("requests_end")  # the last call is the last question finishing

    def benchmark_finished(self, name: str, **fields: Any) -> None:
        self._mark("scored")
        super().benchmark_finished(name, **fields)


def shinsa_engine(url: str, questions: int, concurrency: int, workdir: Path) -> Measured:
    data = workdir / "data"
    data.mkdir()
    with (data / "question.jsonl").open("w") as handle:
        for i in range(questions):
            handle.write(json.dumps({"question_id": i, "category": "c", "turns": [_question(i)]}) + "\n")
    config = parse_config(
        {
            "model": {"endpoint": url, "servedName": MODEL},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": str(data)}}],
            "judges": [{"name": "j", "endpoint": url, "model": JUDGE}],
            "repeats": 1,
            "concurrency": concurrency,
            "engine": {"outputDir": str(workdir / "out")},
        }
    )
    clock = _Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(run_evaluation(config, reporter=clock))
    end_wall, end_cpu = time.perf_counter(), time.process_time()
    (w0, c0), (w1, c1), (w2, _) = (clock.marks[k] for k in ("requests_start", "requests_end", "scored"))
    requests = sum(result.requests.values())
    assert result.status == "Succeeded" and requests == 2 * questions, (result.status, result.requests)
    return Measured(
        wall_s=w1 - w0,
        cpu_s=c1 - c0,
        requests=requests,
        total_s=end_wall - wall,
        phases={
            "setup (load, preflight, checkpoint)": w0 - wall,
            "scoring (bootstrap CIs)": w2 - w1,
            "outputs (files, plots), close": end_wall - w2,
            "fixed, all": (end_wall - wall) - (w1 - w0),
            "cpu, outside request phase": (end_cpu - cpu) - (c1 - c0),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="total: half generations, half judgments")
    parser.add_argument("--concurrency", type=int, default=16, help="in flight per endpoint")
    parser.add_argument("--latency", type=float, default=0.02, help="server service time per request (s)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    questions = args.requests // 2
    contenders = ["bare", "client", "engine"]
    runs: dict[str, list[Measured]] = {name: [] for name in contenders}

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(args.latency, 2 * args.concurrency, child), daemon=True
    )
    server.start()
    url = parent.recv()
    try:
        for round_ in range(args.rounds):
            for name in contenders if round_ % 2 == 0 else reversed(contenders):
                if name == "bare":
                    runs[name].append(asyncio.run(bare_loop(url, questions, args.concurrency)))
                elif name == "client":
                    runs[name].append(asyncio.run(shinsa_client(url, questions, args.concurrency)))
                else:
                    with tempfile.TemporaryDirectory() as tmp:
                        runs[name].append(shinsa_engine(url, questions, args.concurrency, Path(tmp)))
    finally:
        parent.send("stop")
        server.join(timeout=10)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def rates(name: str) -> list[float]:
        return [m.requests / m.wall_s for m in runs[name]]

    engine_total = [m.requests / m.total_s for m in runs["engine"] if m.total_s]
    bare = med(rates("bare"))
    n = 2 * questions
    print(
        f"{n} requests ({questions} generations + {questions} judgments), concurrency {args.concurrency} "
        f"per endpoint, service time {args.latency * 1000:.0f} ms, medians of {args.rounds} rounds"
    )
    print(f"  {'':30} {'req/s':>8} {'/ bare':>7} {'CPU ms/req':>11}   rounds (req/s)")
    print(f"  {'ideal (server-bound)':30} {2 * args.concurrency / args.latency:8.1f}")
    rows = [
        ("bare asyncio loop", rates("bare"), runs["bare"]),
        ("shinsa ChatClient", rates("client"), runs["client"]),
        ("shinsa engine, request phase", rates("engine"), runs["engine"]),
        ("shinsa engine, end to end", engine_total, []),
    ]
    for label, values, measured in rows:
        cpu = f"{med([1000 * m.cpu_s / m.requests for m in measured]):11.3f}" if measured else " " * 11
        listed = " ".join(f"{v:.1f}" for v in values)
        print(f"  {label:30} {med(values):8.1f} {med(values) / bare:7.3f} {cpu}   {listed}")
    print("  engine fixed costs (s), median [rounds]:")
    for phase in runs["engine"][0].phases:
        values = [m.phases[phase] for m in runs["engine"]]
        print(f"    {phase:36} {med(values):6.3f}  [{' '.join(f'{v:.3f}' for v in values)}]")


if __name__ == "__main__":
    main()
