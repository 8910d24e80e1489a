"""Who may promote what: an EvalRun's `spec.promote` against the cluster's PromotionPolicies.

Pure: the controller lists the policies and passes them in. A namespace's users write their
EvalRuns, and with them their gates; the policy (cluster-scoped, written by the platform team) is
the bar a spec may raise but never lower. Without a policy for a model, promotion is allowed only
from the operator's own namespace, so that installing Shinsa does not hand every tenant every
model's alias.
"""

from __future__ import annotations

from collections.abc import Sequence

from shinsa.api import EvalRunSpec, GateRule, GateRuleType, PromotionPolicySpec

_EVERY_NAMESPACE = "*"


def _at_least_as_strict(rule: GateRule, required: GateRule) -> bool:
    if (rule.benchmark, rule.metric_name) != (required.benchmark, required.metric_name):
        return False
    match required.type:
        case GateRuleType.MINIMUM:
            return rule.type is GateRuleType.MINIMUM and (rule.threshold or 0) >= (required.threshold or 0)
        case GateRuleType.NON_INFERIORITY:
            # Superiority (the interval above zero) implies non-inferiority at any margin.
            return rule.type is GateRuleType.SUPERIORITY or (
                rule.type is GateRuleType.NON_INFERIORITY and (rule.margin or 0) <= (required.margin or 0)
            )
        case GateRuleType.SUPERIORITY:
            return rule.type is GateRuleType.SUPERIORITY
        case _:
            return rule.type is required.type and (rule.limit or 0) <= (required.limit or 0)


def describe_rule(rule: GateRule) -> str:
    bound = next(
        (
            f" {name} {value:g}"
            for name in ("threshold", "margin", "limit")
            if (value := getattr(rule, name)) is not None
        ),
        "",
    )
    target = f" {rule.benchmark}/{rule.metric_name}" if rule.benchmark else ""
    return f"{rule.type.value}{target}{bound}"


def policy_problems(spec: EvalRunSpec, namespace: str, policy: PromotionPolicySpec) -> list[str]:
    """What keeps `policy` from admitting this EvalRun's promotion; empty when it admits it."""
    promote, gates = spec.promote, spec.gates
    assert promote is not None and gates is not None  # a CEL rule: promote requires gates
    problems: list[str] = []
    if namespace not in policy.namespaces and _EVERY_NAMESPACE not in policy.namespaces:
        problems.append(f"namespace {namespace} is not one of {', '.join(policy.namespaces)}")
    if policy.aliases and promote.alias not in policy.aliases:
        problems.append(f"alias {promote.alias} is not one of {', '.join(policy.aliases)}")
    if gates.confidence < policy.min_confidence:
        problems.append(f"spec.gates.confidence {gates.confidence:g} is below {policy.min_confidence:g}")
    if gates.min_pairs < policy.min_pairs:
        problems.append(f"spec.gates.minPairs {gates.min_pairs} is below {policy.min_pairs}")
    for required in policy.required_rules:
        if not any(_at_least_as_strict(rule, required) for rule in gates.rules):
            problems.append(f"spec.gates.rules lacks {describe_rule(required)} (or a stricter rule)")
    champion = f"{promote.registered_model}@{promote.alias}"
    comparative = any(rule.compares for rule in gates.rules)
    if policy.require_alias_baseline and comparative:
        baseline = gates.baseline.mlflow_model if gates.baseline is not None else None
        if baseline != champion:
            problems.append(f"spec.gates.baseline must be mlflowModel: {champion} (the version promoted now)")
    return problems


def authorize(
    spec: EvalRunSpec,
    namespace: str,
    policies: Sequence[tuple[str, PromotionPolicySpec]],
    operator_namespace: str | None,
) -> str | None:
    """None when the EvalRun in `namespace` may promote as its spec says; otherwise why not, naming
    the policies (`(name, spec)` pairs: every PromotionPolicy of the cluster) and what they require.
    One policy that admits it suffices."""
    assert spec.promote is not None
    model = spec.promote.registered_model
    governing = [(name, policy) for name, policy in policies if policy.registered_model == model]
    if not governing:
        if operator_namespace is not None and namespace == operator_namespace:
            return None
        where = (
            f"the operator's namespace ({operator_namespace})"
            if operator_namespace
            else "the operator's namespace"
        )
        return (
            f"no PromotionPolicy governs registered model {model}; without one only EvalRuns in {where} "
            "may promote it"
        )
    refusals = []
    for name, policy in governing:
        problems = policy_problems(spec, namespace, policy)
        if not problems:
            return None
        refusals.append(f"PromotionPolicy {name}: {'; '.join(problems)}")
    return " | ".join(refusals)


__all__ = ["authorize", "describe_rule", "policy_problems"]
