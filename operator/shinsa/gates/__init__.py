"""Regression gates: a candidate's results, optionally a baseline's, and a `GatePolicy` in; a
Passed | Failed | Inconclusive decision with one result per rule out.

Pure: numpy, pydantic, `shinsa.api` and `shinsa.evaluation.results`/`stats`; no I/O. The CLI
(`shinsa gate`) and the EvalRun controller read the results and write the decision.
"""

from shinsa.api import GateVerdict
from shinsa.gates.decide import DEFAULT_DRAWS, evaluate_gates
from shinsa.gates.outcome import GateDecision, RuleResult, combine
from shinsa.gates.pairing import Clusters, Paired, item_clusters, pair_tables
from shinsa.gates.rules import comparability

__all__ = [
    "DEFAULT_DRAWS",
    "Clusters",
    "GateDecision",
    "GateVerdict",
    "Paired",
    "RuleResult",
    "combine",
    "comparability",
    "evaluate_gates",
    "item_clusters",
    "pair_tables",
]
