"""The PNG of a comparison: every pair's paired difference with its bootstrap interval, by benchmark
and metric, against zero (the style of `plots.py`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

# No display in Jobs and CI; the backend must be chosen before pyplot loads.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from shinsa.evaluation.compare import Comparison, Difference

COMPARE_PLOT = "compare.png"


def _shown(d: Difference) -> bool:
    return d.difference is not None and d.ci_low is not None and d.ci_high is not None


def differences_chart(comparison: Comparison, path: Path) -> Path | None:
    """One row per (benchmark, metric, pair): the difference a - b as a dot, its interval as a bar.
    None when no difference has an interval (nothing was paired)."""
    rows = [d for d in comparison.differences if _shown(d)]
    if not rows:
        return None
    labels = [f"{d.benchmark} {d.metric}: {d.a} - {d.b}" for d in rows]
    centres = [d.difference if d.difference is not None else 0.0 for d in rows]
    # `_shown` keeps only rows with both bounds; a bound of exactly 0.0 is a bound, not a missing one.
    lows = [c - (d.ci_low if d.ci_low is not None else c) for d, c in zip(rows, centres, strict=True)]
    highs = [(d.ci_high if d.ci_high is not None else c) - c for d, c in zip(rows, centres, strict=True)]
    colours = ["#4C72B0" if d.excludes_zero else "#8C8C8C" for d in rows]
    positions = list(range(len(rows)))[::-1]

    fig, ax = plt.subplots(figsize=(8.0, 1.2 + 0.4 * len(rows)), dpi=100)
    try:
        with warnings.catch_warnings():
            # Model and category names may be Japanese; the default font lacks the glyphs.
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            for y, c, lo, hi, colour in zip(positions, centres, lows, highs, colours, strict=True):
                ax.errorbar(c, y, xerr=[[lo], [hi]], fmt="o", color=colour, capsize=4)
            ax.axvline(0.0, color="#DD8452", linestyle="--", linewidth=1)
            ax.set_yticks(positions)
            ax.set_yticklabels(labels, fontsize=8)
            title = f"Paired differences ({comparison.confidence * 100:g}% question-bootstrap CI)"
            if comparison.mismatched:
                title += " - MISMATCHED RUNS"
            ax.set_title(title)
            ax.set_xlabel("a - b")
            fig.tight_layout()
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path)
    finally:
        plt.close(fig)
    return path
