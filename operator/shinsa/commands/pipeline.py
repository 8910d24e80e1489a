"""`shinsa pipeline run`: deploy a candidate, evaluate it against the champion, promote or tear down.

The definition file and the manifests are shinsa.pipeline's (pure); this module talks to the API
server, waits and reports. The operator does the evaluating and the promoting: the command only
creates the objects and reads their status, so its permissions are those of pipelines/README.md.

Exit codes: 0 promoted; 1 rejected (gates Failed); 3 inconclusive (gates Inconclusive, an Incomplete
run, or Passed without promotion); 2 bad input (file, flags, a manifest the API server refuses);
4 no decision (a timeout, the API server unreachable, the candidate Failed, the EvalRun Failed);
130 interrupted (what exists is left as it is).
"""

from __future__ import annotations

import enum
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import urllib3
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from shinsa.pipeline import (
    FIELD_MANAGER,
    DefinitionError,
    Manifests,
    Outcome,
    PipelineDefinition,
    Verdict,
    check_name,
    default_name,
    load_definition,
    manifests_for,
    parse_candidate,
    tears_down,
    verdict,
)

GROUP, VERSION = "shinsa.dev", "v1alpha1"
EVAL_DONE = {"Succeeded", "Failed", "Incomplete"}
POLL_S = 2.0
# The API server may blink (a restart, a load balancer) without the run being lost.
UNREACHABLE_GRACE_S = 30.0


class PipelineExitCode(enum.IntEnum):
    """The exit status of `shinsa pipeline run`, so that CI can branch on the outcome."""

    PROMOTED = 0
    REJECTED = 1
    BAD_INPUT = 2
    """The file, a flag, or a manifest the API server refused; nothing was applied (or the refused
    object was not). Also click's usage errors."""
    INCONCLUSIVE = 3
    NO_DECISION = 4
    """Infrastructure: a timeout, the API server unreachable, the candidate or the EvalRun Failed."""
    INTERRUPTED = 130


EXIT_CODES = {
    Outcome.PROMOTED: PipelineExitCode.PROMOTED,
    Outcome.REJECTED: PipelineExitCode.REJECTED,
    Outcome.INCONCLUSIVE: PipelineExitCode.INCONCLUSIVE,
    Outcome.NO_DECISION: PipelineExitCode.NO_DECISION,
}

app = typer.Typer(
    help="Promotion pipelines: deploy a candidate, evaluate it against the champion, promote or tear down.",
    no_args_is_help=True,
)


class Stop(Exception):
    """Ends the run with `code`; the message says why."""

    def __init__(self, code: PipelineExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _api_message(exc: ApiException) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (TypeError, ValueError):
        return str(exc.reason)


def _transient(exc: Exception) -> bool:
    if isinstance(exc, ApiException):
        return exc.status in (None, 0, 429) or (exc.status or 0) >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class Cluster:
    """The few calls the pipeline makes, with the pipeline's field manager."""

    def __init__(self, kubeconfig: Path | None) -> None:
        configuration = client.Configuration()
        try:
            if kubeconfig is not None:
                config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
            else:
                try:
                    config.load_incluster_config(client_configuration=configuration)
                except config.ConfigException:
                    # $KUBECONFIG read now: the client's own default was fixed at import.
                    config.load_kube_config(
                        config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
                    )
        except (config.ConfigException, OSError) as exc:
            code = PipelineExitCode.BAD_INPUT if kubeconfig is not None else PipelineExitCode.NO_DECISION
            raise Stop(code, f"no cluster to talk to: {exc}") from None
        # A dead API server should fail a poll in seconds, not hang it: polls are retried anyway.
        configuration.retries = 1
        self.api = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(self.api)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, _request_timeout=15
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        meta = obj["metadata"]
        # The generated client has no server-side apply for custom objects; this is its PATCH with
        # the apply content type. force: a retried run takes its candidate's fields back.
        applied = self.api.call_api(
            f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{plural}/{{name}}",
            "PATCH",
            path_params={"namespace": meta["namespace"], "name": meta["name"]},
            query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=obj,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=30,
        )
        return dict(applied)

    def create(self, obj: dict[str, Any], plural: str) -> dict[str, Any]:
        return dict(
            self.custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                obj["metadata"]["namespace"],
                plural,
                obj,
                field_manager=FIELD_MANAGER,
                _request_timeout=30,
            )
        )

    def delete(self, plural: str, namespace: str, name: str) -> bool:
        try:
            self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name, _request_timeout=30
            )
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise


def _reasons(obj: dict[str, Any] | None) -> str:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return ", ".join(f"{c.get('type')}={c.get('reason') or c.get('status')}" for c in conditions)


class Progress:
    """Where the run is: a live table on a terminal, one line per change elsewhere (CI logs)."""

    STEPS = ("apply candidate", "candidate Ready", "create EvalRun", "evaluate", "tear down")

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.rows: dict[str, tuple[str, str]] = {step: ("pending", "") for step in self.STEPS}
        self.live: Live | None = None
        self._last: dict[str, tuple[str, str]] = {}

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(None, None, None)

    def _table(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        for column in ("step", "state", "detail"):
            table.add_column(column, overflow="fold", no_wrap=column == "step")
        style = {"done": "green", "running": "cyan", "failed": "red", "skipped": "dim", "pending": "dim"}
        for step, (state, detail) in self.rows.items():
            table.add_row(step, f"[{style.get(state, 'yellow')}]{state}[/]", escape(detail))
        return table

    def set(self, step: str, state: str, detail: str = "") -> None:
        self.rows[step] = (state, detail)
        if self.live is not None:
            self.live.update(self._table())
        elif self._last.get(step) != (state, detail):
            self.console.print(
                f"{step}: {state}" + (f" ({escape(detail)})" if detail else ""),
                highlight=False,
                soft_wrap=True,
            )
        self._last[step] = (state, detail)


def _wait(what: str, timeout_s: float, probe: Callable[[], Any | None]) -> Any:
    """`probe()` until it returns something, tolerating an API server away for a while."""
    deadline = time.monotonic() + timeout_s
    unreachable_since: float | None = None
    while True:
        try:
            found = probe()
            unreachable_since = None
        except Exception as exc:
            if not _transient(exc):
                raise
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > UNREACHABLE_GRACE_S:
                raise Stop(PipelineExitCode.NO_DECISION, f"the API server does not answer: {exc}") from None
            found = None
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise Stop(PipelineExitCode.NO_DECISION, f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(POLL_S)


class Run:
    def __init__(
        self, cluster: Cluster, definition: PipelineDefinition, manifests: Manifests, progress: Progress
    ) -> None:
        self.cluster, self.definition, self.manifests, self.progress = (
            cluster,
            definition,
            manifests,
            progress,
        )
        self.namespace = manifests.candidate["metadata"]["namespace"]
        self.name = manifests.candidate["metadata"]["name"]
        self.applied: list[str] = []

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ApiException as exc:
            if _transient(exc) or exc.status in (401, 403, 404):
                # 404: no such CRD here; 401/403: these credentials may not. Neither is the file's fault.
                raise Stop(
                    PipelineExitCode.NO_DECISION, f"{what}: {exc.status} {_api_message(exc)}"
                ) from None
            raise Stop(PipelineExitCode.BAD_INPUT, f"{what}: refused: {_api_message(exc)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Stop(
                PipelineExitCode.NO_DECISION, f"{what}: the API server does not answer: {exc}"
            ) from None

    def _ready(self) -> dict[str, Any] | None:
        md = self.cluster.get("modeldeployments", self.namespace, self.name)
        if md is None:
            raise Stop(PipelineExitCode.NO_DECISION, f"ModelDeployment {self.name} was deleted while waiting")
        status = md.get("status") or {}
        current = (status.get("observedGeneration") or 0) >= (md["metadata"].get("generation") or 0)
        phase = status.get("phase") or "Pending"
        self.progress.set("candidate Ready", "running", f"{phase}; {_reasons(md)}".rstrip("; "))
        if current and phase == "Ready":
            return md
        if current and phase == "Failed":
            raise Stop(PipelineExitCode.NO_DECISION, f"the candidate Failed: {_reasons(md)}")
        return None

    def _decided(self) -> dict[str, Any] | None:
        run = self.cluster.get("evalruns", self.namespace, self.name)
        if run is None:
            raise Stop(PipelineExitCode.NO_DECISION, f"EvalRun {self.name} was deleted while waiting")
        phase = (run.get("status") or {}).get("phase") or "Pending"
        self.progress.set("evaluate", "running", f"{phase}; {_reasons(run)}".rstrip("; "))
        return run if phase in EVAL_DONE else None

    def execute(self) -> tuple[Verdict, dict[str, Any]]:
        if self._call("read EvalRun", lambda: self.cluster.get("evalruns", self.namespace, self.name)):
            raise Stop(
                PipelineExitCode.BAD_INPUT,
                f"EvalRun {self.namespace}/{self.name} already exists (another decision): use another --name",
            )
        self.progress.set("apply candidate", "running")
        self._call(
            "apply ModelDeployment", lambda: self.cluster.apply(self.manifests.candidate, "modeldeployments")
        )
        self.applied.append(f"ModelDeployment {self.namespace}/{self.name}")
        self.progress.set("apply candidate", "done", f"ModelDeployment {self.namespace}/{self.name}")

        md = _wait("the candidate to be Ready", self.definition.timeouts.ready, self._ready)
        self.progress.set("candidate Ready", "done", (md.get("status") or {}).get("endpoint") or "Ready")

        self.progress.set("create EvalRun", "running")
        self._call("create EvalRun", lambda: self.cluster.create(self.manifests.eval_run, "evalruns"))
        self.applied.append(f"EvalRun {self.namespace}/{self.name}")
        self.progress.set("create EvalRun", "done", f"EvalRun {self.namespace}/{self.name}")

        run = _wait("the EvalRun's decision", self.definition.timeouts.evaluation, self._decided)
        result = verdict(run.get("status") or {})
        status = run.get("status") or {}
        self.progress.set(
            "evaluate", "done", f"{status.get('phase')}, decision {status.get('decision') or '-'}"
        )
        return result, run

    def tear_down(self, result: Verdict | None) -> str:
        if not tears_down(self.definition.teardown, result):
            self.progress.set("tear down", "skipped", f"teardown: {self.definition.teardown.value}")
            return f"kept ModelDeployment {self.namespace}/{self.name}"
        try:
            deleted = self.cluster.delete("modeldeployments", self.namespace, self.name)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            self.progress.set("tear down", "failed", str(exc))
            return f"could not delete ModelDeployment {self.namespace}/{self.name}: {exc}"
        self.progress.set("tear down", "done", "deleted" if deleted else "not there")
        return f"deleted ModelDeployment {self.namespace}/{self.name}"


def _gate_table(status: dict[str, Any]) -> Table:
    table = Table(title=f"Gates vs {status.get('baseline') or '-'}", title_justify="left")
    for column in ("rule", "verdict", "observed", "bound", "interval", "pairs", "why"):
        table.add_column(column, overflow="fold")

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, int | float) else "-"

    for row in status.get("gates") or []:
        interval = (
            f"[{fmt(row.get('ciLow'))}, {fmt(row.get('ciHigh'))}]" if row.get("ciLow") is not None else "-"
        )
        table.add_row(
            escape(row.get("rule", "")),
            row.get("verdict", ""),
            fmt(row.get("observed")),
            fmt(row.get("bound")),
            interval,
            str(row.get("n", "-")),
            escape(row.get("explanation", "")),
        )
    return table


RUN_HELP = "\n\n".join(
    (
        "Deploy CANDIDATE, wait until it is Ready, evaluate it against <registeredModel>@<alias> in "
        "an EvalRun that promotes it on Passed, wait for the decision, tear the candidate down unless "
        "it passed.",
        "Exit codes: 0 promoted; 1 rejected; 3 inconclusive (or Passed but not promoted); 2 bad "
        "input; 4 no decision (a timeout, the API server unreachable, the candidate or the EvalRun "
        "Failed); 130 interrupted (what was created is left).",
    )
)


@app.command("run", help=RUN_HELP)
def run(
    definition_file: Annotated[
        Path, typer.Argument(metavar="PIPELINE", help="The pipeline definition (pipelines/promote.yaml).")
    ],
    candidate: Annotated[
        str,
        typer.Option(
            "--candidate", "-c", help="The candidate's weights: hf://org/model@REVISION (s3://, pvc://)."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", help="The candidate's and EvalRun's name (default: <namePrefix>-<random>)."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Overrides the definition's namespace.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="key.path=value over the definition, for example candidate.annotations\\[a.b/c]=2 or evalRun.spec.benchmarks\\[0].dataset.uri=s3://b/p.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the manifests as YAML and touch nothing.")
    ] = False,
    kubeconfig: Annotated[
        Path | None,
        typer.Option("--kubeconfig", help="Default: in-cluster, else $KUBECONFIG or ~/.kube/config."),
    ] = None,
) -> None:
    """The promotion flow of pipelines/README.md (RUN_HELP)."""
    stderr = Console(stderr=True)
    try:
        definition = load_definition(definition_file, tuple(overrides or ()))
        target = parse_candidate(candidate)
        where = namespace or definition.namespace
        if not where:
            raise DefinitionError(f"{definition_file}: namespace: not set; pass --namespace")
        check_name(where, "--namespace")
        run_name = check_name(name) if name else default_name(definition, secrets.token_hex(3))
        manifests = manifests_for(definition, target, name=run_name, namespace=where)
    except DefinitionError as exc:
        stderr.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(PipelineExitCode.BAD_INPUT) from None

    if dry_run:
        typer.echo(yaml.safe_dump_all(manifests.documents, sort_keys=False), nl=False)
        return

    console = Console()
    title = f"{definition.registered_model}@{definition.alias} <- {target} ({where}/{run_name})"
    started: Run | None = None
    try:
        cluster = Cluster(kubeconfig)
        with Progress(console, title) as progress:
            started = Run(cluster, definition, manifests, progress)
            try:
                result, final = started.execute()
            except Stop as stop:
                torn = started.tear_down(None) if started.applied else ""
                raise Stop(stop.code, f"{stop}" + (f"; {torn}" if torn else "")) from None
            torn = started.tear_down(result)
    except KeyboardInterrupt:
        left = ", ".join(started.applied) if started and started.applied else "nothing was created"
        stderr.print(f"interrupted: left as they are: {left}", highlight=False, soft_wrap=True)
        raise typer.Exit(PipelineExitCode.INTERRUPTED) from None
    except Stop as stop:
        stderr.print(f"[red]error:[/red] {escape(str(stop))}", highlight=False, soft_wrap=True)
        raise typer.Exit(stop.code) from None

    status = final.get("status") or {}
    if status.get("gates"):
        console.print(_gate_table(status))
    code = EXIT_CODES[result.outcome]
    color = {Outcome.PROMOTED: "green", Outcome.REJECTED: "red"}.get(result.outcome, "yellow")
    console.print(
        f"[{color}]{result.outcome.value}[/]: {escape(result.why)}; {escape(torn)}",
        highlight=False,
        soft_wrap=True,
    )
    if status.get("mlflowRunUrl"):
        console.print(f"MLflow run: {status['mlflowRunUrl']}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
