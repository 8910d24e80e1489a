"""The promotion pipeline's definition (`pipelines/promote.yaml`) and the manifests it makes.

Pure: a definition file's data, `--set` overrides and a candidate in; a validated definition and the
candidate ModelDeployment and EvalRun manifests out. `shinsa pipeline run` (shinsa.commands.pipeline)
applies them and waits; this module knows no cluster.

Every error names the file (or the `--set` or `--candidate` it came from) and the field.
"""

from __future__ import annotations

import copy
import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BeforeValidator, Field, ValidationError, field_validator

from shinsa.api import API_VERSION, EvalRunSpec, ModelDeploymentSpec
from shinsa.api.base import K8sModel

KIND = "PromotionPipeline"
PIPELINE_LABEL = "shinsa.dev/promotion-pipeline"
"""On the candidate and its EvalRun: which pipeline run made them (`kubectl get md,er -l ...`)."""
FIELD_MANAGER = "shinsa-pipeline"

# The candidate's name is also its Service's, which must be a DNS-1035 label.
_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
_NAME_MAX = 63
# Only used to validate the candidate template before a candidate is known.
_PLACEHOLDER_URI = "hf://placeholder/model"
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class DefinitionError(Exception):
    """A pipeline definition, override or candidate that cannot be used; the message says where."""


def _to_str(value: Any) -> Any:
    # `--set ...=2` and `answer-quality: 2` read as numbers; annotation values are strings.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


_StrMap = dict[str, Annotated[str, BeforeValidator(_to_str)]]


def parse_duration(value: Any) -> float:
    """Seconds, from a number of seconds or Argo-style `1h30m`, `10m`, `45s`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10m, 1h30m or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value).strip())
        if not match or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration such as 10m, 1h30m or a number of seconds")
        h, m, s = (int(g or 0) for g in match.groups())
        seconds = float(h * 3600 + m * 60 + s)
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


_Duration = Annotated[float, BeforeValidator(parse_duration)]


class Teardown(enum.StrEnum):
    """When `shinsa pipeline run` deletes the candidate ModelDeployment at the end."""

    UNLESS_PASSED = "unlessPassed"
    """Kept when the gates Passed (promoted or not): a Passed candidate may still be wanted."""
    UNLESS_PROMOTED = "unlessPromoted"
    """Kept only when the alias moved to it."""
    ALWAYS = "always"
    """Deleted in every case: the followers of the alias serve the promoted version themselves."""
    NEVER = "never"
    """Never deleted: for looking at a rejected candidate."""


class Timeouts(K8sModel):
    ready: _Duration = 3600.0
    """How long the candidate may take to become Ready."""
    evaluation: _Duration = 43200.0
    """How long the EvalRun may take to reach a terminal phase."""


class CandidateTemplate(K8sModel):
    labels: _StrMap = Field(default_factory=dict)
    annotations: _StrMap = Field(default_factory=dict)
    spec: dict[str, Any]
    """A ModelDeployment spec without `model.uri` and `model.revision`: `--candidate` sets them."""

    @field_validator("spec")
    @classmethod
    def _no_candidate(cls, spec: dict[str, Any]) -> dict[str, Any]:
        model = spec.get("model")
        if isinstance(model, dict):
            for key in ("uri", "revision"):
                if key in model:
                    raise ValueError(f"model.{key} is set by --candidate, not by the template")
        return spec


class EvalRunTemplate(K8sModel):
    labels: _StrMap = Field(default_factory=dict)
    annotations: _StrMap = Field(default_factory=dict)
    spec: dict[str, Any]
    """An EvalRun spec without `model`'s target, `gates.baseline` and `promote`: the pipeline sets them."""

    @field_validator("spec")
    @classmethod
    def _no_pipeline_fields(cls, spec: dict[str, Any]) -> dict[str, Any]:
        model = spec.get("model")
        for key in ("deploymentRef", "endpoint", "revision"):
            if isinstance(model, dict) and key in model:
                raise ValueError(f"model.{key} is set by the pipeline (the candidate), not by the template")
        if "promote" in spec:
            raise ValueError("promote is set by the pipeline (registeredModel, alias, promote)")
        gates = spec.get("gates")
        if not isinstance(gates, dict) or not gates.get("rules"):
            raise ValueError("gates.rules: a promotion pipeline needs gates with at least one rule")
        if "baseline" in gates:
            raise ValueError("gates.baseline is set by the pipeline (mlflowModel: <registeredModel>@<alias>)")
        return spec


class PipelineDefinition(K8sModel):
    """`pipelines/promote.yaml`: what `shinsa pipeline run` deploys, evaluates and promotes."""

    api_version: Literal["shinsa.dev/v1alpha1"]
    kind: Literal["PromotionPipeline"]
    namespace: str | None = Field(default=None, pattern=_NAME_PATTERN, max_length=63)
    """Where the candidate and its EvalRun are created; `--namespace` overrides it."""
    registered_model: str = Field(min_length=1, max_length=256, pattern=r"^[^/@\s][^/@]*$")
    """The MLflow registered model the champion is a version of."""
    alias: str = Field(default="champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=255)
    """The champion's alias: the gates' baseline, moved to the candidate when it passes."""
    promote: bool = True
    """false: gate and record the decision, move nothing (spec.promote.enabled)."""
    name_prefix: str | None = Field(default=None, pattern=_NAME_PATTERN, max_length=40)
    """The candidate's and EvalRun's name without `--name`: `<namePrefix>-<random>`."""
    candidate: CandidateTemplate
    eval_run: EvalRunTemplate
    timeouts: Timeouts = Field(default_factory=Timeouts)
    teardown: Teardown = Teardown.UNLESS_PASSED

    def model_post_init(self, _: Any) -> None:
        # The templates are checked now, with a stand-in candidate, so a bad file fails before any
        # cluster is asked anything.
        build(self, Candidate(uri=_PLACEHOLDER_URI, revision=None), name="placeholder", namespace="default")


@dataclass(frozen=True)
class Candidate:
    uri: str
    revision: str | None

    def __str__(self) -> str:
        return f"{self.uri}@{self.revision}" if self.revision else self.uri


def parse_candidate(text: str) -> Candidate:
    """`hf://org/model@REV` -> uri and revision. A `models:/name@alias` keeps its `@` (an alias)."""
    text = text.strip()
    if not text:
        raise DefinitionError("--candidate: empty")
    if text.startswith("models:/") or "@" not in text:
        return Candidate(uri=text, revision=None)
    uri, _, revision = text.rpartition("@")
    if not uri or not revision:
        raise DefinitionError(
            f"--candidate {text}: expected <uri>@<revision>, for example hf://org/model@<commit>"
        )
    return Candidate(uri=uri, revision=revision)


# -- --set -------------------------------------------------------------------------------------

_SEGMENT = re.compile(r"\[([^\]]*)\]|((?:\\.|[^.\[\\])+)")


def _split_path(path: str) -> list[str | int]:
    """`a.b[0].c[x.y/z]` -> ["a", "b", 0, "c", "x.y/z"]; `\\.` is a dot inside a key."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        if path[pos] == "." and parts:
            pos += 1
        match = _SEGMENT.match(path, pos)
        if not match:
            raise ValueError(f"cannot read the path at {path[pos:]!r}")
        bracketed, plain = match.groups()
        if bracketed is not None:
            parts.append(int(bracketed) if bracketed.isdigit() else bracketed)
        else:
            parts.append(re.sub(r"\\(.)", r"\1", plain))
        pos = match.end()
    if not parts or any(p == "" for p in parts):
        raise ValueError("empty key in the path")
    return parts


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # Anything but a scalar (a YAML mapping or list) would be a surprise from a `key=value` flag.
    return value if isinstance(value, str | int | float | bool) or value is None else text


def apply_set(data: dict[str, Any], expression: str) -> dict[str, Any]:
    """A copy of `data` with `key.path=value` set; a missing mapping on the way is created, a list
    index must exist (or be the list's length, to append)."""
    path, sep, raw = expression.partition("=")
    if not sep or not path:
        raise DefinitionError(f"--set {expression}: expected key.path=value")
    try:
        parts = _split_path(path)
    except ValueError as exc:
        raise DefinitionError(f"--set {expression}: {exc}") from None
    out = copy.deepcopy(data)
    node: Any = out
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = _field_path(tuple(parts[:i])) if i else "the top level"
        if isinstance(part, int):
            if not isinstance(node, list):
                raise DefinitionError(f"--set {expression}: {where} is not a list")
            if part > len(node):
                raise DefinitionError(f"--set {expression}: {where} has {len(node)} items")
            if part == len(node):
                node.append(None if last else ({} if isinstance(parts[i + 1], str) else []))
        elif not isinstance(node, dict):
            raise DefinitionError(f"--set {expression}: {where} is not a mapping")
        elif part not in node and not last:
            node[part] = [] if isinstance(parts[i + 1], int) else {}
        if last:
            node[part] = _scalar(raw)
        else:
            node = node[part]
            if node is None:
                raise DefinitionError(f"--set {expression}: {_field_path(tuple(parts[: i + 1]))} is null")
    return out


# -- loading -----------------------------------------------------------------------------------


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _problems(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{_field_path(err['loc']) or '(top level)'}: {err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def parse_definition(data: Any, source: str, overrides: tuple[str, ...] = ()) -> PipelineDefinition:
    """A definition from the file's data (`source` names it in errors) with `--set` overrides."""
    if not isinstance(data, dict):
        raise DefinitionError(f"{source}: expected a mapping (apiVersion: {API_VERSION}, kind: {KIND}, ...)")
    for expression in overrides:
        data = apply_set(data, expression)
    try:
        return PipelineDefinition.model_validate(data)
    except _TemplateError as exc:
        raise DefinitionError(f"{source}: {exc}") from None
    except ValidationError as exc:
        raise DefinitionError(f"{source}: {_problems(exc)}") from None


def load_definition(path: Path, overrides: tuple[str, ...] = ()) -> PipelineDefinition:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DefinitionError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path}: not YAML: {exc}") from None
    return parse_definition(data, str(path), overrides)


# -- manifests ---------------------------------------------------------------------------------


class _TemplateError(Exception):
    """A template that makes an invalid resource; raised inside validation, so not a ValueError
    (pydantic would file it under the top level)."""


@dataclass(frozen=True)
class Manifests:
    candidate: dict[str, Any]
    """The ModelDeployment, server-side applied."""
    eval_run: dict[str, Any]
    """The EvalRun, created (never applied: one of that name already there is another decision)."""

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [self.candidate, self.eval_run]


def default_name(definition: PipelineDefinition, suffix: str) -> str:
    """`<namePrefix or the registered model, as a DNS label>-<suffix>`."""
    prefix = definition.name_prefix or re.sub(r"[^a-z0-9-]+", "-", definition.registered_model.lower())
    prefix = re.sub(r"^[^a-z]+", "", prefix).strip("-") or "candidate"
    return f"{prefix[: _NAME_MAX - len(suffix) - 1].rstrip('-')}-{suffix}"


def check_name(name: str, flag: str = "--name") -> str:
    if len(name) > _NAME_MAX or not re.match(_NAME_PATTERN, name):
        raise DefinitionError(
            f"{flag} {name}: must be a DNS label (lower-case letters, digits and '-', starting with a "
            f"letter, at most {_NAME_MAX} characters)"
        )
    return name


def _wire(spec: K8sModel) -> dict[str, Any]:
    # What the file set, in the API's spelling: the defaults stay the API server's (the CRD's) and
    # are not owned by the pipeline's field manager.
    out: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return out


def _merge(template: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(template)
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def build(definition: PipelineDefinition, candidate: Candidate, *, name: str, namespace: str) -> Manifests:
    """The candidate ModelDeployment and the EvalRun that evaluates it against `<model>@<alias>` and
    promotes it on Passed, both named `name` in `namespace`."""
    labels = {PIPELINE_LABEL: name}
    model = {"uri": candidate.uri, **({"revision": candidate.revision} if candidate.revision else {})}
    md_spec = _merge(definition.candidate.spec, {"model": model})
    try:
        md_spec = _wire(ModelDeploymentSpec.model_validate(md_spec))
    except ValidationError as exc:
        problems = [
            f"--candidate {candidate}: {err['msg'].removeprefix('Value error, ')}"
            if err["loc"][:1] == ("model",) and err["loc"][1:2] in (("uri",), ("revision",))
            else f"candidate.spec.{_field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        ]
        raise _TemplateError("; ".join(problems)) from None

    target: dict[str, Any] = {"deploymentRef": {"name": name}}
    if candidate.revision:
        target["revision"] = candidate.revision
    er_spec = _merge(
        definition.eval_run.spec,
        {
            "model": target,
            "gates": {"baseline": {"mlflowModel": f"{definition.registered_model}@{definition.alias}"}},
            "promote": {
                "registeredModel": definition.registered_model,
                "alias": definition.alias,
                "enabled": definition.promote,
            },
        },
    )
    try:
        er_spec = _wire(EvalRunSpec.model_validate(er_spec))
    except ValidationError as exc:
        raise _TemplateError(_problems(exc, "evalRun.spec.")) from None

    def metadata(template: CandidateTemplate | EvalRunTemplate) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {**template.labels, **labels}}
        if template.annotations:
            meta["annotations"] = dict(template.annotations)
        return meta

    return Manifests(
        candidate={
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "metadata": metadata(definition.candidate),
            "spec": md_spec,
        },
        eval_run={
            "apiVersion": API_VERSION,
            "kind": "EvalRun",
            "metadata": metadata(definition.eval_run),
            "spec": er_spec,
        },
    )


def manifests_for(
    definition: PipelineDefinition, candidate: Candidate, *, name: str, namespace: str
) -> Manifests:
    """`build`, with its errors as DefinitionErrors."""
    try:
        return build(definition, candidate, name=name, namespace=namespace)
    except _TemplateError as exc:
        raise DefinitionError(str(exc)) from None


# -- the outcome -------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    """What a pipeline run came to; `shinsa pipeline run` exits with one code per outcome."""

    PROMOTED = "promoted"
    """The gates Passed and the alias moved to the candidate (`Promoted=True`)."""
    REJECTED = "rejected"
    """The gates decided Failed."""
    INCONCLUSIVE = "inconclusive"
    """Inconclusive gates, an Incomplete run, or Passed gates that promoted nothing (the reason says
    which: Forbidden, Disabled, NotPromotable, Superseded)."""
    NO_DECISION = "no-decision"
    """The EvalRun Failed (its Job did): nothing was decided."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    why: str
    passed: bool
    """The gates decided Passed, whether or not the alias moved."""


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def verdict(status: dict[str, Any]) -> Verdict:
    """The outcome of a terminal EvalRun, from its status."""
    phase, decision = status.get("phase"), status.get("decision")
    if phase == "Failed":
        failed = _condition(status, "JobComplete")
        return Verdict(Outcome.NO_DECISION, f"the EvalRun Failed ({failed.get('reason', 'JobFailed')}): "
                       f"{failed.get('message', '')}".rstrip(": "), passed=False)  # fmt: skip
    if phase == "Incomplete":
        why = _condition(status, "JobComplete").get("message") or "too many requests failed"
        return Verdict(Outcome.INCONCLUSIVE, f"the EvalRun is Incomplete: {why}", passed=False)
    if decision == "Failed":
        return Verdict(Outcome.REJECTED, "the gates decided Failed", passed=False)
    if decision == "Inconclusive":
        return Verdict(Outcome.INCONCLUSIVE, "the gates decided Inconclusive", passed=False)
    if decision == "Passed":
        promoted = _condition(status, "Promoted")
        if promoted.get("status") == "True":
            where = status.get("promotion") or {}
            moved = (
                f"{where.get('model')}@{where.get('alias')}: version {where.get('previousVersion') or '-'}"
            )
            return Verdict(Outcome.PROMOTED, f"promoted, {moved} -> {where.get('version')}", passed=True)
        reason = promoted.get("reason") or "no Promoted condition"
        message = promoted.get("message")
        return Verdict(Outcome.INCONCLUSIVE, f"the gates Passed but nothing was promoted ({reason})"
                       + (f": {message}" if message else ""), passed=True)  # fmt: skip
    return Verdict(Outcome.NO_DECISION, f"the EvalRun ended {phase} without a decision", passed=False)


def tears_down(teardown: Teardown, result: Verdict | None) -> bool:
    """Whether the candidate is deleted at the end; `result` None: no decision was reached (the
    candidate never got Ready, a timeout)."""
    if teardown is Teardown.NEVER:
        return False
    if teardown is Teardown.ALWAYS or result is None:
        return True
    if teardown is Teardown.UNLESS_PROMOTED:
        return result.outcome is not Outcome.PROMOTED
    return not result.passed
