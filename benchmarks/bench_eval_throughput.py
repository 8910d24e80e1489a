"""Evaluation throughput: Shinsa's client and engine against a bare asyncio loop, same concurrency.

The server is the test double with a fixed service time and a concurrency cap, like a GPU server
with a full batch: the best any client can do is `cap / latency` requests per second. The ratio
shows what Shinsa's retries, rate limiting, checkpointing and bookkeeping cost on top.

    .venv/bin/python benchmarks/bench_eval_throughput.py --requests 400 --concurrency 16 --latency 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shinsa.evaluation.client import ChatClient
from shinsa.evaluation.config import Sampling, parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.runner import run_evaluation
from support.openai_server import FakeOpenAI


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question number {i}: say something."}]


async def bare_loop(url: str, model: str, requests: int, concurrency: int) -> float:
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=60) as http:

        async def one(i: int) -> None:
            async with slots:
                resp = await http.post(
                    f"{url}/chat/completions", json={"model": model, "messages": _messages(i)}
                )
                resp.raise_for_status()
                resp.json()

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        return time.perf_counter() - started


async def shinsa_client(url: str, model: str, requests: int, concurrency: int) -> float:
    client = ChatClient(url, model, concurrency=concurrency, timeout_s=60)
    try:
        started = time.perf_counter()
        await asyncio.gather(*(client.chat(_messages(i), Sampling()) for i in range(requests)))
        return time.perf_counter() - started
    finally:
        await client.aclose()


def shinsa_engine(server: FakeOpenAI, requests: int, concurrency: int, workdir: Path) -> tuple[float, int]:
    """A full single-turn judged benchmark: half the requests generate, half judge."""
    questions = requests // 2
    data = workdir / "data"
    data.mkdir()
    with (data / "question.jsonl").open("w") as handle:
        for i in range(questions):
            handle.write(json.dumps({"question_id": i, "category": "c", "turns": [f"Question {i}?"]}) + "\n")
    config = parse_config(
        {
            "model": {"endpoint": server.url, "servedName": server.model},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": str(data)}}],
            "judges": [{"name": "j", "endpoint": server.url, "model": server.judge_models[0]}],
            "repeats": 1,
            "concurrency": concurrency,
            "output": {"dir": str(workdir / "out")},
        }
    )
    before = server.requests
    started = time.perf_counter()
    asyncio.run(run_evaluation(config, reporter=JsonLinesReporter(stream=io.StringIO())))
    return time.perf_counter() - started, server.requests - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.05, help="server service time per request (s)")
    args = parser.parse_args()

    with FakeOpenAI(latency_s=args.latency, max_concurrency=args.concurrency, keep_messages=False) as server:
        ideal = args.requests * args.latency / args.concurrency
        bare = asyncio.run(bare_loop(server.url, server.model, args.requests, args.concurrency))
        client = asyncio.run(shinsa_client(server.url, server.model, args.requests, args.concurrency))
        with tempfile.TemporaryDirectory() as tmp:
            engine, engine_requests = shinsa_engine(server, args.requests, args.concurrency, Path(tmp))

    def rate(n: int, seconds: float) -> float:
        return n / seconds

    print(
        f"{args.requests} requests, concurrency {args.concurrency}, service time {args.latency * 1000:.0f} ms"
    )
    print(f"  ideal (server-bound) : {rate(args.requests, ideal):8.1f} req/s")
    print(f"  bare asyncio loop    : {rate(args.requests, bare):8.1f} req/s")
    print(f"  shinsa ChatClient    : {rate(args.requests, client):8.1f} req/s")
    print(f"  shinsa engine        : {rate(engine_requests, engine):8.1f} req/s ({engine_requests} requests)")
    print(f"ratio client/bare      : {bare / client:.3f}")
    print(f"ratio engine/bare      : {rate(engine_requests, engine) / rate(args.requests, bare):.3f}")


if __name__ == "__main__":
    main()
