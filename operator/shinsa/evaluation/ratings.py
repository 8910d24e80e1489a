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

`read_rating` and `read_criteria` apply a benchmark's `judging` policy instead: a prompt file's
regex, the first match (llm-jp-judge v2.0.0's `re.search` and quality reader, evaluator/base.py and
evaluator/quality.py) or agreeing ones, with or without the range check.
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


def _value(text: str, what: str) -> float:
    # llm-jp-judge takes int() of the matched text, which also reads full-width digits.
    try:
        return float(int(text))
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise RatingError(f"{what} {text!r} is not a number") from None


def read_rating(
    text: str,
    low: float,
    high: float,
    *,
    regex: re.Pattern[str] | None = None,
    rule: str = "agree",
    range_check: bool = True,
) -> float:
    """A rating read by a benchmark's policy: with `regex` (group 1 is the rating, as llm-jp-judge's
    prompt files give it) or Shinsa's `[[n]]`; `rule` `first` takes the first match (llm-jp-judge's
    `re.search`), `agree` needs every match to agree; `range_check` rejects a value off the scale."""
    if regex is None:
        if rule == "agree" and range_check:
            return parse_rating(text, low, high)
        found = [(float(num), den or None) for num, den in _RATING.findall(_normalise(text))]
        if not found:
            raise RatingError("no [[rating]] found")
        if range_check:
            values = [_check_scale(v, den, low, high, "rating") for v, den in found]
        else:
            values = [v for v, _ in found]
    else:
        matches = [
            m.group(1) for m in (regex.finditer(text) if rule == "agree" else [regex.search(text)]) if m
        ]
        if not matches:
            raise RatingError(f"no match of {regex.pattern!r}")
        values = [_value(m, "rating") for m in matches]
        if range_check:
            values = [_check_scale(v, None, low, high, "rating") for v in values]
    return values[0] if rule == "first" else _agree(values, "rating")


def read_criteria(
    text: str,
    criteria: Sequence[str],
    low: float,
    high: float,
    *,
    regex: re.Pattern[str] | None = None,
    rule: str = "agree",
    range_check: bool = True,
) -> dict[str, float]:
    """Per-criterion ratings read by a benchmark's policy. With `regex` (groups: criterion, rating,
    as llm-jp-judge's quality file) every match is read: `first` wants each criterion exactly once
    (llm-jp-judge's quality reader), `agree` lets a repeated one through when it agrees; the
    criteria found must be exactly `criteria`."""
    if regex is None:
        if rule == "agree" and range_check:
            return parse_criteria(text, criteria, low, high)
        scores: dict[str, float] = {}
        for name in criteria:
            m = _criterion_pattern(name).search(_normalise(text))
            if m is None:
                raise RatingError(f"missing criteria: {name}")
            value = float(m.group(1))
            scores[name] = (
                _check_scale(value, m.group(2) or None, low, high, f"{name} rating") if range_check else value
            )
        return scores
    found: dict[str, list[float]] = {}
    for match in regex.finditer(text):
        name, value = match.group(1), _value(match.group(2), "rating")
        if rule == "first" and name in found:
            raise RatingError(f"{name} rated more than once")
        found.setdefault(name, []).append(
            _check_scale(value, None, low, high, f"{name} rating") if range_check else value
        )
    if set(found) != set(criteria):
        missing = [c for c in criteria if c not in found]
        extra = sorted(set(found) - set(criteria))
        raise RatingError(
            "criteria do not match"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unexpected: {', '.join(extra)}" if extra else "")
        )
    return {name: _agree(found[name], f"{name} rating") for name in criteria}
