"""Scoring functions for the eval harness: pure functions over results and gold items."""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections.abc import Sequence

_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
}


def norm(text: str) -> str:
    """Case, quotes, dashes, number words and spacing folded for must_include matching."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = (t.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
         .replace("–", "-").replace("—", "-").replace("‐", "-"))
    t = re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", lambda m: _NUMBER_WORDS[m.group(1)], t)
    t = re.sub(r"(\d)\s*(gw|%)", r"\1 \2", t)
    t = re.sub(r"\s+", " ", t)
    return t


def correct(answer: str, must_include: Sequence[str]) -> bool:
    a = norm(answer)
    return all(norm(m) in a for m in must_include)


def retrieval_rank(chunk_ids: Sequence[str], chunk_spans: dict[str, tuple[str, int, int]],
                   support: Sequence[str], source_text: dict[str, str]) -> int | None:
    """1-based rank of the first retrieved chunk containing any gold support string."""
    for rank, chunk_id in enumerate(chunk_ids, start=1):
        span = chunk_spans.get(chunk_id)
        if span is None:
            continue
        source, start, end = span
        chunk = source_text.get(source, "")[start:end]
        if any(s in chunk for s in support):
            return rank
    return None


def ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def balanced_accuracy(labels: list[bool], predictions: list[bool]) -> float:
    pos = [p for lab, p in zip(labels, predictions, strict=True) if lab]
    neg = [p for lab, p in zip(labels, predictions, strict=True) if not lab]
    tpr = sum(pos) / len(pos) if pos else 0.0
    tnr = sum(not p for p in neg) / len(neg) if neg else 0.0
    return round((tpr + tnr) / 2, 4)
