"""The gate table of a decision, as a table and as a PNG: what `record_decision` logs beside gates.json.

The decision arrives as its JSON (`shinsa.gates.GateDecision.model_dump(mode="json")`): gates is
a sibling layer of the registry.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

TABLE_COLUMNS = (
    "rule",
    "type",
    "benchmark",
    "metric",
    "verdict",
    "observed",
    "ci_low",
    "ci_high",
    "bound",
    "n_pairs",
    "candidate_mean",
    "baseline_mean",
    "explanation",
)
_COLORS = {"Passed": "#2E7D32", "Failed": "#C62828", "Inconclusive": "#757575"}


class _Rule(BaseModel):
    model_config = ConfigDict(extra="ignore")

    rule: int
    type: str
    benchmark: str | None = None
    metric: str | None = None
    verdict: str
    observed: float | None = None
    bound: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n_pairs: int | None = None
    candidate_mean: float | None = None
    baseline_mean: float | None = None
    explanation: str = ""

    @property
    def label(self) -> str:
        checked = "/".join(p for p in (self.benchmark, self.metric) if p)
        return f"{self.rule} {self.type}{' ' + checked if checked else ''}"


def _rules(decision: Mapping[str, Any]) -> list[_Rule]:
    return [_Rule.model_validate(rule) for rule in decision.get("rules") or []]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _or(value: float | None, default: float) -> float:
    return value if value is not None and math.isfinite(value) else default


def gate_table(decision: Mapping[str, Any]) -> dict[str, Any]:
    """The rules as a table in the JSON MLflow's `log_table` writes (pandas' `orient="split"`:
    columns and rows), so MLflow's UI shows it as a table."""
    rows = []
    for rule in _rules(decision):
        row = rule.model_dump()
        # JSON has no NaN: an undefined number is null, as in gates.json.
        rows.append(
            [None if isinstance(row[c], float) and not _finite(row[c]) else row[c] for c in TABLE_COLUMNS]
        )
    return {"columns": list(TABLE_COLUMNS), "data": rows}


def gate_chart(decision: Mapping[str, Any]) -> bytes | None:
    """A PNG: per rule, the observed value (the candidate - baseline difference of the comparative
    rules) with its interval, coloured by verdict, and the rule's bound drawn; None when no rule
    has an observed value."""
    rules = [r for r in _rules(decision) if _finite(r.observed)]
    if not rules:
        return None
    import matplotlib

    # Jobs and the operator have no display; as in shinsa.evaluation.plots.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.0, 1.2 + 0.55 * len(rules)), dpi=100)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            for y, rule in enumerate(reversed(rules)):
                observed = float(rule.observed or 0.0)
                low, high = _or(rule.ci_low, observed), _or(rule.ci_high, observed)
                color = _COLORS.get(rule.verdict, "#4C72B0")
                ax.errorbar(
                    [observed],
                    [y],
                    xerr=[[observed - low], [high - observed]],
                    fmt="o",
                    color=color,
                    capsize=4,
                )
                if rule.bound is not None and math.isfinite(rule.bound):
                    ax.plot([rule.bound, rule.bound], [y - 0.35, y + 0.35], color="#DD8452", linewidth=2)
            ax.set_yticks(range(len(rules)), [f"{r.label}: {r.verdict}" for r in reversed(rules)])
            ax.set_ylim(-0.7, len(rules) - 0.3)
            ax.plot([], [], color="#DD8452", linewidth=2, label="rule bound")
            ax.legend(loc="lower right", fontsize=8)
            confidence = decision.get("confidence")
            ci = f" ({confidence:.0%} CI)" if isinstance(confidence, int | float) else ""
            ax.set_title(f"Gate decision: {decision.get('decision')}{ci}")
            ax.set_xlabel("observed: candidate - baseline (comparative rules), value (others)")
            ax.grid(axis="x", alpha=0.3)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


__all__ = ["TABLE_COLUMNS", "gate_chart", "gate_table"]
