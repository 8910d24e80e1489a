"""Client-side request and token rate limits (token buckets), shared by all requests to one endpoint."""

from __future__ import annotations

import asyncio
import time


class _Bucket:
    def __init__(self, rate_per_s: float, capacity: float) -> None:
        self.rate = rate_per_s
        self.capacity = capacity
        self.level = capacity
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float) -> float:
        self._refill()
        # A single request larger than the bucket would never fit; let it through once the bucket is full.
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Limits requests per second and tokens per minute; either may be None (unlimited)."""

    def __init__(self, requests_per_second: float | None, tokens_per_minute: float | None) -> None:
        self._requests = (
            _Bucket(requests_per_second, max(1.0, requests_per_second)) if requests_per_second else None
        )
        self._tokens = _Bucket(tokens_per_minute / 60.0, tokens_per_minute) if tokens_per_minute else None
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    async def acquire(self, estimated_tokens: int) -> None:
        if not self.active:
            return
        # One waiter at a time keeps the buckets fair (FIFO through the lock) and free of races.
        async with self._lock:
            while True:
                wait = 0.0
                if self._requests:
                    wait = max(wait, self._requests.wait_time(1))
                if self._tokens:
                    wait = max(wait, self._tokens.wait_time(estimated_tokens))
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            if self._requests:
                self._requests.take(1)
            if self._tokens:
                self._tokens.take(estimated_tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self._tokens is None:
            return
        diff = estimated_tokens - actual_tokens
        if diff > 0:
            self._tokens.give_back(diff)
        else:
            self._tokens.take(-diff)
