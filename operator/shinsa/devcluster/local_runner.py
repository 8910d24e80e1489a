"""A kubelet for the dev cluster that runs the pods bound to its Node as processes on this machine.

KWOK only pretends to run pods, but an EvalRun's evaluation Job must really run `shinsa eval run`.
`LocalRunner` registers one Node, `local-runner`, without KWOK's annotation (so KWOK leaves the node
and its pods alone), keeps it Ready with a Lease and status heartbeats as a kubelet does, and runs
each pod the scheduler binds to it, writing the pod status the kubelet of the pinned Kubernetes
(v1.34.3, tools/kube) writes: Pending, Running with `running.startedAt`, then Succeeded or Failed
with each container's `terminated` exit code, reason and termination message. The node carries a
label and a taint (`RUNNER_NODE_SELECTOR`, `RUNNER_TOLERATION`), so only pods that ask for it land
here; every other pod goes to the KWOK nodes as before.

What a container becomes:

- its `command` + `args`, `$(VAR)` expanded by the kubelet's rule (`expand`). The image is neither
  pulled nor read (an event says so): a container without `command` has no entrypoint here and the
  pod is refused. The executable is looked up on a PATH that starts with this virtualenv's bin
  directory, so `shinsa` and `python` are the virtualenv's; an absolute path that does not exist on
  this machine (an image's /usr/local/bin/shinsa) falls back to its basename on that PATH;
- env from `value`, `valueFrom` (configMapKeyRef, secretKeyRef, fieldRef) and `envFrom`, on top of
  HOSTNAME, HOME and TMPDIR in the pod's directory and a few variables of the runner's own
  environment (`INHERITED_ENV`: PATH, PYTHONPATH, locale);
- configMap, secret, downwardAPI, projected (those three and serviceAccountToken), emptyDir and
  hostPath volumes as files under the pod's directory. No mount namespace is made: instead every
  mount path, the termination message path and the working directory are rewritten to their place
  on this machine wherever they appear in the command, args and env values (`PathMap`). A path a
  program hard-codes, or reads from a file, is not rewritten;
- stdout and stderr in `<run dir>/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log` (the
  layout of the kubelet's /var/log/pods). `kubectl logs` cannot reach them: the node serves no
  kubelet API.

Deleting a running pod sends SIGTERM to the container's process group, SIGKILL after the pod's
grace period, writes the terminal phase and then deletes the pod object (grace 0, uid
precondition), as the kubelet does. The pod's own `activeDeadlineSeconds` is enforced here; a Job's
is the Job controller's (it deletes the pods, which then stop as above). Not emulated: init and
ephemeral containers, probes (a started container is Ready), resource limits, OOM kills, image
pulls, PersistentVolumeClaims, Service environment variables, updates of mounted ConfigMaps, read-only
mounts, `kubectl logs/exec/port-forward`.

Run it as `python -m shinsa.devcluster.local_runner --kubeconfig K --dir D` (LocalCluster does) or
in-process with `LocalRunner(api, run_dir).start()`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import logging
import os
import posixpath
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

log = logging.getLogger("shinsa.devcluster.local_runner")

NODE_NAME = "local-runner"
RUNNER_LABEL = "shinsa.dev/local-runner"
RUNNER_NODE_SELECTOR = {RUNNER_LABEL: "true"}
RUNNER_TAINT = {"key": RUNNER_LABEL, "value": "true", "effect": "NoSchedule"}
RUNNER_TOLERATION = {"key": RUNNER_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
NODE_IP = POD_IP = "127.0.0.1"
COMPONENT = "local-runner"
# The kubelet whose pod status semantics this emulates (the version pinned in tools/kube).
KUBELET_VERSION = "v1.34.3"

# The kubelet's limits on a termination message, and what FallbackToLogsOnError takes of the log.
MAX_TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_GRACE_S = 30
# The kubelet's restart back-off: 10 s, doubling, at most 5 minutes.
BACKOFF_INITIAL_S, BACKOFF_MAX_S = 10.0, 300.0
LEASE_DURATION_S, LEASE_RENEW_S, STATUS_REPORT_S = 40, 10.0, 60.0
# What the kubelet reports for a container it can no longer find (here: a previous runner's).
UNKNOWN_EXIT_CODE = 137

# Taken from the runner's own environment: where `shinsa` and this checkout are, and the locale.
INHERITED_ENV = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")
SUPPORTED_VOLUMES = ("configMap", "secret", "downwardAPI", "projected", "emptyDir", "hostPath")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- what the kubelet computes from a pod spec (pure) -----------------------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` replaced by env[NAME] when NAME is defined and left as written when not; `$$` is a
    literal `$`. The kubelet's rule for command, args and env values
    (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
            continue
        after = text[i + 1]
        if after == "$":
            out.append("$")
            i += 2
        elif after == "(":
            close = text.find(")", i + 2)
            if close == -1:
                out.append("$(")
                i += 2
            else:
                name = text[i + 2 : close]
                out.append(env.get(name, f"$({name})"))
                i = close + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


@dataclass(frozen=True)
class PathMap:
    """Where each path of a container lives on this machine (mount paths, the termination message
    file, the working directory), longest container path first so a nested mount wins."""

    entries: tuple[tuple[str, Path], ...]

    @classmethod
    def of(cls, pairs: Mapping[str, Path]) -> PathMap:
        normal = {posixpath.normpath(path): host for path, host in pairs.items() if path.startswith("/")}
        return cls(tuple(sorted(normal.items(), key=lambda item: -len(item[0]))))

    def _pattern(self) -> re.Pattern[str] | None:
        paths = [re.escape(path) for path, _ in self.entries if path != "/"]
        if not paths:
            return None
        # A container path counts where it starts a path: not inside a longer word or path
        # (/opt/data is not /data), and where it ends at a separator or the end of that path.
        return re.compile(rf"(?<![\w.~/-])({'|'.join(paths)})(?=/|$|[^\w.-])")

    def rewrite(self, text: str) -> str:
        pattern = self._pattern()
        if pattern is None:
            return text
        hosts = dict(self.entries)
        return pattern.sub(lambda m: str(hosts[m.group(1)]), text)

    def host(self, path: str) -> Path | None:
        path = posixpath.normpath(path)
        for prefix, host in self.entries:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                rest = path[len(prefix) :].lstrip("/")
                return host / rest if rest else host
        return None


def field_value(pod: Mapping[str, Any], path: str) -> str:
    """A downward API `fieldRef.fieldPath` of `pod`, as the kubelet resolves it."""
    meta, spec = pod["metadata"], pod["spec"]
    labelled = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if labelled:
        return str((meta.get(labelled.group(1)) or {}).get(labelled.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": NODE_IP,
        "status.hostIPs": NODE_IP,
        "status.podIP": POD_IP,
        "status.podIPs": POD_IP,
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    raise ConfigError(f"fieldRef {path!r} is not a field the downward API exposes")


def unsupported(pod: Mapping[str, Any]) -> str | None:
    """Why the runner cannot run `pod` faithfully, or None."""
    spec = pod["spec"]
    for key in ("initContainers", "ephemeralContainers"):
        if spec.get(key):
            return f"spec.{key} are not run by the local runner"
    for container in spec["containers"]:
        if not container.get("command"):
            return (
                f"container {container['name']!r} has no command: the local runner does not read the "
                f"image {container.get('image')!r} for its entrypoint"
            )
    for volume in spec.get("volumes") or []:
        kinds = [key for key in volume if key != "name"]
        if not any(kind in SUPPORTED_VOLUMES for kind in kinds):
            return f"volume {volume['name']!r} ({', '.join(kinds)}) is not a kind the local runner mounts"
    return None


def exit_code(returncode: int) -> int:
    # Container runtimes report a process killed by signal N as exit code 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def log_tail(path: Path) -> str:
    """The end of a log, as FallbackToLogsOnError puts it into the termination message."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ""
    lines = data.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
    return b"".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace")


class ConfigError(Exception):
    """A container's environment cannot be resolved (the kubelet's CreateContainerConfigError)."""


class MountError(Exception):
    """A volume cannot be set up yet (the kubelet's FailedMount); retried."""


# -- one container ----------------------------------------------------------------------------------


@dataclass
class Container:
    spec: dict[str, Any]
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    termination_file: Path
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: str | None = None
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    next_start: float = 0.0
    backoff_s: float = BACKOFF_INITIAL_S

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.restarts}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def terminated(self) -> dict[str, Any] | None:
        found = self.state.get("terminated")
        return found if isinstance(found, dict) else None

    def status(self) -> dict[str, Any]:
        running = "running" in self.state
        found: dict[str, Any] = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": running,
            "started": running,
            "restartCount": self.restarts,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.process is not None:
            found["containerID"] = f"local://{self.process.pid}"
        return found


# -- one pod ----------------------------------------------------------------------------------------


class PodWorker:
    """Plays the kubelet's pod worker for one pod: set up, run, report, stop, delete."""

    def __init__(self, runner: LocalRunner, pod: dict[str, Any]) -> None:
        self.runner = runner
        self.pod = pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = runner.pods_dir / f"{self.namespace}_{self.name}_{self.uid}"
        self.gone = False
        self._wake = threading.Event()
        self._conditions: dict[str, tuple[str, str]] = {}
        self._start_time: str | None = None
        self._reported: str | None = None
        self._events: set[str] = set()
        self.thread = threading.Thread(
            target=self._main, name=f"pod {self.namespace}/{self.name}", daemon=True
        )

    def observe(self, pod: dict[str, Any] | None) -> None:
        if pod is None:
            self.gone = True
        else:
            self.pod = pod
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    @property
    def deleting(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    def _grace_s(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        return float(grace)

    # -- the lifecycle -----------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._lifecycle()
        except Exception:
            log.exception("pod %s/%s: the local runner failed", self.namespace, self.name)
        finally:
            self.runner._forget(self.uid)

    def _lifecycle(self) -> None:
        status = self.pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            self._await_deletion()
            return
        if status.get("phase") == "Running":
            self._report_lost(status)
            self._await_deletion()
            return
        if self.deleting:
            self._delete()
            return
        refused = unsupported(self.pod)
        if refused:
            # As the kubelet rejects a pod at admission: terminal at once, with a reason.
            self._event("Warning", "UnsupportedByLocalRunner", refused)
            self._write({"phase": "Failed", "reason": "UnsupportedByLocalRunner", "message": refused})
            self._await_deletion()
            return

        self._start_time = now()
        self.dir.mkdir(parents=True, exist_ok=True)
        pending = [Container(c, [], {}, self.dir, self.dir, self.dir) for c in self.pod["spec"]["containers"]]
        self._write(self._pod_status("Pending", pending))
        containers = self._prepare(pending)
        if containers is None:
            return
        self._run(containers)

    def _prepare(self, pending: list[Container]) -> list[Container] | None:
        """The containers ready to start, once every volume and variable resolves; None when the
        pod went away meanwhile."""
        while True:
            if self.runner.stopping:
                return None
            if self.deleting:
                self._delete()
                return None
            try:
                mounts = self._mount_volumes()
                return [self._container(spec, mounts) for spec in self.pod["spec"]["containers"]]
            except MountError as exc:
                self._event("Warning", "FailedMount", str(exc))
                for c in pending:
                    c.state = {"waiting": {"reason": "ContainerCreating"}}
            except ConfigError as exc:
                self._event("Warning", "Failed", f"Error: {exc}")
                for c in pending:
                    c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            self._write(self._pod_status("Pending", pending))
            self._sleep(2.0)

    def _run(self, containers: list[Container]) -> None:
        for c in containers:
            self._start(c)
        self._write(self._pod_status("Running", containers))
        deadline_s = self.pod["spec"].get("activeDeadlineSeconds")
        started = time.monotonic()
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while True:
            changed = any([self._reap(c) for c in containers])
            for c in containers:
                if c.terminated and self._restarts(c, policy) and time.monotonic() >= c.next_start:
                    c.last_state, c.restarts = {"terminated": c.terminated}, c.restarts + 1
                    self._start(c)
                    changed = True
            if self.deleting or self.runner.stopping:
                grace = (
                    self._grace_s() if self.deleting else min(self._grace_s(), self.runner.shutdown_grace_s)
                )
                self._stop(containers, grace)
                self._write(self._pod_status(self._terminal_phase(containers), containers))
                if self.deleting:
                    self._delete()
                return
            if deadline_s is not None and time.monotonic() - started > float(deadline_s):
                message = "Pod was active on the node longer than the specified deadline"
                self._event("Normal", "DeadlineExceeded", message)
                self._stop(containers, self._grace_s())
                self._write(self._pod_status("Failed", containers, "DeadlineExceeded", message))
                self._await_deletion()
                return
            if all(c.terminated and not self._restarts(c, policy) for c in containers):
                self._write(self._pod_status(self._terminal_phase(containers), containers))
                self._await_deletion()
                return
            if changed:
                self._write(self._pod_status("Running", containers))
            self._sleep(0.2)

    @staticmethod
    def _restarts(c: Container, policy: str) -> bool:
        terminated = c.terminated or {}
        return policy == "Always" or (policy == "OnFailure" and terminated.get("exitCode") != 0)

    @staticmethod
    def _terminal_phase(containers: list[Container]) -> str:
        codes = [(c.terminated or {}).get("exitCode") for c in containers]
        return "Succeeded" if all(code == 0 for code in codes) else "Failed"

    def _await_deletion(self) -> None:
        while not self.runner.stopping:
            if self.gone:
                return
            if self.deleting:
                self._delete()
                return
            self._sleep(5.0)

    def _report_lost(self, status: dict[str, Any]) -> None:
        # Running according to the API but not in this runner: a previous runner's process, gone.
        message = "The container could not be located when the pod was terminated"
        lost = []
        for found in status.get("containerStatuses") or []:
            terminated = {
                "exitCode": UNKNOWN_EXIT_CODE,
                "reason": "ContainerStatusUnknown",
                "message": message,
            }
            lost.append({**found, "ready": False, "started": False, "state": {"terminated": terminated}})
        self._write({"phase": "Failed", "containerStatuses": lost})

    # -- containers ----------------------------------------------------------------------------------

    def _container(self, spec: dict[str, Any], mounts: dict[str, Path]) -> Container:
        name = spec["name"]
        own = self.dir / name
        own.mkdir(parents=True, exist_ok=True)
        paths: dict[str, Path] = {}
        for mount in spec.get("volumeMounts") or []:
            if mount["name"] not in mounts:
                raise ConfigError(f"volumeMount {mount['name']!r} names no volume of the pod")
            host = mounts[mount["name"]]
            sub = mount.get("subPath")
            if sub:
                host = host / sub
                if not host.exists():
                    host.mkdir(parents=True)
            paths[mount["mountPath"]] = host
        termination = spec.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
        paths[termination] = own / "termination-log"
        working = spec.get("workingDir")
        rootfs = self.dir / "rootfs"
        if working and PathMap.of(paths).host(working) is None:
            paths[working] = rootfs / working.lstrip("/")
        path_map = PathMap.of(paths)
        cwd = path_map.host(working) if working else rootfs
        assert cwd is not None
        cwd.mkdir(parents=True, exist_ok=True)

        env = {key: path_map.rewrite(value) for key, value in self._environment(spec).items()}
        argv = [path_map.rewrite(expand(word, env)) for word in [*spec["command"], *(spec.get("args") or [])]]
        return Container(spec, argv, env, cwd, own / "termination-log", own)

    def _environment(self, spec: dict[str, Any]) -> dict[str, str]:
        """The kubelet's order: the image's (here: the runner's base), envFrom, then env, each
        `value` expanded with what is defined before it."""
        home, tmp = self.dir / "home", self.dir / "tmp"
        home.mkdir(exist_ok=True)
        tmp.mkdir(exist_ok=True)
        env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
        env |= {
            "HOSTNAME": self.pod["spec"].get("hostname") or self.name,
            "HOME": str(home),
            "TMPDIR": str(tmp),
        }
        env |= self.runner.network_env
        for source in spec.get("envFrom") or []:
            prefix = source.get("prefix", "")
            ref = source.get("configMapRef") or source.get("secretRef") or {}
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            data = self._data(kind, ref["name"], optional=bool(ref.get("optional")))
            env |= {prefix + key: value.decode(errors="replace") for key, value in (data or {}).items()}
        for var in spec.get("env") or []:
            value = self._env_value(var, env)
            if value is not None:
                env[var["name"]] = value
        return env

    def _env_value(self, var: dict[str, Any], env: Mapping[str, str]) -> str | None:
        source = var.get("valueFrom")
        if not source:
            return expand(var.get("value", ""), env)
        if "fieldRef" in source:
            return field_value(self.pod, source["fieldRef"]["fieldPath"])
        for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            if key in source:
                ref = source[key]
                optional = bool(ref.get("optional"))
                data = self._data(kind, ref["name"], optional)
                if data is None or ref["key"] not in data:
                    if optional:
                        return None
                    raise ConfigError(
                        f"couldn't find key {ref['key']} in {kind} {self.namespace}/{ref['name']}"
                    )
                return data[ref["key"]].decode(errors="replace")
        raise ConfigError(f"env {var['name']}: {', '.join(source)} is not resolved by the local runner")

    def _start(self, c: Container) -> None:
        c.log_dir.mkdir(parents=True, exist_ok=True)
        c.termination_file.write_bytes(b"")
        executable = self._executable(c)
        started = now()
        with c.log_file.open("ab") as out:
            try:
                if executable is None:
                    raise FileNotFoundError(f'exec: "{c.argv[0]}": executable file not found in $PATH')
                c.process = subprocess.Popen(
                    [executable, *c.argv[1:]],
                    cwd=c.cwd,
                    env=c.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    process_group=0,  # its own group: SIGTERM reaches what it started too
                )
            except OSError as exc:
                # What the runtime reports for a process it could not start.
                message = f"failed to start container {c.name!r}: {exc}"
                out.write(f"{message}\n".encode())
                c.process, c.started_at = None, None
                c.state = {
                    "terminated": {
                        "exitCode": 128,
                        "reason": "StartError",
                        "message": message,
                        "startedAt": started,
                        "finishedAt": started,
                    }
                }
                self._event("Warning", "Failed", message)
                return
        c.started_at = started
        c.state = {"running": {"startedAt": started}}
        image = c.spec.get("image")
        self._event(
            "Normal",
            "Started",
            f"Started container {c.name} as local process {c.process.pid} ({executable}); "
            f"image {image!r} is not used by the local runner",
        )

    def _executable(self, c: Container) -> str | None:
        first = c.argv[0]
        path = c.env.get("PATH", os.defpath)
        if "/" not in first:
            return shutil.which(first, path=path)
        candidate = first if first.startswith("/") else str(c.cwd / first)
        if os.access(candidate, os.X_OK):
            return candidate
        # An image's absolute path (/usr/local/bin/shinsa): the program of that name here.
        return shutil.which(posixpath.basename(first), path=path) if first.startswith("/") else None

    def _reap(self, c: Container) -> bool:
        """Record the exit of a container that stopped since the last look; True when it did."""
        if c.process is None or c.terminated is not None or c.process.poll() is None:
            return False
        code = exit_code(c.process.returncode)
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": c.started_at,
            "finishedAt": now(),
            "containerID": f"local://{c.process.pid}",
        }
        if c.process.returncode < 0:
            terminated["signal"] = -c.process.returncode
        message = self._termination_message(c, code)
        if message:
            terminated["message"] = message
        c.state = {"terminated": terminated}
        c.next_start = time.monotonic() + c.backoff_s
        c.backoff_s = min(c.backoff_s * 2, BACKOFF_MAX_S)
        return True

    def _termination_message(self, c: Container, code: int) -> str:
        try:
            message = c.termination_file.read_bytes()[:MAX_TERMINATION_MESSAGE_BYTES].decode(errors="replace")
        except FileNotFoundError:
            message = ""
        if not message and code != 0 and c.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            message = log_tail(c.log_file)
        return message

    def _stop(self, containers: list[Container], grace_s: float) -> None:
        """SIGTERM to each running container's process group, SIGKILL to what is left after grace."""
        running = [c for c in containers if c.running]
        if running:
            names = ", ".join(c.name for c in running)
            self._event("Normal", "Killing", f"Stopping container {names} (grace period {grace_s:.0f}s)")
        for c in running:
            assert c.process is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(c.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while any(c.running for c in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for c in running:
            assert c.process is not None
            if c.running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(c.process.pid, signal.SIGKILL)
                c.process.wait()
            self._reap(c)

    # -- volumes -------------------------------------------------------------------------------------

    def _mount_volumes(self) -> dict[str, Path]:
        mounts: dict[str, Path] = {}
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            if "hostPath" in volume:
                mounts[name] = self._host_path(volume["hostPath"], name)
                continue
            target = self.dir / "volumes" / name
            if "emptyDir" in volume:
                target.mkdir(parents=True, exist_ok=True)
            else:
                # Written afresh at each attempt; a half-written projection is never left.
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                for path, data, mode in self._volume_files(volume):
                    _write_file(target, path, data, mode)
            mounts[name] = target
        return mounts

    def _host_path(self, source: dict[str, Any], name: str) -> Path:
        path = Path(source["path"])
        kind = source.get("type", "")
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif kind and not path.exists():
            raise MountError(f'MountVolume.SetUp failed for volume "{name}": hostPath {path} does not exist')
        return path

    def _volume_files(self, volume: dict[str, Any]) -> Iterator[tuple[str, bytes, int]]:
        name = volume["name"]
        if "projected" in volume:
            projected = volume["projected"]
            default = projected.get("defaultMode", 0o644)
            for source in projected.get("sources") or []:
                yield from self._source_files(source, default, name)
        else:
            kind = next(k for k in ("configMap", "secret", "downwardAPI") if k in volume)
            source = volume[kind]
            yield from self._source_files({kind: source}, source.get("defaultMode", 0o644), name)

    def _source_files(
        self, source: dict[str, Any], default_mode: int, volume: str
    ) -> Iterator[tuple[str, bytes, int]]:
        for kind, key in (("configMap", "name"), ("secret", "secretName")):
            if kind not in source:
                continue
            ref = source[kind]
            ref_name = ref.get(key) or ref.get("name")
            data = self._data(
                "ConfigMap" if kind == "configMap" else "Secret", ref_name, bool(ref.get("optional"))
            )
            if data is None:
                return
            items = ref.get("items")
            if not items:
                for item_key, value in data.items():
                    yield item_key, value, default_mode
                return
            for item in items:
                if item["key"] not in data:
                    if ref.get("optional"):
                        continue
                    raise MountError(
                        f'MountVolume.SetUp failed for volume "{volume}": configmap or secret references '
                        f"non-existent key {item['key']} of {ref_name}"
                    )
                yield item["path"], data[item["key"]], item.get("mode", default_mode)
            return
        if "downwardAPI" in source:
            for item in source["downwardAPI"].get("items") or []:
                if "fieldRef" not in item:
                    raise MountError(
                        f'volume "{volume}": only fieldRef items of the downward API are projected'
                    )
                text = field_value(self.pod, item["fieldRef"]["fieldPath"])
                yield item["path"], text.encode(), item.get("mode", default_mode)
        elif "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            yield token["path"], self._token(token).encode(), default_mode
        else:
            raise MountError(f'volume "{volume}": projected source {", ".join(source)} is not supported')

    def _token(self, projection: dict[str, Any]) -> str:
        # The kubelet asks the TokenRequest API for a token bound to the pod; so does this. It is not
        # refreshed before it expires.
        spec: dict[str, Any] = {
            "expirationSeconds": projection.get("expirationSeconds", 3600),
            "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid},
        }
        if projection.get("audience"):
            spec["audiences"] = [projection["audience"]]
        account = self.pod["spec"].get("serviceAccountName") or "default"
        try:
            answer = self.runner.core.create_namespaced_service_account_token(
                account, self.namespace, {"spec": spec}, _preload_content=False
            )
        except ApiException as exc:
            raise MountError(f"token for service account {account}: {exc.reason}") from None
        return str(json.loads(answer.data)["status"]["token"])

    def _data(self, kind: str, name: str, optional: bool) -> dict[str, bytes] | None:
        """The keys of a ConfigMap (data and binaryData) or Secret, decoded; None when it is missing
        and optional."""
        read = (
            self.runner.core.read_namespaced_config_map
            if kind == "ConfigMap"
            else self.runner.core.read_namespaced_secret
        )
        try:
            found = json.loads(read(name, self.namespace, _preload_content=False).data)
        except ApiException as exc:
            if exc.status == 404 and optional:
                return None
            if exc.status == 404:
                raise ConfigError(f'{kind.lower()} "{name}" not found') from None
            raise MountError(f"{kind} {self.namespace}/{name}: {exc.reason}") from None
        data: dict[str, bytes] = {}
        try:
            if kind == "Secret":
                data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
            else:
                data = {k: v.encode() for k, v in (found.get("data") or {}).items()}
                data |= {k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()}
        except binascii.Error as exc:
            raise ConfigError(f"{kind} {self.namespace}/{name}: {exc}") from None
        return data

    # -- the API -------------------------------------------------------------------------------------

    def _pod_status(
        self, phase: str, containers: list[Container], reason: str | None = None, message: str | None = None
    ) -> dict[str, Any]:
        ready = phase == "Running" and all("running" in c.state for c in containers)
        not_ready = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        unready = [c.name for c in containers if "running" not in c.state]
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": self._start_time,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", True),
                self._condition("ContainersReady", ready, not_ready, unready),
                self._condition("Ready", ready, not_ready, unready),
            ],
            "containerStatuses": [c.status() for c in containers],
        }
        if reason:
            status |= {"reason": reason, "message": message or ""}
        return status

    def _condition(
        self, kind: str, true: bool, reason: str = "", unready: list[str] | None = None
    ) -> dict[str, Any]:
        value = "True" if true else "False"
        seen = self._conditions.get(kind)
        since = seen[1] if seen and seen[0] == value else now()
        self._conditions[kind] = (value, since)
        condition = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": since}
        if not true and reason:
            condition["reason"] = reason
            if reason == "ContainersNotReady":
                condition["message"] = f"containers with unready status: [{' '.join(unready or [])}]"
        return condition

    def _write(self, status: dict[str, Any]) -> None:
        """Patch the pod's status (strategic merge: conditions by type, containers by name), with
        the uid as precondition, as the kubelet's status manager does; unchanged status is not sent."""
        text = json.dumps(status, sort_keys=True)
        if text == self._reported or self.gone:
            return
        body = {"metadata": {"uid": self.uid}, "status": status}
        try:
            self.runner.core.patch_namespaced_pod_status(
                self.name, self.namespace, body, _preload_content=False
            )
            self._reported = text
        except ApiException as exc:
            if exc.status in (404, 409):
                self.gone = True
            else:
                log.warning("pod %s/%s: status not written: %s", self.namespace, self.name, exc.reason)

    def _delete(self) -> None:
        if self.gone:
            return
        options = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
        with contextlib.suppress(ApiException):
            self.runner.core.delete_namespaced_pod(
                self.name, self.namespace, body=options, _preload_content=False
            )
        self.gone = True

    def _event(self, kind: str, reason: str, message: str) -> None:
        key = f"{reason}:{message}"
        if key in self._events:
            return
        self._events.add(key)
        self.runner.event(self.pod, kind, reason, message)


def _write_file(root: Path, relative: str, data: bytes, mode: int) -> None:
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or ".." in parts:
        raise MountError(f"volume item path {relative!r} must be relative and stay inside the volume")
    target = root.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)


# -- the node ---------------------------------------------------------------------------------------


def host_capacity() -> dict[str, str]:
    """This machine's CPUs and memory, as a kubelet reports its node's capacity."""
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib or 4 * 1024 * 1024}Ki",
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }


def node_manifest(name: str, capacity: Mapping[str, str]) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": COMPONENT,
        **RUNNER_NODE_SELECTOR,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": [RUNNER_TAINT]},
        "status": node_status(capacity),
    }


def node_status(capacity: Mapping[str, str]) -> dict[str, Any]:
    stamp = now()

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
        }

    return {
        "capacity": dict(capacity),
        "allocatable": dict(capacity),
        "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": NODE_NAME}],
        "conditions": [
            condition("Ready", "True", "KubeletReady", "the local runner is posting ready status"),
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "not measured"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "not measured"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "not measured"),
        ],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "architecture": "amd64",
            "operatingSystem": "linux",
            "containerRuntimeVersion": "local://processes",
            "osImage": "local processes (shinsa local runner)",
            "kernelVersion": os.uname().release,
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


class LocalRunner:
    """The Node `node_name` and a pod worker for each pod bound to it. `network_env` is added to
    every container's environment (the model endpoints' Service proxy)."""

    def __init__(
        self,
        api: client.ApiClient,
        run_dir: Path,
        *,
        node_name: str = NODE_NAME,
        network_env: Mapping[str, str] | None = None,
        shutdown_grace_s: float = 5.0,
        capacity: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.run_dir = run_dir.resolve()
        self.pods_dir = self.run_dir / "pods"
        self.node_name = node_name
        self.network_env = dict(network_env or {})
        self.shutdown_grace_s = shutdown_grace_s
        self.capacity = dict(capacity or host_capacity())
        self._stop = threading.Event()
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> LocalRunner:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self._register()
        for target, name in ((self._heartbeat, "node heartbeat"), (self._watch, "pod watch")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop every running container (SIGTERM, then SIGKILL after `shutdown_grace_s`) and
        report it; the Node stays, NotReady once its Lease runs out."""
        self._stop.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.observe(worker.pod)
        for worker in workers:
            worker.thread.join(timeout=self.shutdown_grace_s + 10)
        # The heartbeat ends at once; the watch thread may sit in a long poll and ends with the
        # process (it is a daemon).
        self._threads[0].join(timeout=5)

    def __enter__(self) -> LocalRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- node ----------------------------------------------------------------------------------------

    def _register(self) -> None:
        manifest = node_manifest(self.node_name, self.capacity)
        try:
            self.core.create_node(manifest, _preload_content=False)
        except ApiException as exc:
            if exc.status != 409:
                raise
            meta = {"labels": manifest["metadata"]["labels"]}
            self.core.patch_node(
                self.node_name, {"metadata": meta, "spec": manifest["spec"]}, _preload_content=False
            )
        self._report_node()
        self._renew_lease()

    def _report_node(self) -> None:
        body = {"status": node_status(self.capacity)}
        self.core.patch_node_status(self.node_name, body, _preload_content=False)

    def _renew_lease(self) -> None:
        node = json.loads(self.core.read_node(self.node_name, _preload_content=False).data)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.node_name,
                "namespace": "kube-node-lease",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "name": self.node_name,
                        "uid": node["metadata"]["uid"],
                    }
                ],
            },
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": LEASE_DURATION_S,
                "renewTime": micro_now(),
            },
        }
        try:
            self.coordination.replace_namespaced_lease(
                self.node_name, "kube-node-lease", self._with_version(lease), _preload_content=False
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.coordination.create_namespaced_lease("kube-node-lease", lease, _preload_content=False)

    def _with_version(self, lease: dict[str, Any]) -> dict[str, Any]:
        found = json.loads(
            self.coordination.read_namespaced_lease(
                self.node_name, "kube-node-lease", _preload_content=False
            ).data
        )
        lease["metadata"]["resourceVersion"] = found["metadata"]["resourceVersion"]
        return lease

    def _heartbeat(self) -> None:
        last_report = time.monotonic()
        while not self._stop.wait(LEASE_RENEW_S):
            try:
                self._renew_lease()
                if time.monotonic() - last_report >= STATUS_REPORT_S:
                    self._report_node()
                    last_report = time.monotonic()
            except Exception as exc:  # the API server restarting; the next beat retries
                log.warning("node heartbeat failed: %s", exc)

    # -- pods ----------------------------------------------------------------------------------------

    def _watch(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        while not self._stop.is_set():
            try:
                listing = json.loads(
                    self.core.list_pod_for_all_namespaces(
                        field_selector=selector, _preload_content=False
                    ).data
                )
                present = {pod["metadata"]["uid"] for pod in listing["items"]}
                for pod in listing["items"]:
                    self._observe(pod)
                with self._lock:
                    vanished = [w for uid, w in self._workers.items() if uid not in present]
                for worker in vanished:
                    worker.observe(None)
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                )
                for event in stream:
                    if self._stop.is_set():
                        break
                    pod = event["raw_object"]
                    if event["type"] == "ERROR":
                        break  # e.g. 410 Gone: list again
                    self._observe(pod, gone=event["type"] == "DELETED")
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("pod watch interrupted: %s", exc)
                    self._stop.wait(1.0)

    def _observe(self, pod: dict[str, Any], gone: bool = False) -> None:
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if worker is None:
                if gone or self._stop.is_set():
                    return
                worker = self._workers[uid] = PodWorker(self, pod)
                worker.thread.start()
                return
        worker.observe(None if gone else pod)

    def _forget(self, uid: str) -> None:
        with self._lock:
            self._workers.pop(uid, None)

    def event(self, pod: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """A core/v1 Event on `pod` from this node, as the kubelet posts them; best effort."""
        meta = pod["metadata"]
        stamp = now()
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": COMPONENT, "host": self.node_name},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.node_name,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], body, _preload_content=False)
        except ApiException as exc:
            log.info("event %s on %s/%s not posted: %s", reason, meta["namespace"], meta["name"], exc.reason)


# -- as a process -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the dev cluster's pods bound to the local-runner Node.")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--dir", required=True, type=Path, help="pod directories and logs go under DIR/pods")
    parser.add_argument("--node-name", default=NODE_NAME)
    parser.add_argument(
        "--model-endpoints",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve stand-ins for ModelDeployments and route their Service URLs to them",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api = config.new_client_from_config(config_file=str(args.kubeconfig))

    stop = threading.Event()

    def on_signal(signum: int, frame: types.FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    closers: list[Callable[[], None]] = []
    network_env: dict[str, str] = {}
    if args.model_endpoints:
        from shinsa.devcluster.model_endpoints import ModelEndpoints

        endpoints = ModelEndpoints(api).start()
        closers.append(endpoints.stop)
        network_env = endpoints.proxy_env()
    runner = LocalRunner(api, args.dir, node_name=args.node_name, network_env=network_env).start()
    closers.insert(0, runner.stop)
    info = {"node": runner.node_name, "pods": str(runner.pods_dir), "env": network_env}
    # Written whole, then renamed: LocalCluster takes its appearance as "started".
    written = args.dir / "runner.json.tmp"
    written.write_text(json.dumps(info, indent=2))
    written.replace(args.dir / "runner.json")
    log.info("running pods of node %s under %s", runner.node_name, runner.pods_dir)
    stop.wait()
    for close in closers:
        close()


if __name__ == "__main__":
    main()
