"""Detached processes recorded in pid files, so that a later `shinsa dev down` (another Python
process) can stop exactly what `shinsa dev up` started and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A component exited while it was expected to run; the message carries its log tail."""


@dataclass(frozen=True)
class Managed:
    name: str
    pid: int
    log: Path


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def start(name: str, argv: list[str], run_dir: Path, env: dict[str, str] | None = None) -> Managed:
    """Start `argv` in its own session (so it outlives this process and can be signalled as a
    group), logging to run_dir/logs/<name>.log, and record its pid in run_dir/pids/<name>.pid."""
    logs, pids = run_dir / "logs", run_dir / "pids"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    (pids / f"{name}.pid").write_text(f"{proc.pid}\n{argv[0]}\n")
    return Managed(name, proc.pid, log)


def _recorded(run_dir: Path) -> list[tuple[str, int, str]]:
    found = []
    for pidfile in sorted((run_dir / "pids").glob("*.pid")):
        pid_text, _, exe = pidfile.read_text().partition("\n")
        with contextlib.suppress(ValueError):
            found.append((pidfile.stem, int(pid_text), exe.strip()))
    return found


def _is_ours(pid: int, exe: str) -> bool:
    # A pid can be reused after a reboot; only signal a process still running our binary.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # A script with a shebang shows up as `interpreter script ...`: its path is the second word.
    return exe in (word.decode(errors="replace") for word in cmdline[:2])


def alive(run_dir: Path, name: str) -> bool:
    return any(n == name and _is_ours(pid, exe) for n, pid, exe in _recorded(run_dir))


def running(run_dir: Path) -> list[Managed]:
    return [
        Managed(name, pid, run_dir / "logs" / f"{name}.log")
        for name, pid, exe in _recorded(run_dir)
        if _is_ours(pid, exe)
    ]


def check_alive(managed: Managed) -> None:
    try:
        os.kill(managed.pid, 0)
    except ProcessLookupError:
        raise ProcessFailed(
            f"{managed.name} exited; last lines of {managed.log}:\n{_tail(managed.log)}"
        ) from None
    # A zombie child (exited, not yet reaped) still answers kill(0).
    with contextlib.suppress(ChildProcessError):
        pid, _ = os.waitpid(managed.pid, os.WNOHANG)
        if pid:
            raise ProcessFailed(f"{managed.name} exited; last lines of {managed.log}:\n{_tail(managed.log)}")


def stop_all(run_dir: Path, order: list[str], grace_s: float = 10.0) -> list[str]:
    """Stop every recorded process, in `order` first (dependents before what they depend on),
    SIGTERM then SIGKILL after `grace_s`. Returns the names stopped."""
    recorded = {name: (pid, exe) for name, pid, exe in _recorded(run_dir)}
    names = [n for n in order if n in recorded] + [n for n in recorded if n not in order]
    stopped = []
    for name in names:
        pid, exe = recorded[name]
        if _is_ours(pid, exe):
            _terminate_group(pid, grace_s)
            stopped.append(name)
        (run_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return stopped


def stop(run_dir: Path, name: str, grace_s: float = 10.0) -> bool:
    """Stop the one recorded process `name` (an optional component), leaving the others running.
    Returns whether it was running."""
    found = [(pid, exe) for recorded, pid, exe in _recorded(run_dir) if recorded == name]
    was_running = False
    for pid, exe in found:
        if _is_ours(pid, exe):
            _terminate_group(pid, grace_s)
            was_running = True
    (run_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return was_running


def _terminate_group(pid: int, grace_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return  # the leader and every child of its group are gone
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
