"""ModelDeployment reconcile latency: the operator against the API server's own floor, same run.

N ModelDeployments are created at once (a fixed client concurrency) in a namespace the operator
watches, and kubernetes watch streams record when each one first has

  (a) children present: its Deployment and its Service exist,
  (b) status written:   status.observedGeneration == metadata.generation and a Planned condition,
  (c) Ready:            its Ready condition is True (pods placed by the real scheduler, made Ready
                        by KWOK, seen by the operator's pod handler).

The floor, measured first in a namespace the operator does not watch: the same rendered children
(`desired_state`, i.e. planner + render, with the owners' real uids) server-side applied straight
from this process, Deployment then Service per object, with the same concurrency, timed the same
way (and Deployment available for (c)). Machines are noisy: read the ratios, not the seconds.

    .venv/bin/python benchmarks/bench_model_deployments.py --count 200 --concurrency 16 --json out.json

It starts (and stops) its own local control plane with enough simulated 8-GPU H100 nodes for both
namespaces, installs the CRDs and runs `shinsa operator run` as a subprocess. It ends by itself
after --timeout seconds and cleans up on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.watch.watch import iter_resp_lines
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from shinsa.api import ModelDeployment
from shinsa.api.crd import crd_manifests
from shinsa.controllers.desired import desired_state
from shinsa.controllers.kube import FIELD_MANAGER, GROUP, VERSION
from shinsa.controllers.sources import resolve_architecture
from shinsa.devcluster import processes
from shinsa.devcluster.cluster import LocalCluster, NodePool, free_port
from shinsa.devcluster.crds import install_crds as shared_install_crds
from shinsa.render import MODEL_DEPLOYMENT_LABEL

PLURAL = "modeldeployments"
GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"
GPUS_PER_NODE = 8
FLOOR_NS, OPERATOR_NS = "bench-floor", "bench-operator"
WARMUP = "warmup"
CONTROL_PLANE = ["kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok"]
# No request of the benchmark's own may hang an abort.
REQUEST_TIMEOUT_S = 60

console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)


class Abort(Exception):
    """Ctrl-C, SIGTERM or the overall --timeout: stop, clean up, report what was measured."""


def model_deployment(name: str, namespace: str) -> dict[str, Any]:
    """A small dense deployment: LLM-jp-4 8B at 8k context plans to TP1 on one H100."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"uri": "hf://llm-jp/llm-jp-4-8b"},
            "serving": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": GPU_PRODUCT}},
        },
    }


# -- observation ---------------------------------------------------------------------------------


class Recorder:
    """The first moment (time.monotonic) each object satisfied each named measure, filled in by the
    watch threads; the main thread waits on it."""

    def __init__(self) -> None:
        self.first: dict[str, dict[str, float]] = defaultdict(dict)
        self.events: Counter[str] = Counter()
        self.cond = threading.Condition()

    def mark(self, measure: str, name: str, at: float) -> None:
        with self.cond:
            if measure not in self.first[name]:
                self.first[name][measure] = at
                self.cond.notify_all()

    def count(self, what: str) -> None:
        with self.cond:
            self.events[what] += 1

    def times(self, measure: str, names: Iterable[str]) -> dict[str, float]:
        with self.cond:
            return {n: self.first[n][measure] for n in names if measure in self.first[n]}

    def wait(self, measures: list[str], names: list[str], deadline: float) -> bool:
        with self.cond:
            while True:
                if all(all(m in self.first[n] for m in measures) for n in names):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 1.0))


class Watcher(threading.Thread):
    """A raw watch stream (JSON lines, no model deserialization, so observing stays cheap) from a
    list's resourceVersion: nothing created after `start()` returns is missed."""

    def __init__(self, kind: str, list_fn: Callable[..., Any], on_event: Callable[[str, dict, float], None]):
        super().__init__(name=f"watch-{kind}", daemon=True)
        self.kind, self.list_fn, self.on_event = kind, list_fn, on_event
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        listed = json.loads(self.list_fn(_preload_content=False).data)
        self.resource_version = listed["metadata"]["resourceVersion"]
        now = time.monotonic()
        for item in listed.get("items", []):
            self.on_event("ADDED", item, now)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                response = self.list_fn(
                    watch=True,
                    resource_version=self.resource_version,
                    allow_watch_bookmarks=True,
                    timeout_seconds=30,
                    _preload_content=False,
                    _request_timeout=(10, 60),
                )
                try:
                    for line in iter_resp_lines(response):
                        at = time.monotonic()
                        if self.stopping.is_set():
                            return
                        if not line:
                            continue
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            raise RuntimeError(f"watch of {self.kind} failed: {event['object']}")
                        obj = event["object"]
                        self.resource_version = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.on_event(event["type"], obj, at)
                finally:
                    response.close()
                    response.release_conn()
        except BaseException as exc:  # surfaced by the main thread
            if not self.stopping.is_set():
                self.error = exc

    def stop(self) -> None:
        self.stopping.set()


def child_watchers(api: client.ApiClient, namespace: str, rec: Recorder) -> list[Watcher]:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    selector = MODEL_DEPLOYMENT_LABEL

    def on_deployment(kind: str, obj: dict, at: float) -> None:
        name = obj["metadata"]["labels"][MODEL_DEPLOYMENT_LABEL]
        rec.count(f"Deployment {kind}")
        if kind != "DELETED":
            rec.mark("deployment", name, at)
            if (obj.get("status") or {}).get("availableReplicas", 0) >= 1:
                rec.mark("available", name, at)

    def on_service(kind: str, obj: dict, at: float) -> None:
        rec.count(f"Service {kind}")
        if kind != "DELETED":
            rec.mark("service", obj["metadata"]["labels"][MODEL_DEPLOYMENT_LABEL], at)

    return [
        Watcher(
            "deployments",
            lambda **kw: apps.list_namespaced_deployment(namespace, label_selector=selector, **kw),
            on_deployment,
        ),
        Watcher(
            "services",
            lambda **kw: core.list_namespaced_service(namespace, label_selector=selector, **kw),
            on_service,
        ),
    ]


def status_watcher(api: client.ApiClient, namespace: str, rec: Recorder) -> Watcher:
    custom = client.CustomObjectsApi(api)

    def on_md(kind: str, obj: dict, at: float) -> None:
        rec.count(f"ModelDeployment {kind}")
        if kind == "DELETED":
            return
        name, status = obj["metadata"]["name"], obj.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        if status.get("observedGeneration") == obj["metadata"].get("generation") and "Planned" in conditions:
            rec.mark("status", name, at)
        if conditions.get("Ready", {}).get("status") == "True":
            rec.mark("ready", name, at)

    return Watcher(
        "modeldeployments",
        lambda **kw: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, **kw),
        on_md,
    )


# -- processes and metrics -----------------------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return sum(int(f) for f in fields[11:15]) / _TICK


def control_plane_pids(state_dir: Path) -> dict[str, int]:
    return {m.name: m.pid for m in processes.running(state_dir) if m.name in CONTROL_PLANE}


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {**{n: cpu_seconds(p) for n, p in pids.items()}, "benchmark": usage.ru_utime + usage.ru_stime}


def apiserver_requests(api: client.ApiClient) -> Counter[str]:
    """apiserver_request_total summed by `VERB resource[/subresource]`."""
    text = api.rest_client.GET(f"{api.configuration.host}/metrics", _preload_content=False).data.decode()
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if sample.name != "apiserver_request_total":
                continue
            labels = sample.labels
            what = labels.get("resource", "") + (
                f"/{labels['subresource']}" if labels.get("subresource") else ""
            )
            totals[f"{labels.get('verb', '')} {what}"] += int(sample.value)
    return totals


def operator_metrics(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (
                "shinsa_reconcile_total",
                "shinsa_reconcile_duration_seconds_sum",
                "shinsa_reconcile_duration_seconds_count",
            ):
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
            elif sample.name == "shinsa_reconcile_errors_total":
                key = f"{sample.name}{{reason={sample.labels.get('reason')}}}"
                found[key] = found.get(key, 0.0) + sample.value
    return found


class Operator:
    """`shinsa operator run` as a subprocess in its own session, watching one namespace."""

    def __init__(self, namespace: str, kubeconfig: Path, log: Path) -> None:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        self.log = log
        argv = [
            sys.executable,
            "-m",
            "shinsa.cli",
            "operator",
            "run",
            f"--namespace={namespace}",
            f"--metrics-port={self.metrics_port}",
            f"--liveness-port={self.liveness_port}",
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            )

    def wait_live(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the operator exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the operator did not become live; see {self.log}")

    def stop(self, grace_s: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# -- setup ---------------------------------------------------------------------------------------


def make_client(kubeconfig: Path, pool: int) -> client.ApiClient:
    """A client whose connection pool holds `pool` connections, so `pool` threads never queue for
    one or open throwaway ones."""
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    cfg.connection_pool_maxsize = pool
    return client.ApiClient(cfg)


def install_crds(dynamic: DynamicClient, api: client.ApiClient, deadline: float) -> None:
    shared_install_crds(api, crd_manifests(), FIELD_MANAGER, timeout_s=max(1.0, deadline - time.monotonic()))
    # The dynamic client's discovery must see the new group before anything uses it.
    dynamic.resources.invalidate_cache()


def make_namespace(api: client.ApiClient, name: str, deadline: float) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})

    def has_default_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
            return True
        except ApiException as exc:
            if exc.status != 404:
                raise
            return False

    # Pods are refused until the namespace's default service account exists.
    poll(has_default_sa, deadline, f"the default service account of {name}")


def poll(probe: Callable[[], bool], deadline: float, what: str, every_s: float = 0.3) -> None:
    """Setup only (never inside a timed window)."""
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(every_s)
    raise Abort(f"timed out waiting for {what}")


@contextmanager
def thread_pool(workers: int) -> Iterator[ThreadPoolExecutor]:
    """A pool that, when left early (Ctrl-C, --timeout), drops what has not started yet."""
    pool = ThreadPoolExecutor(workers)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def create_all(
    pool: ThreadPoolExecutor, fn: Callable[[str], Any], names: list[str]
) -> tuple[float, dict[str, float], list[Any]]:
    """Run fn(name) for every name on the pool at once; returns (batch start, per-name request start,
    results). The per-name start is taken when its first request is about to be sent."""
    started: dict[str, float] = {}

    def one(name: str) -> Any:
        started[name] = time.monotonic()
        return fn(name)

    batch = time.monotonic()
    results = list(pool.map(one, names))
    return batch, started, results


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(
    started: dict[str, float], batch: float, done: dict[str, float], names: list[str]
) -> dict[str, Any]:
    """Percentiles over all `names`: one that never got there counts as infinitely late, so a cut-off
    run shows inf rather than flattering statistics of the survivors."""
    latencies = [
        done[n] - started[n] if n in done and n in started else math.inf for n in names if n in started
    ]
    complete = all(n in done for n in names)
    return {
        "n": sum(1 for n in names if n in done),
        "of": len(names),
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "max_s": max(latencies, default=math.inf),
        # From the first request of the batch to the last object satisfying the measure.
        "makespan_s": max(done[n] for n in names) - batch if complete else math.inf,
    }


def both(rec: Recorder, names: list[str]) -> dict[str, float]:
    deployments, services = rec.times("deployment", names), rec.times("service", names)
    return {n: max(deployments[n], services[n]) for n in names if n in deployments and n in services}


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def finite(value: Any) -> Any:
    """JSON without Infinity/NaN: None where a measure was not reached."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    return value


def incomplete(result: dict[str, Any]) -> list[str]:
    return [
        f"{run} {measure}"
        for run in ("floor", "operator")
        for measure, stats in result[run].items()
        if isinstance(stats, dict) and "of" in stats and stats["n"] < stats["of"]
    ]


# -- the phases ----------------------------------------------------------------------------------


def floor_phase(
    api: client.ApiClient, dynamic: DynamicClient, names: list[str], args: argparse.Namespace, ctx: dict
) -> dict[str, Any]:
    deadline = ctx["deadline"]
    make_namespace(api, FLOOR_NS, deadline)
    custom = client.CustomObjectsApi(api)
    with thread_pool(args.concurrency) as pool:
        # Owners with real uids (never reconciled: the operator watches only its own namespace), so the
        # children carry the same owner references as the operator's and the garbage collector keeps them.
        bodies = list(
            pool.map(
                lambda n: custom.create_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    FLOOR_NS,
                    PLURAL,
                    model_deployment(n, FLOOR_NS),
                    _request_timeout=REQUEST_TIMEOUT_S,
                ),
                [WARMUP, *names],
            )
        )
    children: dict[str, list[dict[str, Any]]] = {}
    for body in bodies:
        md = ModelDeployment.from_body(body)
        children[body["metadata"]["name"]] = desired_state(
            md, resolve_architecture(md, md.spec.model.uri), GPUS_PER_NODE, md.spec.model.uri
        ).children
    resources = {
        (c["apiVersion"], c["kind"]): dynamic.resources.get(api_version=c["apiVersion"], kind=c["kind"])
        for c in children[WARMUP]
    }

    def apply_children(name: str) -> None:
        for child in children[name]:
            dynamic.server_side_apply(
                resources[(child["apiVersion"], child["kind"])],
                body=child,
                namespace=FLOOR_NS,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
                _request_timeout=REQUEST_TIMEOUT_S,
            )

    rec = Recorder()
    watchers = child_watchers(ctx["watch_api"], FLOOR_NS, rec)
    for w in watchers:
        w.start()
    try:
        with thread_pool(args.concurrency) as pool:
            apply_children(WARMUP)  # connections and discovery warm, as in a long-running operator
            rec.wait(["deployment", "service", "available"], [WARMUP], deadline)
            requests_before, cpu_before = apiserver_requests(api), cpu_snapshot(ctx["pids"])
            batch, started, _ = create_all(pool, apply_children, names)
        rec.wait(["deployment", "service"], names, deadline)
        present_at = time.monotonic()
        rec.wait(["available"], names, min(deadline, time.monotonic() + args.ready_timeout))
        requests_after, cpu_after = apiserver_requests(api), cpu_snapshot(ctx["pids"])
    finally:
        for w in watchers:
            w.stop()
    check_watchers(watchers)
    return {
        "children_present": summarize(started, batch, both(rec, names), names),
        "deployment_available": summarize(started, batch, rec.times("available", names), names),
        "children_present_window_s": present_at - batch,
        "cpu_s": {k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        "apiserver_requests": dict((requests_after - requests_before).most_common()),
        "watch_events": dict(rec.events),
    }


def operator_phase(
    api: client.ApiClient, names: list[str], args: argparse.Namespace, ctx: dict
) -> dict[str, Any]:
    deadline = ctx["deadline"]
    make_namespace(api, OPERATOR_NS, deadline)
    custom = client.CustomObjectsApi(api)

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            OPERATOR_NS,
            PLURAL,
            model_deployment(name, OPERATOR_NS),
            _request_timeout=REQUEST_TIMEOUT_S,
        )

    operator = Operator(OPERATOR_NS, ctx["kubeconfig"], ctx["state_dir"] / "logs" / "bench-operator.log")
    ctx["operator"] = operator
    operator.wait_live(deadline)
    rec = Recorder()
    watchers = [
        *child_watchers(ctx["watch_api"], OPERATOR_NS, rec),
        status_watcher(ctx["watch_api"], OPERATOR_NS, rec),
    ]
    for w in watchers:
        w.start()
    pids = {**ctx["pids"], "operator": operator.proc.pid}
    try:
        with thread_pool(args.concurrency) as pool:
            # The operator's watch streams are up, its imports and client warm, its pod handler has
            # run: only then does the timed batch start.
            create(WARMUP)
            if not rec.wait(["deployment", "service", "status", "ready"], [WARMUP], deadline):
                raise Abort(f"the operator never reconciled the warm-up deployment; see {operator.log}")
            time.sleep(1.0)  # let the warm-up's trailing pod events drain
            requests_before, cpu_before = apiserver_requests(api), cpu_snapshot(pids)
            metrics_before = operator_metrics(operator.metrics_port)
            batch, started, _ = create_all(pool, create, names)
        rec.wait(["deployment", "service", "status"], names, deadline)
        status_at = time.monotonic()
        rec.wait(["available", "ready"], names, min(deadline, time.monotonic() + args.ready_timeout))
        requests_after, cpu_after = apiserver_requests(api), cpu_snapshot(pids)
        metrics_after = operator_metrics(operator.metrics_port)
    finally:
        for w in watchers:
            w.stop()
        operator.stop()
    check_watchers(watchers)
    return {
        "children_present": summarize(started, batch, both(rec, names), names),
        "status_written": summarize(started, batch, rec.times("status", names), names),
        "deployment_available": summarize(started, batch, rec.times("available", names), names),
        "ready": summarize(started, batch, rec.times("ready", names), names),
        "status_window_s": status_at - batch,
        "cpu_s": {k: cpu_after[k] - cpu_before[k] for k in cpu_after},
        "apiserver_requests": dict((requests_after - requests_before).most_common()),
        "operator_metrics": {k: v - metrics_before.get(k, 0.0) for k, v in metrics_after.items()},
        "watch_events": dict(rec.events),
    }


def check_watchers(watchers: list[Watcher]) -> None:
    for w in watchers:
        if w.error is not None:
            raise RuntimeError(f"watch of {w.kind} failed: {w.error!r}") from w.error


# -- report --------------------------------------------------------------------------------------


def report(result: dict[str, Any]) -> None:
    floor, op = result["floor"], result["operator"]
    fa = floor["children_present"]
    rows = [
        ("floor", "(a) children present (SSA)", fa, None),
        ("floor", "Deployment available", floor["deployment_available"], None),
        ("operator", "(a) children present", op["children_present"], fa),
        ("operator", "(b) status written", op["status_written"], fa),
        ("operator", "Deployment available", op["deployment_available"], floor["deployment_available"]),
        ("operator", "(c) Ready condition", op["ready"], floor["deployment_available"]),
    ]
    table = Table(
        title=f"{result['count']} ModelDeployments at once, client concurrency {result['concurrency']}"
        f" ({result['machine']['cpus']} CPUs)"
    )
    for column in (
        "run",
        "measure",
        "n",
        "p50 s",
        "p99 s",
        "max s",
        "makespan s",
        "p50 ×",
        "p99 ×",
        "makespan ×",
    ):
        table.add_column(column, justify="left" if column in ("run", "measure") else "right")
    for run, measure, stats, base in rows:
        cells = [f"{stats[k]:.3f}" for k in ("p50_s", "p99_s", "max_s", "makespan_s")]
        ratios = (
            [f"{ratio(stats[k], base[k]):.1f}" for k in ("p50_s", "p99_s", "makespan_s")]
            if base
            else ["", "", ""]
        )
        table.add_row(run, measure, f"{stats['n']}/{stats['of']}", *cells, *ratios)
    console.print(table)
    console.print("× = operator / floor, same run; (b) and (c) are divided by the floor's (a) and Available.")

    cpu = Table(title="CPU seconds spent during each timed window (until everything was Ready)")
    cpu.add_column("process")
    cpu.add_column("floor", justify="right")
    cpu.add_column("operator run", justify="right")
    for name in sorted(set(floor["cpu_s"]) | set(op["cpu_s"])):
        cpu.add_row(name, f"{floor['cpu_s'].get(name, float('nan')):.1f}", f"{op['cpu_s'].get(name, 0):.1f}")
    console.print(cpu)

    calls = Table(title=f"API server requests per object (apiserver_request_total / {result['count']})")
    calls.add_column("verb resource")
    calls.add_column("floor", justify="right")
    calls.add_column("operator run", justify="right")
    count = result["count"]
    keys = sorted(
        set(floor["apiserver_requests"]) | set(op["apiserver_requests"]),
        key=lambda k: -max(floor["apiserver_requests"].get(k, 0), op["apiserver_requests"].get(k, 0)),
    )
    for key in keys:
        f, o = floor["apiserver_requests"].get(key, 0), op["apiserver_requests"].get(key, 0)
        if max(f, o) >= count // 4 or key.startswith(("PATCH", "POST", "APPLY", "PUT")):
            calls.add_row(key, f"{f / count:.2f}", f"{o / count:.2f}")
    console.print(calls)
    console.print(f"operator metrics (timed batch): {op['operator_metrics']}")
    console.print(f"watch events seen, operator run: {op['watch_events']}")
    console.print(f"total wall time {result['wall_s']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="ModelDeployments created at once")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads, both runs")
    parser.add_argument(
        "--state-dir", type=Path, help="control-plane state and logs (kept); default a temp dir"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp state dir (logs) afterwards")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--timeout", type=float, default=600, help="overall limit in seconds")
    parser.add_argument(
        "--ready-timeout", type=float, default=120, help="how long each run waits for Ready/Available"
    )
    args = parser.parse_args(argv)

    def abort(signum: int, _frame: Any) -> None:
        raise Abort(f"{signal.Signals(signum).name}: stopping")

    signal.signal(signal.SIGTERM, abort)
    signal.signal(signal.SIGALRM, abort)
    signal.alarm(int(args.timeout))
    wall = time.monotonic()
    state_dir = (args.state_dir or Path(tempfile.mkdtemp(prefix="shinsa-bench-"))).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    names = [f"md-{i:04d}" for i in range(args.count)]
    # Both namespaces' pods fit, plus the two warm-ups: no pod waits for a GPU.
    nodes = math.ceil((2 * args.count + 2) / GPUS_PER_NODE)
    cluster = LocalCluster(state_dir, progress=lambda m: console.print(f"[dim]{m}[/dim]"))
    ctx: dict[str, Any] = {"deadline": wall + args.timeout - 15, "state_dir": state_dir}
    code = 1
    try:
        console.print(f"control plane with {nodes} simulated {GPUS_PER_NODE}-GPU nodes in {state_dir}")
        cluster.up([NodePool("gpu-node", nodes, gpus=GPUS_PER_NODE, gpu_product=GPU_PRODUCT)])
        ctx |= {
            "kubeconfig": cluster.kubeconfig,
            "watch_api": make_client(cluster.kubeconfig, 8),
            "pids": control_plane_pids(state_dir),
        }
        api = make_client(cluster.kubeconfig, args.concurrency)
        dynamic = DynamicClient(api)
        install_crds(dynamic, api, ctx["deadline"])
        console.print("floor: server-side applying the rendered children directly")
        floor = floor_phase(api, dynamic, names, args, ctx)
        console.print("operator: creating ModelDeployments")
        op = operator_phase(api, names, args, ctx)
        result = {
            "count": args.count,
            "concurrency": args.concurrency,
            "nodes": nodes,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "system": platform.platform(),
            },
            "floor": floor,
            "operator": op,
            "wall_s": time.monotonic() - wall,
        }
        report(result)
        if args.json:
            args.json.write_text(json.dumps(finite(result), indent=2))
        if missing := incomplete(result):
            console.print(f"[red]incomplete within the time limits: {', '.join(missing)}[/red]")
            code = 2
        else:
            code = 0
    except (Abort, KeyboardInterrupt) as exc:
        console.print(f"[red]aborted: {exc or 'interrupted'}[/red]")
        code = 130
    finally:
        signal.alarm(0)
        # Cleanup is not interrupted: a second Ctrl-C would leave processes behind.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if operator := ctx.get("operator"):
            operator.stop()
        cluster.down()
        if args.state_dir is None and not args.keep and code == 0:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            console.print(f"logs kept in {state_dir / 'logs'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
