"""The secret values a run holds, masked out of everything it records or logs.

Servers echo what they were sent: a 401 reads `Incorrect API key provided: Bearer sk-...`, a 400
quotes the request body. Those texts become item errors (items.jsonl, MLflow artifacts) and log
lines, so every error the engine records and every line its reporter emits goes through
`SecretMask.text`. The secrets are the model's and the judges' API keys (from the variables the
config names) and every string in an `extraBody`, which is free-form and may carry a token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shinsa.evaluation.config import EvalConfig
    from shinsa.evaluation.progress import Reporter

MASK = "***"
MIN_SECRET_CHARS = 8
"""Shorter values are not masked: a placeholder key such as `EMPTY` or an extraBody setting such
as `"low"` is no credential, and replacing every occurrence of it would rewrite answers."""

# A bearer token the server echoes need not be the one sent (a proxy's, a truncated copy).
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class SecretMask:
    """Replaces each secret value, and any bearer token, with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)

    @classmethod
    def of_config(cls, config: EvalConfig, environ: Mapping[str, str] | None = None) -> SecretMask:
        """The secrets of a run: its API keys, as the variables it names hold them, and its
        extraBody strings."""
        env = os.environ if environ is None else environ
        names = [config.model_key_env, *(config.judge_key_env(j) for j in config.spec.judges)]
        keys = [env[name] for name in names if name and env.get(name)]
        bodies = [config.spec.model.extra_body, *(j.extra_body for j in config.spec.judges)]
        return cls([*keys, *(s for body in bodies for s in _strings(body))])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretMask) and self._secrets == other._secrets

    __hash__ = None  # type: ignore[assignment]

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return _BEARER.sub(r"\g<1>" + MASK, value)

    def value(self, data: Any) -> Any:
        """`data` with every string in it (mapping values and keys, list items) masked."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            return {self.value(k): self.value(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(v) for v in data]
        return data


class MaskedReporter:
    """A reporter whose every message and field is masked before it reaches the wrapped one."""

    def __init__(self, inner: Reporter, mask: SecretMask) -> None:
        self.inner = inner
        self.mask = mask

    def event(self, message: str, **fields: Any) -> None:
        self.inner.event(self.mask.text(message), **self.mask.value(fields))

    def benchmark_started(self, name: str, total: int, resumed: int) -> None:
        self.inner.benchmark_started(name, total, resumed)

    def advance(self, name: str, items: int, errors: int) -> None:
        self.inner.advance(name, items, errors)

    def benchmark_finished(self, name: str, **fields: Any) -> None:
        self.inner.benchmark_finished(name, **self.mask.value(fields))

    def close(self) -> None:
        self.inner.close()


def masked(reporter: Reporter, mask: SecretMask) -> Reporter:
    """`reporter` behind `mask`, unless it is behind the same secrets already."""
    if isinstance(reporter, MaskedReporter) and reporter.mask == mask:
        return reporter
    return MaskedReporter(reporter, mask)


__all__ = ["MASK", "MIN_SECRET_CHARS", "MaskedReporter", "SecretMask", "masked"]
