"""PNG plots of a run's scores: per-category means with 95% CIs, one chart per benchmark."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

import matplotlib

# Jobs and CI have no display; the non-interactive backend must be chosen before pyplot loads.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from shinsa.evaluation.results import BenchmarkResult, RunResults


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def category_chart(benchmark: str, summary: BenchmarkResult, path: Path) -> Path | None:
    categories = {name: s for name, s in summary.categories.items() if _finite(s.mean)}
    if not categories:
        return None
    names = list(categories)
    means = [float(categories[n].mean or 0.0) for n in names]
    lows = [m - (categories[n].ci_low or m) for n, m in zip(names, means, strict=True)]
    highs = [(categories[n].ci_high or m) - m for n, m in zip(names, means, strict=True)]

    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(names) + 2), 3.6), dpi=100)
    try:
        with warnings.catch_warnings():
            # Category names may be Japanese; the default font lacks the glyphs and matplotlib says so per
            # glyph. The bars are still right, so the warnings are noise here.
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            ax.bar(names, means, yerr=[lows, highs], capsize=4, color="#4C72B0")
            if summary.mean is not None and _finite(summary.mean):
                ax.axhline(summary.mean, color="#DD8452", linestyle="--", linewidth=1, label="overall")
                ax.legend(loc="lower right")
            ax.set_title(f"{benchmark}: mean by category (95% CI)")
            ax.set_ylabel(f"score ({summary.primary_judge})")
            ax.tick_params(axis="x", labelrotation=30)
            fig.tight_layout()
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_plots(results: RunResults, directory: Path) -> list[Path]:
    written = []
    for name, summary in results.benchmarks.items():
        path = category_chart(name, summary, directory / f"{_safe_name(name)}-categories.png")
        if path is not None:
            written.append(path)
    return written
