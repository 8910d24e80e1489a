"""Who may promote what: the PromotionPolicy check (`shinsa.promotion.authorize`)."""

from __future__ import annotations

from typing import Any

import pytest

from shinsa.api import EvalRunSpec, PromotionPolicySpec
from shinsa.promotion import authorize

pytestmark = pytest.mark.unit

SUPERIORITY = {"type": "superiority", "benchmark": "mt-bench", "metric": "score"}


def spec(rules: list[dict[str, Any]], baseline: str | None = "chat@champion", **gates: Any) -> EvalRunSpec:
    return EvalRunSpec.model_validate(
        {
            "model": {"endpoint": "http://cand:8000/v1", "servedName": "cand"},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/q.jsonl"}}],
            "judges": [{"name": "j", "endpoint": "http://judge:8000/v1", "model": "j"}],
            "gates": {
                "rules": rules,
                **({"baseline": {"mlflowModel": baseline}} if baseline else {}),
                **gates,
            },
            "promote": {"registeredModel": "chat", "alias": "champion"},
        }
    )


def policy(**fields: Any) -> tuple[str, PromotionPolicySpec]:
    body = {"registeredModel": "chat", "namespaces": ["team-a"], **fields}
    return "chat-policy", PromotionPolicySpec.model_validate(body)


def test_without_a_policy_only_the_operators_namespace_may_promote() -> None:
    assert authorize(spec([SUPERIORITY]), "shinsa-system", [], "shinsa-system") is None
    refused = authorize(spec([SUPERIORITY]), "team-a", [], "shinsa-system")
    assert refused and "no PromotionPolicy governs registered model chat" in refused
    assert "shinsa-system" in refused
    # A policy for another model does not govern this one.
    other = ("other", PromotionPolicySpec.model_validate({"registeredModel": "x", "namespaces": ["*"]}))
    assert authorize(spec([SUPERIORITY]), "team-a", [other], None)


def test_a_policy_admits_its_namespaces_and_no_other() -> None:
    assert authorize(spec([SUPERIORITY]), "team-a", [policy()], None) is None
    refused = authorize(spec([SUPERIORITY]), "team-b", [policy()], None)
    assert refused and "PromotionPolicy chat-policy" in refused and "namespace team-b" in refused
    assert authorize(spec([SUPERIORITY]), "team-b", [policy(namespaces=["*"])], None) is None
    assert authorize(spec([SUPERIORITY]), "team-a", [policy(aliases=["staging"])], None)


@pytest.mark.parametrize(
    ("required", "given", "admitted"),
    [
        ({"type": "minimum", "benchmark": "mt-bench", "threshold": 6.0},
         {"type": "minimum", "benchmark": "mt-bench", "threshold": 6.5}, True),
        ({"type": "minimum", "benchmark": "mt-bench", "threshold": 6.0},
         {"type": "minimum", "benchmark": "mt-bench", "threshold": 5.0}, False),
        ({"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.2},
         {"type": "nonInferiority", "benchmark": "mt-bench", "margin": 5.0}, False),  # a huge margin
        ({"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.2},
         {"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.1}, True),
        ({"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.2}, SUPERIORITY, True),
        (SUPERIORITY, {"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.0}, False),
        ({"type": "maxErrorRate", "limit": 0.05}, {"type": "maxErrorRate", "limit": 0.5}, False),
        ({"type": "maxErrorRate", "limit": 0.05}, {"type": "maxErrorRate", "limit": 0.01}, True),
        ({"type": "minimum", "benchmark": "mt-bench", "metric": "category/coding", "threshold": 5},
         {"type": "minimum", "benchmark": "mt-bench", "threshold": 9}, False),  # another metric
    ],
)  # fmt: skip
def test_a_spec_may_tighten_a_required_rule_but_not_loosen_it(
    required: dict[str, Any], given: dict[str, Any], admitted: bool
) -> None:
    refused = authorize(spec([given]), "team-a", [policy(requiredRules=[required])], None)
    assert (refused is None) == admitted, refused
    if not admitted:
        assert refused and "spec.gates.rules lacks" in refused


def test_comparisons_must_be_against_the_alias_being_moved() -> None:
    refused = authorize(spec([SUPERIORITY], baseline="weak@old"), "team-a", [policy()], None)
    assert refused and "spec.gates.baseline must be mlflowModel: chat@champion" in refused
    lenient = policy(requireAliasBaseline=False)
    assert authorize(spec([SUPERIORITY], baseline="weak@old"), "team-a", [lenient], None) is None


def test_weaker_statistics_than_the_policy_are_refused() -> None:
    refused = authorize(spec([SUPERIORITY], confidence=0.6, minPairs=3), "team-a", [policy()], None)
    assert refused and "confidence 0.6 is below 0.95" in refused and "minPairs 3 is below 20" in refused


def test_one_admitting_policy_is_enough() -> None:
    strict = (
        "strict",
        policy(requiredRules=[{"type": "minimum", "benchmark": "mt-bench", "threshold": 9}])[1],
    )
    assert authorize(spec([SUPERIORITY]), "team-a", [strict, policy()], None) is None
    refused = authorize(spec([SUPERIORITY]), "team-a", [strict], None)
    assert refused and refused.startswith("PromotionPolicy strict:")
