"""What `shinsa eval run --phase` does with a spec.

Its own module, with nothing but the enum, so that `shinsa eval run --help` (whose option it types)
does not import the API models and the engine.
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    """What `shinsa eval run --phase` does with a spec."""

    GENERATE = "generate"
    """Ask the model only: generations.jsonl and a results summary with status Generated; no judge
    is called (nor needs its key)."""
    JUDGE = "judge"
    """Judge pre-generated answers (`spec.answers` or `--answers`); the model is never called."""
    ALL = "all"
    """Both: generate (unless `spec.answers` gives the answers), then judge."""
