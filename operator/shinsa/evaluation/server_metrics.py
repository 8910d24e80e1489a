"""The serving engine's own Prometheus metrics, read while a benchmark runs.

vLLM serves Prometheus text at `/metrics` on its server root (beside `/v1`, not under it). The
KV-cache gauge is `vllm:kv_cache_usage_perc`, a fraction (1 means 100 percent) labelled
`model_name` and `engine` (checked against vLLM v0.33.0, vllm/v1/metrics/loggers.py,
`PrometheusStatLogger`). A server without `/metrics`, or without the gauge, gives no samples: the
benchmark then reports no KV usage rather than a made-up one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

KV_CACHE_USAGE = "vllm:kv_cache_usage_perc"
DEFAULT_SCRAPE_INTERVAL_S = 1.0


def gauge_value(text: str, name: str, model: str | None = None) -> float | None:
    """The value of gauge `name` in Prometheus text: the highest over its samples (one per engine of a
    data-parallel server; the fullest cache is what limits it), restricted to `model_name == model`
    when samples carry that label. None when the gauge is absent or the text is not Prometheus text."""
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, IndexError, KeyError, TypeError):
        return None
    values = []
    for family in families:
        for sample in family.samples:
            if sample.name != name:
                continue
            labelled = sample.labels.get("model_name")
            if model is not None and labelled is not None and labelled != model:
                continue
            if math.isfinite(sample.value):
                values.append(float(sample.value))
    return max(values) if values else None


@dataclass
class Sample:
    at: float
    value: float
    phase: str | None


@dataclass
class GaugeSampler:
    """Reads a gauge every `interval_s` through `fetch` (the metrics text, or None when the server has
    none) and keeps each value with the phase current when it was read."""

    fetch: Callable[[], Awaitable[str | None]]
    name: str = KV_CACHE_USAGE
    model: str | None = None
    interval_s: float = DEFAULT_SCRAPE_INTERVAL_S
    phase: str | None = None
    samples: list[Sample] = field(default_factory=list)
    scrapes: int = 0
    reachable: bool | None = None
    _task: asyncio.Task[None] | None = None

    async def read_once(self) -> float | None:
        self.scrapes += 1
        text = await self.fetch()
        if text is None:
            self.reachable = bool(self.reachable)
            return None
        self.reachable = True
        value = gauge_value(text, self.name, self.model)
        if value is not None:
            self.samples.append(Sample(time.monotonic(), value, self.phase))
        return value

    async def _loop(self) -> None:
        while True:
            await self.read_once()
            if self.reachable is False:
                return  # a server without /metrics does not grow one during a run
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # One last reading, so a phase shorter than the interval still has one.
        await self.read_once()

    def values(self, phase: str | None = None) -> list[float]:
        return [s.value for s in self.samples if phase is None or s.phase == phase]


def usage_summary(values: Sequence[float]) -> dict[str, float]:
    """`kv_usage_max`, `kv_usage_mean` and the number of samples, or nothing without samples."""
    if not values:
        return {}
    return {
        "kv_usage_max": max(values),
        "kv_usage_mean": sum(values) / len(values),
        "kv_usage_samples": float(len(values)),
    }
