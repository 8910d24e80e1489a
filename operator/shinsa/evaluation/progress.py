"""Progress reporting: a rich progress bar per benchmark on a terminal, JSON log lines otherwise.

Inside a Kubernetes Job nobody watches a progress bar, but log collectors parse one JSON object a
line; on a laptop the bars are what a person wants.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

# C0 and C1 controls but tab and newline (ESC starts a terminal sequence, CR overwrites the line),
# and the bidirectional overrides that make text read other than it is.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def neutralised(text: str) -> str:
    """`text` with its control characters shown as escapes (`\\x1b`) rather than acted on."""
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def terminal_safe(text: str) -> str:
    """User data (ids, paths, model names, server messages) as rich markup that prints it as is."""
    return escape(neutralised(text))


class Reporter(Protocol):
    def event(self, message: str, **fields: Any) -> None: ...
    # `total` items will be reported through `advance`; `resumed` of them come from the checkpoint.
    def benchmark_started(self, name: str, total: int, resumed: int) -> None: ...
    def advance(self, name: str, items: int, errors: int) -> None: ...
    def benchmark_finished(self, name: str, **fields: Any) -> None: ...
    def close(self) -> None: ...


class JsonLinesReporter:
    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self._stream = stream or sys.stderr
        self._every_s = every_s
        self._state: dict[str, dict[str, Any]] = {}

    def _write(self, record: dict[str, Any]) -> None:
        line = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
        self._stream.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self._stream.flush()

    def event(self, message: str, **fields: Any) -> None:
        self._write({"event": message, **fields})

    def benchmark_started(self, name: str, total: int, resumed: int) -> None:
        self._state[name] = {"total": total, "done": 0, "errors": 0, "last": time.monotonic()}
        self._write({"event": "benchmark started", "benchmark": name, "items": total, "resumed": resumed})

    def advance(self, name: str, items: int, errors: int) -> None:
        state = self._state[name]
        state["done"] += items
        state["errors"] += errors
        # Throttled: a line per item would drown the log of a 10,000-item run.
        if time.monotonic() - state["last"] >= self._every_s or state["done"] >= state["total"]:
            state["last"] = time.monotonic()
            self._write(
                {
                    "event": "progress",
                    "benchmark": name,
                    "done": state["done"],
                    "total": state["total"],
                    "errors": state["errors"],
                }
            )

    def benchmark_finished(self, name: str, **fields: Any) -> None:
        self._write({"event": "benchmark finished", "benchmark": name, **fields})

    def close(self) -> None:
        return None


class RichReporter:
    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(stderr=True, log_path=False, emoji=False)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors: {task.fields[errors]}"),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._tasks: dict[str, Any] = {}
        self._errors: dict[str, int] = {}
        self._progress.start()

    def event(self, message: str, **fields: Any) -> None:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        self._progress.console.log(terminal_safe(f"{message} {extra}".strip()), emoji=False)

    def benchmark_started(self, name: str, total: int, resumed: int) -> None:
        self._errors[name] = 0
        # Reused items are advanced like the others, as the run reaches them.
        self._tasks[name] = self._progress.add_task(terminal_safe(name), total=total, completed=0, errors=0)
        if resumed:
            self.event(f"{name}: {resumed} of {total} items from the checkpoint")

    def advance(self, name: str, items: int, errors: int) -> None:
        self._errors[name] += errors
        self._progress.update(self._tasks[name], advance=items, errors=self._errors[name])

    def benchmark_finished(self, name: str, **fields: Any) -> None:
        self.event(f"{name} finished", **fields)

    def close(self) -> None:
        self._progress.stop()


def make_reporter(json_logs: bool | None = None) -> Reporter:
    """JSON lines when asked, or when stderr is not a terminal."""
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    return JsonLinesReporter() if json_logs else RichReporter()
