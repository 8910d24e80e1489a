"""Stand-ins for ModelDeployments' serving pods in the dev cluster, and the route to them.

KWOK's vLLM pods serve nothing. `ModelEndpoints` serves, for each ModelDeployment, the project's
OpenAI-compatible test double (`shinsa.devcluster.openai_double`) on a loopback port, answering as
the deployment's served name (`spec.model.servedName`, else the resource name) plus the double's
judge models. The annotation `dev.shinsa.dev/answer-quality: "<k>"` on a ModelDeployment gives its
answers the double's quality marker, so its judged scores are k points above (or below) an
unannotated deployment's on every question; it may be changed while the stand-in runs.
`dev.shinsa.dev/judge-fault-status: "<http status>"` makes the stand-in answer every chat request
for its judge models with that status while the annotation is there (`GET /v1/models` still
answers, so an evaluator's preflight passes and its judgments fail): a judge that breaks mid-run.

Cluster DNS does not exist here: a process on this machine cannot resolve the Service URL the
operator writes into `status.endpoint` (`shinsa.render.endpoint_url`,
`http://<service>.<namespace>.svc:8000/v1`), which is what an EvalRun with a `deploymentRef` is
pointed at. `ServiceProxy` plays cluster DNS and kube-proxy for those URLs: an HTTP forward proxy on
loopback that sends a request for a ModelDeployment's Service host and port to its stand-in, and
any other request where it is addressed. The local runner puts it into its pods' environment as
HTTP_PROXY, with loopback in NO_PROXY (`proxy_env`), and every HTTP client the evaluator uses
(httpx, requests, botocore) honours those variables, so no operator code knows about the dev
cluster. https:// URLs are not proxied (HTTPS_PROXY is not set) and reach their hosts directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from shinsa.api import GROUP, VERSION, ModelDeployment
from shinsa.devcluster.openai_double import FakeOpenAI, Fault
from shinsa.render import endpoint_url

log = logging.getLogger("shinsa.devcluster.model_endpoints")

ANSWER_QUALITY_ANNOTATION = "dev.shinsa.dev/answer-quality"
JUDGE_FAULT_ANNOTATION = "dev.shinsa.dev/judge-fault-status"
# Hosts a pod reaches directly: the dev cluster's own servers (API server, MLflow, S3) listen there.
NO_PROXY = "localhost,127.0.0.1,::1"
_MAX_HEAD = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"}


def service_host(host: str) -> str:
    """A Service DNS name in the one form routes are kept in: `<svc>.<ns>.svc`."""
    host = host.lower().rstrip(".")
    return host.removesuffix(".cluster.local")


@dataclass
class StandIn:
    namespace: str
    name: str
    route: tuple[str, int]
    double: FakeOpenAI
    judge_fault: Fault | None = None

    @property
    def url(self) -> str:
        return self.double.url


class ServiceProxy:
    """An HTTP/1.1 forward proxy on 127.0.0.1 whose upstream is chosen by `resolve(host, port)`:
    an address, or None for a Service name nothing stands in for (answered 502). One request per
    connection (the proxy answers `Connection: close`), which every client copes with."""

    def __init__(self, resolve: Callable[[str, int], tuple[str, int] | None]) -> None:
        self.resolve = resolve
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="service proxy", daemon=True)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> ServiceProxy:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        )
        self._server = started.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._proxy(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            log.debug("proxied request ended: %s", exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            raise ValueError("request head too long")
        request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host, port, rest = host.strip("[]"), int(port_text), b""
        else:
            url = urlsplit(target)
            if not url.hostname:
                await _reply(writer, 400, "a proxy request names an absolute URL")
                return
            host, port = url.hostname, url.port or 80
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            headers = [h for h in header_lines if h.split(":", 1)[0].strip().lower() not in _HOP_BY_HOP]
            rest = "\r\n".join([f"{method} {path} {version}", *headers, "Connection: close", "", ""]).encode(
                "latin-1"
            )
        upstream = self.resolve(host, port)
        if upstream is None:
            await _reply(writer, 502, f"no stand-in serves the Service {host}:{port} in the dev cluster")
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*upstream)
        except OSError as exc:
            await _reply(writer, 502, f"{host}:{port} ({upstream[0]}:{upstream[1]}) is not reachable: {exc}")
            return
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            up_writer.write(rest)
        outbound = asyncio.create_task(_pipe(reader, up_writer))
        try:
            if method != "CONNECT":
                await _relay_response_head(up_reader, writer)
            await _pipe(up_reader, writer)
        finally:
            outbound.cancel()
            up_writer.close()


async def _relay_response_head(upstream: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # The client must not reuse its connection to the proxy for another host: say it closes.
    head = await upstream.readuntil(b"\r\n\r\n")
    status, *headers = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    kept = [h for h in headers if h.split(":", 1)[0].strip().lower() not in ("connection", "keep-alive")]
    writer.write("\r\n".join([status, *kept, "Connection: close", "", ""]).encode("latin-1"))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()


async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message}}).encode()
    reason = {400: "Bad Request", 502: "Bad Gateway"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"Connection: close\r\n\r\n" + body)
    await writer.drain()


class ModelEndpoints:
    """A stand-in per ModelDeployment, kept in step with the API server by a watch, and the
    `ServiceProxy` that routes each deployment's Service URL to it."""

    def __init__(self, api: client.ApiClient, judge_models: tuple[str, ...] = ("judge-a", "judge-b")) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.judge_models = judge_models
        self.proxy = ServiceProxy(self.resolve)
        self._stand_ins: dict[str, StandIn] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="model endpoints", daemon=True)

    def start(self) -> ModelEndpoints:
        self.proxy.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        # The watch thread may sit in a long poll; it is a daemon and ends with the process.
        self._stop.set()
        self.proxy.stop()
        with self._lock:
            stand_ins, self._stand_ins = list(self._stand_ins.values()), {}
        for stand_in in stand_ins:
            stand_in.double.stop()

    def __enter__(self) -> ModelEndpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def proxy_env(self) -> dict[str, str]:
        """The variables that send a pod's http:// requests through the proxy (both spellings:
        clients differ in which they read)."""
        url = self.proxy.url
        return {"HTTP_PROXY": url, "http_proxy": url, "NO_PROXY": NO_PROXY, "no_proxy": NO_PROXY}

    def stand_in(self, namespace: str, name: str) -> StandIn | None:
        with self._lock:
            return next(
                (s for s in self._stand_ins.values() if (s.namespace, s.name) == (namespace, name)), None
            )

    def resolve(self, host: str, port: int) -> tuple[str, int] | None:
        host = service_host(host)
        with self._lock:
            for stand_in in self._stand_ins.values():
                if stand_in.route == (host, port):
                    return "127.0.0.1", stand_in.double.port
        return None if host.endswith(".svc") else (host, port)

    # -- following the ModelDeployments ---------------------------------------------------------------

    def _watch(self) -> None:
        plural = ModelDeployment.plural
        while not self._stop.is_set():
            try:
                listing = self.custom.list_cluster_custom_object(GROUP, VERSION, plural)
                present = {md["metadata"]["uid"] for md in listing["items"]}
                for md in listing["items"]:
                    self._observe(md)
                with self._lock:
                    vanished = [uid for uid in self._stand_ins if uid not in present]
                for uid in vanished:
                    self._remove(uid)
                stream = watch.Watch().stream(
                    self.custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    plural,
                    resource_version=listing["metadata"]["resourceVersion"],
                    timeout_seconds=30,
                )
                for event in stream:
                    if self._stop.is_set():
                        break
                    if event["type"] == "ERROR":
                        break
                    md = event["raw_object"]
                    if event["type"] == "DELETED":
                        self._remove(md["metadata"]["uid"])
                    else:
                        self._observe(md)
            except ApiException as exc:
                # 404: the CRDs are not installed yet; wait for them quietly.
                if exc.status != 404:
                    log.warning("ModelDeployment watch interrupted: %s", exc.reason)
                self._stop.wait(2.0)
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("ModelDeployment watch interrupted: %s", exc)
                    self._stop.wait(1.0)

    def _observe(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        try:
            md = ModelDeployment.from_body(body)
            parts = urlsplit(endpoint_url(md))
        except Exception as exc:  # a spec this version cannot read: no Service, no stand-in
            log.warning(
                "no stand-in for ModelDeployment %s/%s: %s", meta.get("namespace"), meta.get("name"), exc
            )
            return
        route = (service_host(parts.hostname or ""), parts.port or 80)
        served = md.spec.model.served_name or meta["name"]
        quality = self._quality(meta)
        with self._lock:
            stand_in = self._stand_ins.get(meta["uid"])
            if stand_in is None:
                double = FakeOpenAI(model=served, judge_models=self.judge_models).start()
                stand_in = self._stand_ins[meta["uid"]] = StandIn(
                    meta["namespace"], meta["name"], route, double
                )
                log.info(
                    "%s/%s: %s:%d stood in for by %s", meta["namespace"], meta["name"], *route, double.url
                )
            stand_in.route = route
            stand_in.double.model = served
            stand_in.double.answer_quality = {served: quality} if quality else {}
            self._set_judge_fault(stand_in, self._int_annotation(meta, JUDGE_FAULT_ANNOTATION))

    @staticmethod
    def _set_judge_fault(stand_in: StandIn, status: int | None) -> None:
        # Every MD event comes here: change the fault only when the annotation's value changed.
        current = stand_in.judge_fault.status if stand_in.judge_fault else None
        if status == current:
            return
        double = stand_in.double
        if stand_in.judge_fault is not None:
            with double._lock, contextlib.suppress(ValueError):
                double.faults.remove(stand_in.judge_fault)
        stand_in.judge_fault = (
            double.add_fault("status", count=2**62, target="judge", status=status) if status else None
        )

    def _int_annotation(self, meta: dict[str, Any], key: str) -> int | None:
        text = (meta.get("annotations") or {}).get(key)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError:
            log.warning("%s/%s: %s=%r is not an integer; ignored", meta["namespace"], meta["name"], key, text)
            return None

    def _quality(self, meta: dict[str, Any]) -> int:
        return self._int_annotation(meta, ANSWER_QUALITY_ANNOTATION) or 0

    def _remove(self, uid: str) -> None:
        with self._lock:
            stand_in = self._stand_ins.pop(uid, None)
        if stand_in is not None:
            stand_in.double.stop()
