"""Reading ratings out of judge text.

A judgment that cannot be read unambiguously raises `RatingError`; the judge is then asked again,
and after its retries the item is an error. Guessing a score would bias the mean silently.

Rules, for a rating written as `[[n]]` (also `[[ n ]]`, `[[n/10]]`, full-width brackets/digits):
- decimals are accepted (`[[8.5]]`) when inside the scale;
- surrounding words do not matter (`Rating: [[7]]`);
- several ratings are accepted only when they agree (a judge restating its verdict);
  different values are ambiguous and rejected;
- no rating, or one outside the scale, is rejected;
- a criterion's rating is read only after its name as a whole label (`accuracy` never matches
  inside `inaccuracy` or `overall_accuracy`); a CJK name may end a longer label (`正確性` is read
  from `回答の正確性: [[4]]`) unless that longer label is a criterion of its own.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_RATING = re.compile(r"\[\[\s*" + _NUMBER + r"\s*(?:/\s*(\d+(?:\.\d+)?)\s*)?\]\]")


class RatingError(ValueError):
    """The judge's text does not contain one clear, in-range rating."""


def _normalise(text: str) -> str:
    # Japanese judges may answer with full-width brackets and digits; NFKC folds them to ASCII.
    return unicodedata.normalize("NFKC", text)


def _check_scale(value: float, denominator: str | None, low: float, high: float, what: str) -> float:
    if denominator is not None and float(denominator) != high:
        raise RatingError(f"{what} [[{value:g}/{denominator}]] is not on the 1-{high:g} scale")
    if not low <= value <= high:
        raise RatingError(f"{what} {value:g} is outside {low:g}-{high:g}")
    return value


def _agree(values: list[float], what: str) -> float:
    if len(set(values)) > 1:
        raise RatingError(f"several different {what}s: {', '.join(f'{v:g}' for v in values)}")
    return values[0]


def parse_rating(text: str, low: float = 1, high: float = 10) -> float:
    found = _RATING.findall(_normalise(text))
    if not found:
        raise RatingError("no [[rating]] found")
    values = [_check_scale(float(num), den or None, low, high, "rating") for num, den in found]
    return _agree(values, "rating")


# Han, Hiragana, Katakana (with their halfwidth forms) and Hangul: scripts written without spaces.
_UNSPACED_SCRIPTS = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7af]"
)


def _starts_a_word(name: str) -> bool:
    # Scripts written with spaces get a word boundary before the name (`accuracy` is not in
    # `inaccuracy`, nor `точность` in `неточность`); CJK labels follow other text directly
    # (`回答の正確性`), so a name in those scripts may match anywhere.
    return not _UNSPACED_SCRIPTS.match(name[:1])


def _criterion_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        (r"(?<![\w-])" if _starts_a_word(name) else "")
        + re.escape(name)
        + r"(?![\w-])\**\s*[:=]?\s*\**\s*\[\[\s*"
        + _NUMBER
        + r"\s*(?:/\s*(\d+(?:\.\d+)?)\s*)?\]\]",
        re.IGNORECASE,
    )


def parse_criteria(text: str, criteria: Sequence[str], low: float = 1, high: float = 5) -> dict[str, float]:
    """Ratings written one per criterion as `name: [[n]]`; every criterion must be present."""
    normalised = _normalise(text)
    # The name must stand alone as a label: `accuracy` is not read out of `inaccuracy: [[2]]` or
    # `overall_accuracy: [[2]]`. A CJK name may end a longer label (`回答の正確性` for `正確性`); when that
    # longer label is itself a criterion, the rating is its own, not the shorter name's.
    matches = {name: list(_criterion_pattern(name).finditer(normalised)) for name in criteria}
    scores: dict[str, float] = {}
    missing: list[str] = []
    for name in criteria:
        found = [
            m
            for m in matches[name]
            if not any(
                o.end() == m.end() and o.start() < m.start()
                for other in criteria
                if other != name
                for o in matches[other]
            )
        ]
        if not found:
            missing.append(name)
            continue
        values = [
            _check_scale(float(m.group(1)), m.group(2) or None, low, high, f"{name} rating") for m in found
        ]
        scores[name] = _agree(values, f"{name} rating")
    if missing:
        raise RatingError(f"missing criteria: {', '.join(missing)}")
    return scores
