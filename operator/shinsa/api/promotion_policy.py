"""The PromotionPolicy resource: cluster-wide, it says which namespaces may promote a registered
model and the gate rules every promoting EvalRun must include.

An EvalRun is written by its namespace's users, who would otherwise choose their own bar (a huge
margin, a weak baseline) for a model the whole cluster serves. The policy is cluster-scoped so that
only the platform team (who may write cluster-scoped objects) sets that bar; a spec may tighten a
rule but never loosen it. The check itself is `shinsa.promotion.authorize`.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from shinsa.api.base import K8sModel, K8sStatusModel
from shinsa.api.gates import GateRule
from shinsa.api.resource import AGE_COLUMN, K8sResource, PrinterColumn

_Namespace = Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?|\*)$", max_length=63)]
_Alias = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=255)]


class PromotionPolicySpec(K8sModel):
    """Who may promote `registeredModel`, and against what bar."""

    registered_model: str = Field(min_length=1, max_length=256, pattern=r"^[^/@\s][^/@]*$")
    """The MLflow registered model this policy governs (exactly; one policy per model)."""
    namespaces: list[_Namespace] = Field(min_length=1, max_length=256)
    """The namespaces whose EvalRuns may promote it; `*` for every namespace."""
    aliases: list[_Alias] = Field(default_factory=list, max_length=32)
    """The aliases they may move; empty for any."""
    required_rules: list[GateRule] = Field(default_factory=list, max_length=64)
    """Rules every promoting EvalRun's `spec.gates.rules` must contain, as strict or stricter: the
    same type, benchmark and metric, with a threshold at least as high, a margin and limits at
    most as large (a superiority rule also satisfies a nonInferiority one)."""
    require_alias_baseline: bool = True
    """Comparative rules must compare against the version the alias points at now
    (`spec.gates.baseline.mlflowModel: <registeredModel>@<alias>`), not a baseline of the
    EvalRun's own choosing."""
    min_confidence: float = Field(default=0.95, ge=0.5, lt=1)
    """The lowest `spec.gates.confidence` a promoting EvalRun may use."""
    min_pairs: int = Field(default=20, ge=1, le=100000)
    """The lowest `spec.gates.minPairs` a promoting EvalRun may use."""


class PromotionPolicyStatus(K8sStatusModel):
    """Nothing is observed about a policy; the field exists for tools that expect one."""


class PromotionPolicy(K8sResource):
    """Which namespaces may promote a registered model through EvalRuns, and the gate rules each
    promoting EvalRun must include. Without any policy for a model, only EvalRuns in the operator's
    own namespace may promote it."""

    plural: ClassVar[str] = "promotionpolicies"
    singular: ClassVar[str] = "promotionpolicy"
    short_names: ClassVar[tuple[str, ...]] = ("pp",)
    scope: ClassVar[str] = "Cluster"
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".spec.registeredModel", "The registered model governed."),
        PrinterColumn("Namespaces", "string", ".spec.namespaces", "Who may promote it."),
        AGE_COLUMN,
    )

    api_version: Literal["shinsa.dev/v1alpha1"] = "shinsa.dev/v1alpha1"
    kind: Literal["PromotionPolicy"] = "PromotionPolicy"
    spec: PromotionPolicySpec
    status: PromotionPolicyStatus = Field(default_factory=PromotionPolicyStatus)
