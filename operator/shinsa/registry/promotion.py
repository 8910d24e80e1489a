"""Promotion in MLflow's model registry: a passed candidate becomes a version, an alias moves to it,
and every move (promotions and rollbacks) is recorded on the registered model, so that the alias'
history can be read back from MLflow alone (`history`).

Exactly once, across retries, restarts and two EvalRuns finishing together:
- the version is found again by the EvalRun's uid (a version tag) before one is created;
- the move's record (a registered-model tag keyed by that uid) is written before the alias moves,
  and says where the alias pointed before; a retry that finds the record moves the alias only if
  it still points there, so a move is never made twice and never made over a later one;
- an alias that points at a newer version than the candidate's is not moved back (Superseded):
  `rollback` is the deliberate way back.

Checked against MLflow 3.17's client (`mlflow/tracking/client.py`: `search_model_versions` with a
`tags.` filter, `set_registered_model_alias`, `set_registered_model_tag`, `get_registered_model`'s
`aliases`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from shinsa.evaluation.mlflow_log import TAG_EVALRUN_NAME, TAG_EVALRUN_NAMESPACE, TAG_EVALRUN_UID
from shinsa.registry.evaluations import (
    TAG_GATE_DECISION,
    ResultsFetchError,
    mlflow_client,
    mlflow_errors,
    search_literal,
)

MOVE_TAG_PREFIX = "shinsa.alias."
"""Registered-model tags `shinsa.alias.<alias>.<kind>.<id>` hold one move each, as JSON."""
TAG_PROMOTED_RUN_ID = "shinsa.evaluation.run_id"
TAG_SCORE_PREFIX = "shinsa.score."

RegistryError = ResultsFetchError
"""MLflow's failures, as the evaluation registry reports them: `retryable` when it did not answer."""


class PromotionRefused(Exception):
    """The registry answered and the move is not to be made; the message says why."""


@dataclass(frozen=True)
class Move:
    """One move of an alias, as recorded on the registered model."""

    alias: str
    version: str
    kind: str
    """`promote` (an EvalRun passed), `rollback` (`shinsa promote rollback`) or `seed` (the first
    version an alias pointed at)."""
    at: str
    """When, ISO 8601 UTC."""
    by: str
    """The EvalRun (`namespace/name`) or the user who moved it."""
    previous: str | None = None
    """The version the alias pointed at before; None for its first move."""
    reason: str = ""
    eval_run_uid: str | None = None
    decision: str | None = None
    run_id: str | None = None
    """The MLflow run of the evaluation behind a promotion."""

    def tag_key(self) -> str:
        ident = self.eval_run_uid if self.kind == "promote" and self.eval_run_uid else self.at_id()
        return f"{MOVE_TAG_PREFIX}{self.alias}.{self.kind}.{ident}"

    def at_id(self) -> str:
        return self.at.replace(":", "").replace("-", "").replace("+0000", "Z")

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, "")}, sort_keys=True)


@dataclass(frozen=True)
class Promoted:
    """What `promote` did."""

    version: str
    previous: str | None
    moved: bool = True
    """False when the alias was found where this promotion had put it (a retry)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def _moves(tags: Mapping[str, str], alias: str) -> list[Move]:
    prefix = f"{MOVE_TAG_PREFIX}{alias}."
    found = []
    for key, value in tags.items():
        if key.startswith(prefix):
            try:
                found.append(Move(**json.loads(value)))
            except (TypeError, ValueError):
                continue  # a tag someone else wrote under our prefix: not a move of ours
    return sorted(found, key=lambda m: m.at)


def promote(
    tracking_uri: str,
    *,
    model: str,
    alias: str,
    source: str,
    eval_run: str,
    eval_run_uid: str,
    decision: str,
    run_id: str | None,
    version_tags: Mapping[str, str],
) -> Promoted:
    """Register `source` as a version of `model` for this EvalRun (once) and point `alias` at it
    (once). Raises PromotionRefused when the alias has moved on to a newer version, and
    RegistryError when MLflow fails."""
    from mlflow.exceptions import MlflowException

    what = f"registered model {model}"
    client = mlflow_client(tracking_uri)
    with mlflow_errors(what, tracking_uri, not_found=frozenset()):
        try:
            client.create_registered_model(model, description="Promoted by Shinsa EvalRuns")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mine = client.search_model_versions(
            f"name = {search_literal(model, what)} and "
            f"tags.`{TAG_EVALRUN_UID}` = {search_literal(eval_run_uid, what)}"
        )
        if mine:
            version = str(min(int(v.version) for v in mine))
        else:
            namespace, _, name = eval_run.partition("/")
            tags = {
                **version_tags,
                TAG_EVALRUN_NAMESPACE: namespace,
                TAG_EVALRUN_NAME: name,
                TAG_EVALRUN_UID: eval_run_uid,
                TAG_GATE_DECISION: decision,
            }
            if run_id:
                tags[TAG_PROMOTED_RUN_ID] = run_id
            created = client.create_model_version(
                model,
                source,
                run_id=run_id,
                tags=tags,
                description=f"EvalRun {eval_run}: gates {decision}",
            )
            version = str(created.version)

        registered = client.get_registered_model(model)
        current = registered.aliases.get(alias)
        current = str(current) if current is not None else None
        moves = _moves(registered.tags, alias)
        record = next((m for m in moves if m.eval_run_uid == eval_run_uid), None)
        if record is not None:
            if current == version:
                return Promoted(version, record.previous, moved=False)
            # Only a move interrupted before the alias was set is finished; once anyone moved the
            # alias since (a rollback back to `previous` included), it stays where they put it.
            if current != record.previous or any(m.at > record.at for m in moves):
                raise PromotionRefused(
                    f"{model}@{alias} was moved to version {current} after this EvalRun recorded its "
                    f"move from {record.previous}; it is left there"
                )
        elif current == version:
            return Promoted(version, None, moved=False)
        elif current is not None and int(current) > int(version):
            raise PromotionRefused(
                f"{model}@{alias} points at version {current}, newer than this candidate's version "
                f"{version}; moving it back would undo that promotion (shinsa promote rollback does it)"
            )
        else:
            record = Move(
                alias=alias, version=version, previous=current, kind="promote", at=_now(), by=eval_run,
                eval_run_uid=eval_run_uid, decision=decision, run_id=run_id,
            )  # fmt: skip
            client.set_registered_model_tag(model, record.tag_key(), record.to_json())
        client.set_registered_model_alias(model, alias, version)
        return Promoted(version, record.previous)


def rollback(tracking_uri: str, *, model: str, alias: str, to: str | None, by: str, reason: str) -> Move:
    """Point `alias` back: at `to`, or at the version it pointed at before its current one (the
    latest recorded move to the current version says which). The move is recorded like a
    promotion, with who and why."""
    what = f"registered model {model}"
    client = mlflow_client(tracking_uri)
    with mlflow_errors(what, tracking_uri):
        registered = client.get_registered_model(model)
        current = registered.aliases.get(alias)
        current = str(current) if current is not None else None
        target = to
        if target is None:
            arrived = [m for m in _moves(registered.tags, alias) if m.version == current]
            if current is None or not arrived or arrived[-1].previous is None:
                raise PromotionRefused(
                    f"{model}@{alias}: no recorded move to version {current} says what it replaced; "
                    "name the version with --to"
                )
            target = arrived[-1].previous
        client.get_model_version(model, target)  # a version that does not exist is refused here
        move = Move(
            alias=alias, version=target, previous=current, kind="rollback", at=_now(), by=by, reason=reason
        )
        client.set_registered_model_tag(model, move.tag_key(), move.to_json())
        client.set_registered_model_alias(model, alias, target)
        return move


def seed(tracking_uri: str, *, model: str, alias: str, source: str, by: str) -> str:
    """The version `alias` points at; when the alias does not exist yet, a first version of
    `source` is registered and the alias set to it, recorded like any move (kind `seed`). This
    is the champion a first EvalRun can be compared against; later moves are promotions."""
    from mlflow.exceptions import MlflowException

    client = mlflow_client(tracking_uri)
    with mlflow_errors(f"registered model {model}", tracking_uri, not_found=frozenset()):
        try:
            client.create_registered_model(model, description="Promoted by Shinsa EvalRuns")
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        current = client.get_registered_model(model).aliases.get(alias)
        if current is not None:
            return str(current)
        version = str(client.create_model_version(model, source, description=f"seeded by {by}").version)
        move = Move(alias=alias, version=version, kind="seed", at=_now(), by=by, reason="first version")
        client.set_registered_model_tag(model, move.tag_key(), move.to_json())
        client.set_registered_model_alias(model, alias, version)
        return version


def history(tracking_uri: str, *, model: str, alias: str) -> list[Move]:
    """Every recorded move of `model@alias`, oldest first."""
    client = mlflow_client(tracking_uri)
    with mlflow_errors(f"registered model {model}", tracking_uri):
        return _moves(client.get_registered_model(model).tags, alias)


__all__ = [
    "MOVE_TAG_PREFIX",
    "Move",
    "Promoted",
    "PromotionRefused",
    "RegistryError",
    "history",
    "promote",
    "rollback",
    "seed",
]
