"""Passages that say otherwise: for an answer sentence that states a figure, a sentence of another
passage (or elsewhere in the same one) about the same subject that gives a different figure of
the same kind ("$3.2 billion" in the article, "$9 billion" in a brief); and for one that rests on
a description that excludes another ("landlocked" / "its coastline", "a nascent democracy" /
"in power since 1992"), a sentence about the same subject with the other description
(``opposed``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np

from ..text import US_WORDS, content_words, is_instruction
from ..types import Citation, Disagreement, Passage
from .checker import Checked, Support
from .quotes import QuoteIndex, QuoteSpan

_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "k": 1e3,
          "m": 1e6, "bn": 1e9}
_UNITS = r"(?:gw|mw|kw|gigawatts?|megawatts?|km|kilometers?|kilometres?|miles?|tons?|tonnes?|" \
         r"percent|per cent|%|people|troops|soldiers|passengers|jobs|students|workers)"
_FIGURE = re.compile(
    r"(?P<cur>[$€£])?\s?(?P<num>\d[\d,]*(?:\.\d+)?)\s*(?P<scale>thousand|million|billion|"
    r"trillion|bn|k|m)?\b\s*(?P<unit>" + _UNITS + r")?", re.I)
# comparable units as one kind, in one scale: (kind, factor)
_UNIT_OF = {"gw": ("power", 1e3), "gigawatt": ("power", 1e3), "mw": ("power", 1.0),
            "megawatt": ("power", 1.0), "kw": ("power", 1e-3), "km": ("length", 1.0),
            "kilometer": ("length", 1.0), "kilometre": ("length", 1.0),
            "mile": ("length", 1.609), "ton": ("mass", 1.0), "tonne": ("mass", 1.0)}
_FIGURE_WORDS = set(_SCALE) | {"dollars", "dollar", "usd", "worth", "valued", "value"}


@dataclass(frozen=True)
class Conflict:
    """Answer sentence ``claim`` (index into the checked sentences) rests on ``said``; ``other``
    is a quote about the same subject with a different figure."""

    claim: int
    said: Support
    other: Support


def figures(text: str) -> dict[str, set[float]]:
    """Money amounts, percentages and quantities with a unit in ``text``, by kind (years and
    bare counts are left out: two different years are rarely a disagreement)."""
    out: dict[str, set[float]] = {}
    for m in _FIGURE.finditer(text):
        try:
            value = float(m.group("num").replace(",", ""))
        except ValueError:
            continue
        scale = (m.group("scale") or "").lower()
        unit = (m.group("unit") or "").lower()
        if m.group("cur"):
            kind = "money"
        elif unit in ("%", "percent", "per cent"):
            kind = "percent"
        elif unit:
            kind, factor = _UNIT_OF.get(unit.rstrip("s"), (unit.rstrip("s"), 1.0))
            value *= factor
        elif scale in ("million", "billion", "trillion", "bn"):
            kind = "amount"
        else:
            continue  # a year, a rank, a bare count
        out.setdefault(kind, set()).add(value * _SCALE.get(scale, 1.0))
    return out


def _disagree(a: dict[str, set[float]], b: dict[str, set[float]]) -> bool:
    """Some kind of figure both give, with no value in common."""
    return any(kind in b and not (values & b[kind]) for kind, values in a.items())


def _subject(text: str) -> set[str]:
    return {w for w in content_words(text) if not any(ch.isdigit() for ch in w)
            and w not in _FIGURE_WORDS}


def _sentence_vector(said: Support, quotes: Callable[[Passage], QuoteIndex]
                     ) -> np.ndarray | None:
    """The vector of the whole sentence ``said`` quotes (None if its index has no such row)."""
    index = quotes(said.passage)
    rows = [i for i in index.sentences()
            if index.spans[i].sentence_start == said.span.sentence_start]
    return index.vectors[rows[0]] if rows else None


def _same_sentence(index: QuoteIndex, span: QuoteSpan, said: Support) -> bool:
    """Whether ``span`` of ``index`` lies in the source sentence ``said`` quotes."""
    return (index.passage.source == said.passage.source
            and index.passage.start + span.sentence_start
            == said.passage.start + said.span.sentence_start)


def find_conflicts(sentences: list[tuple[str, list[Support]]], passages: list[Passage],
                   quotes: Callable[[Passage], QuoteIndex],
                   encode: Callable[[list[str]], np.ndarray], min_similarity: float = 0.5,
                   min_shared: int = 2) -> list[Conflict]:
    """For each answer sentence that states a figure, the most similar sentence of
    ``passages`` (same subject: at least ``min_shared`` content words in common and a cosine of
    ``min_similarity`` to the answer sentence or its quote) that gives a different figure of the
    same kind."""
    out: list[Conflict] = []
    todo = [i for i, (claim, supports) in enumerate(sentences) if supports and figures(claim)]
    if not todo:
        return out
    indexes = [quotes(p) for p in passages]
    claim_vectors = dict(zip(todo, encode([sentences[i][0] for i in todo]), strict=True))
    for ci in todo:
        claim, supports = sentences[ci]
        stated = figures(claim)
        said = supports[0]
        vector = _sentence_vector(said, quotes)
        if vector is None:
            continue
        subject = _subject(said.sentence) | _subject(claim)
        best: Support | None = None
        for index in indexes:
            for i in index.sentences():
                span = index.spans[i]
                same = _same_sentence(index, span, said)
                sentence = index.sentence_of(span)
                if same or is_instruction(sentence):
                    continue
                if not _disagree(stated, figures(sentence)):
                    continue
                if len(subject & _subject(sentence)) < min_shared:
                    continue
                sim = float(max(index.vectors[i] @ vector, index.vectors[i] @ claim_vectors[ci]))
                if sim >= min_similarity and (best is None or sim > best.score):
                    best = Support(index.passage, span, sim)
        if best is not None:
            out.append(Conflict(ci, said, best))
    return out


def with_disagreements(checked: Checked, conflicts: list[Conflict]) -> Checked:
    """``checked`` with, after each sentence that has a conflict, a sentence quoting the other
    side: 'However, brief.txt says: “…” [n].' (once: two sentences against the same one get
    it after the first)."""
    if not conflicts:
        return checked
    by_claim = {c.claim: c for c in conflicts}
    sentences: list[tuple[str, list[Support]]] = []
    shown = set()  # the other side is quoted once, after the first sentence it disagrees with
    for i, sentence in enumerate(checked.sentences):
        sentences.append(sentence)
        if (c := by_claim.get(i)) is not None:
            other = c.other.whole_sentence()
            if (key := (other.passage.source, other.start, other.end)) in shown:
                continue
            shown.add(key)
            where = ("elsewhere the same document" if other.passage.source == c.said.passage.source
                     else other.passage.source)
            sentences.append((f"However, {where} says: \u201c{other.quote.strip().rstrip('.')}"
                              "\u201d", [other]))
    return Checked(sentences=sentences, dropped=checked.dropped,
                   contradicted=checked.contradicted)


def disagreements(conflicts: list[Conflict], citations: list[Citation]) -> list[Disagreement]:
    """The conflicts as pairs of citation numbers of the assembled answer."""
    number = {(c.chunk_id, c.start, c.end): c.n for c in citations}
    out = []
    for c in conflicts:
        other = c.other.whole_sentence()
        said = number.get((c.said.passage.chunk_id, c.said.start, c.said.end))
        theirs = number.get((other.passage.chunk_id, other.start, other.end))
        if said and theirs:
            out.append(Disagreement(said, theirs))
    return out


# Descriptions of one subject that exclude each other: a sentence with one side and a sentence
# with the other about the same subject (the same document, or a name in common) disagree. A
# short, literal list on purpose: the 1.5B model cannot confirm a contradiction (asked "do A
# and B contradict each other?" or "can both be true?" it answered yes to every pair of the
# article, related or not), so only wording that excludes the other side by itself is listed.
OPPOSED = [
    (re.compile(r"\blandlocked\b", re.I),
     re.compile(r"\b(coast(line|al)?|naval|seaports?|maritime|shorelines?|seas?|oceans?)\b",
                re.I)),
    (re.compile(r"\bdemocrac(y|ies)\b", re.I),
     re.compile(r"\b(authoritarian|autocra(cy|tic)|dictator(ship)?|one-party|(held|in) "
                r"power since)\b", re.I)),
]


def _names(sentence: str) -> set[str]:
    """Stems of the capitalised words of ``sentence`` but its first ('Tajikistan', 'Tajik' ->
    'tajik')."""
    words = re.findall(r"[A-Za-z][\w’'-]*", sentence)
    # "America" is "U.S.", which is too short to count, so it does not count either
    return {w[:5].lower() for w in words[1:]
            if w[0].isupper() and len(w) > 3
            and re.split(r"[’']", w.lower())[0] not in US_WORDS}


def opposed(sentences: list[tuple[str, list[Support]]], passages: list[Passage],
            quotes: Callable[[Passage], QuoteIndex], already: Collection[int] = ()
            ) -> list[Conflict]:
    """For answer sentences (not in ``already``) whose quote or text carries one side of an
    ``OPPOSED`` pair, the sentence of ``passages`` closest to the quote that carries the other
    side and is about the same subject (same document, or a name in common); a side the answer
    sentence states itself comes before one only its quote mentions."""
    out: list[Conflict] = []
    indexes = [quotes(p) for p in passages]
    for ci, (claim, supports) in enumerate(sentences):
        if ci in already or not supports:
            continue
        said = supports[0]
        text = f"{said.sentence} {claim}"
        vector = _sentence_vector(said, quotes)
        if vector is None:
            continue
        names = _names(said.sentence)
        best: Support | None = None
        best_key = (False, -2.0)
        for one, other in OPPOSED:
            for side, opposite in ((one, other), (other, one)):
                if not side.search(text):
                    continue
                # a side the answer itself states outranks one only its quote mentions
                stated = bool(side.search(claim))
                for index in indexes:
                    for i in index.sentences():
                        span = index.spans[i]
                        sentence = index.sentence_of(span)
                        same = _same_sentence(index, span, said)
                        if same or is_instruction(sentence) or not opposite.search(sentence):
                            continue
                        if (index.passage.source != said.passage.source
                                and not names & _names(sentence)):
                            continue  # another document about something else
                        sim = float(index.vectors[i] @ vector)
                        if (stated, sim) > best_key:
                            best, best_key = Support(index.passage, span, sim), (stated, sim)
        if best is not None:
            out.append(Conflict(ci, said, best))
    return out


def both_sides(text: str, question_vector: np.ndarray, passages: list[Passage],
               quotes: Callable[[Passage], QuoteIndex]) -> Conflict | None:
    """For a question that ``text`` (the question, and the model's answer that did not hold)
    shows to be about one side of an ``OPPOSED`` pair ("Does Tajikistan have a coastline?"):
    the sentence of ``passages`` closest to the question that carries each side, when both
    exist about the same subject (same document, or a name in common); the earlier one in the
    documents is ``said``, and their passages name every name of ``text``. None otherwise: the
    documents' disagreement is then no answer."""
    indexes = [quotes(p) for p in passages]
    # the text's names, without the capital each of its sentences opens with ("Which is it?")
    asked = set().union(*(_names(s) for s in re.split(r"(?<=[.!?])\s+", text)))
    for pair in OPPOSED:
        if not any(side.search(text) for side in pair):
            continue
        best: list[Support | None] = [None, None]
        for n, side in enumerate(pair):
            for index in indexes:
                for i in index.sentences():
                    span = index.spans[i]
                    sentence = index.sentence_of(span)
                    if is_instruction(sentence) or not side.search(sentence):
                        continue
                    if pair[1 - n].search(sentence):
                        continue  # both sides in one sentence: no disagreement to show
                    sim = float(index.vectors[i] @ question_vector)
                    current = best[n]
                    if current is None or sim > current.score:
                        best[n] = Support(index.passage, span, sim)
        one, other = best
        if one is None or other is None:
            continue
        if (one.passage.source != other.passage.source
                and not _names(one.sentence) & _names(other.sentence)):
            continue
        if not asked <= _names(one.passage.text) | _names(other.passage.text):
            continue  # "Is the naval base near Dushanbe?": about something neither side names
        first, second = sorted((one, other), key=lambda s: (s.passage.source,
                                                           s.passage.start + s.span.start))
        return Conflict(0, first.whole_sentence(), second.whole_sentence())
    return None
