"""The promotion part of `shinsa demo`: a champion served through the registry, two candidates
gated against it, the better one promoted and production rolled, the worse one rejected and torn
down, then the alias' history and how to roll back (examples/promotion/)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape

from shinsa.commands.promote import history_table
from shinsa.devcluster.cluster import ClusterError

REGISTERED_MODEL = "shinsa-demo-chat"
ALIAS = "champion"
# The first champion's weights: what production serves before any promotion.
CHAMPION_SOURCE = "hf://Qwen/Qwen3-8B"
PRODUCTION = "chat-production"
CHAMPION_RUN = "chat-champion"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _apply(path: Path, namespace: str) -> list[dict[str, Any]]:
    from shinsa.controllers import kube

    docs = _documents(path)
    for doc in docs:
        if doc["kind"] != "PromotionPolicy":  # cluster-scoped
            doc["metadata"]["namespace"] = namespace
        kube.apply(doc)
    return docs


def run_promotion(
    *,
    examples: Path,
    namespace: str,
    tracking_uri: str,
    console: Console,
    step: Callable[[str], None],
    wait: Callable[[Callable[[], Any], float, str], None],
    follow: Callable[[list[str], float], dict[str, dict[str, Any]]],
    report: Callable[[str, dict[str, Any]], list[Any]],
    timeout_s: float,
) -> dict[str, dict[str, Any]]:
    """Run the promotion scenario; the candidates' EvalRuns as they ended."""
    from shinsa.controllers import kube
    from shinsa.registry.promotion import history, seed

    folder = examples / "promotion"
    step(f"promotion: {REGISTERED_MODEL}@{ALIAS} in MLflow's registry, served by {PRODUCTION}")
    version = seed(
        tracking_uri, model=REGISTERED_MODEL, alias=ALIAS, source=CHAMPION_SOURCE, by="shinsa demo"
    )
    console.print(f"  [dim]{REGISTERED_MODEL}@{ALIAS} is version {version}[/dim]")
    _apply(folder / "policy.yaml", namespace)
    _apply(folder / "production.yaml", namespace)
    step(f"evaluating the champion ({CHAMPION_RUN}): the baseline the candidates must beat")
    champion = follow([CHAMPION_RUN], timeout_s)
    if (champion[CHAMPION_RUN].get("status") or {}).get("phase") != "Succeeded":
        raise ClusterError(f"the champion's evaluation {CHAMPION_RUN} did not succeed")

    candidates = sorted(folder.glob("candidate-*.yaml"))
    names = []
    for path in candidates:
        names += [d["metadata"]["name"] for d in _apply(path, namespace) if d["kind"] == "EvalRun"]
    step(f"evaluating {len(names)} candidates against the champion; only a Passed one is promoted")
    runs = follow(names, timeout_s)
    for name, run in runs.items():
        for item in report(name, run):
            console.print(item)
        status = run.get("status") or {}
        promoted: dict[str, Any] = next(
            (c for c in status.get("conditions", []) if c["type"] == "Promoted"), {}
        )
        colour = "green" if promoted.get("status") == "True" else "yellow"
        reason, message = promoted.get("reason", "?"), escape(promoted.get("message", ""))
        console.print(f"  [bold]Promoted[/bold]: [{colour}]{reason}[/] {message}")

    rejected = [n for n, r in runs.items() if (r.get("status") or {}).get("promotion") is None]
    for name in rejected:
        # The candidate's GPUs are not held for a model that will not serve.
        kube.delete_custom("modeldeployments", namespace, name)
        console.print(f"  [dim]{name}: not promoted, its ModelDeployment deleted[/dim]")
    promoted_versions = [
        r["status"]["promotion"]["version"] for r in runs.values() if (r.get("status") or {}).get("promotion")
    ]
    if promoted_versions:
        target = promoted_versions[-1]
        step(f"{PRODUCTION} follows {REGISTERED_MODEL}@{ALIAS} to version {target}")

        def rolled() -> bool:
            md = kube.get_custom("modeldeployments", namespace, PRODUCTION) or {}
            registered = (md.get("status") or {}).get("registeredModel") or {}
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in md.get("status", {}).get("conditions", [])
            )
            return registered.get("version") == target and ready

        wait(rolled, timeout_s, f"{PRODUCTION} to serve version {target}")
        md = kube.get_custom("modeldeployments", namespace, PRODUCTION) or {}
        registered = md["status"]["registeredModel"]
        console.print(
            f"  {PRODUCTION} serves {registered['source']} at revision {registered.get('revision') or '-'}"
            f" (version {registered['version']}), Ready"
        )
    moves = history(tracking_uri, model=REGISTERED_MODEL, alias=ALIAS)
    console.print(history_table(f"MLflow registry: {REGISTERED_MODEL}@{ALIAS}, every move", moves))
    console.print("[bold]Roll back[/bold] (production follows within seconds):")
    console.print(
        f"  MLFLOW_TRACKING_URI={tracking_uri} shinsa promote rollback {REGISTERED_MODEL} --alias {ALIAS} "
        '--reason "why"'
    )
    return runs
