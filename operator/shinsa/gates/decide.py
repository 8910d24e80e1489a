"""The gates' entry point: a policy and two runs' results in, a decision out."""

from __future__ import annotations

from shinsa.api.gates import GatePolicy
from shinsa.evaluation.results import RunResults
from shinsa.evaluation.stats import DECISION_DRAWS
from shinsa.gates.outcome import GateDecision, combine
from shinsa.gates.rules import Context, check

DEFAULT_DRAWS = DECISION_DRAWS
"""Bootstrap draws per interval (`shinsa.evaluation.stats.DECISION_DRAWS`)."""


def evaluate_gates(
    policy: GatePolicy,
    candidate: RunResults,
    baseline: RunResults | None = None,
    *,
    seed: int = 0,
    draws: int = DEFAULT_DRAWS,
) -> GateDecision:
    """Check every rule of `policy` on `candidate` (and `baseline`, for the comparative rules).

    Every rule draws its bootstrap from the same seed, so a rule's result does not depend on the
    rules before it, and the same inputs and seed always give the same decision.
    """
    ctx = Context(policy=policy, candidate=candidate, baseline=baseline, draws=draws, seed=seed)
    results = tuple(check(rule, index, ctx) for index, rule in enumerate(policy.rules))
    return GateDecision(
        decision=combine([r.verdict for r in results]),
        rules=results,
        confidence=policy.confidence,
        draws=draws,
        seed=seed,
    )
