"""What the gates decide: one result per rule and the decision over them.

Typed and JSON-serialisable (pydantic, snake_case like scores.json), because the EvalRun controller
writes them into the status and MLflow, and `shinsa gate -o json` prints them.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from shinsa.api import GateVerdict
from shinsa.api.gates import GateRuleType


class RuleResult(BaseModel):
    """One rule's verdict and the numbers behind it."""

    model_config = ConfigDict(frozen=True)

    rule: int
    """The rule's index in the policy's `rules`."""
    type: GateRuleType
    benchmark: str | None
    metric: str | None
    """The metric compared; None for the rate rules, which check a rate, not a metric."""
    verdict: GateVerdict
    observed: float | None = None
    """What is checked: the candidate's mean (minimum), the paired mean difference candidate -
    baseline (nonInferiority, superiority), or the rate (maxErrorRate, maxViolationRate)."""
    bound: float | None = None
    """What `observed` (or its interval) is held against: threshold, -margin, 0 or limit."""
    ci_low: float | None = None
    ci_high: float | None = None
    """The bootstrap interval of `observed` at the policy's confidence, where one applies."""
    n_pairs: int | None = None
    """Questions both runs scored (comparative rules)."""
    n_questions: int | None = None
    """The candidate's questions with a value of the metric."""
    candidate_mean: float | None = None
    baseline_mean: float | None = None
    """Means over the paired questions only (comparative rules)."""
    explanation: str
    """One line: why this verdict."""


class GateDecision(BaseModel):
    """The gates' decision: Failed if any rule failed, else Inconclusive if any could not decide,
    else Passed."""

    model_config = ConfigDict(frozen=True)

    decision: GateVerdict
    rules: tuple[RuleResult, ...]
    confidence: float
    draws: int
    seed: int

    def counts(self) -> dict[GateVerdict, int]:
        tally = Counter(r.verdict for r in self.rules)
        return {verdict: tally[verdict] for verdict in GateVerdict}

    def summary(self) -> str:
        """`Failed: 1 failed, 2 passed of 3 rules`, for logs and condition messages."""
        parts = [f"{n} {verdict.value.lower()}" for verdict, n in self.counts().items() if n]
        return f"{self.decision.value}: {', '.join(parts)} of {len(self.rules)} rules"


def combine(verdicts: list[GateVerdict]) -> GateVerdict:
    """Failed beats Inconclusive beats Passed: one failed check is enough to refuse a candidate, and
    one that cannot be decided is enough to withhold promotion."""
    if GateVerdict.FAILED in verdicts:
        return GateVerdict.FAILED
    if GateVerdict.INCONCLUSIVE in verdicts:
        return GateVerdict.INCONCLUSIVE
    return GateVerdict.PASSED
