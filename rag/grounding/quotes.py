"""The quote index: every span of a retrieved passage that may be quoted, with its embedding.

A candidate quote is a sentence, one of its clauses, or two adjacent clauses. Each remembers the
sentence it lies in, because a claim's names and figures must stand in that sentence. Offsets
are into ``passage.text``; ``passage.start + span.start`` is the offset in the source file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..embeddings import Embedder
from ..text import clause_spans, sentence_spans
from ..types import Passage

# a sentence that opens by referring back to the one before ("It is …", "This deal …")
_REFERS_BACK = re.compile(r"^\W*(?:it|its|it[’']s|this|these|those|they|their|he|his|she|her|"
                          r"such)\b", re.I)
# a sentence that is a quotation and nothing else: its speaker is named in the sentence before
_BARE_QUOTE = re.compile(r"^\W*[“\"][^“”\"]+[”\"]\W*$")


def leans_on_previous(sentence: str) -> bool:
    """A sentence not readable on its own: it opens by referring back ("It is a calculated
    move …"), or it is a bare quotation whose speaker the sentence before names."""
    return bool(_REFERS_BACK.match(sentence) or _BARE_QUOTE.match(sentence))


def is_bare_quote(sentence: str) -> bool:
    """A sentence that is a quotation and nothing else ("“While the U.S. can offer …”")."""
    return bool(_BARE_QUOTE.match(sentence))


# at most this many characters (whitespace: chunks are slices of the source that start and end
# on text) between a sentence and the one before it, across a chunk boundary (also how the
# premise check tells that two sentences it holds are next to each other in the source)
SENTENCE_GAP = 8


@dataclass(frozen=True)
class QuoteSpan:
    start: int
    end: int
    sentence_start: int  # the sentence this span lies in
    sentence_end: int

    @property
    def is_sentence(self) -> bool:
        return (self.start, self.end) == (self.sentence_start, self.sentence_end)

    def shifted(self, by: int) -> QuoteSpan:
        return QuoteSpan(self.start - by, self.end - by, self.sentence_start - by,
                         self.sentence_end - by)


@dataclass(frozen=True)
class QuoteIndex:
    """The candidate quotes of one passage and their embeddings (row i is span i)."""

    passage: Passage
    spans: tuple[QuoteSpan, ...]
    vectors: np.ndarray

    def text(self, span: QuoteSpan) -> str:
        return self.passage.text[span.start:span.end]

    def sentence_of(self, span: QuoteSpan) -> str:
        return self.passage.text[span.sentence_start:span.sentence_end]

    def previous_sentence(self, span: QuoteSpan) -> str:
        """The whole sentence before ``span``'s sentence in the passage, or ''."""
        before = self.previous_span(span)
        return "" if before is None else self.passage.text[before.start:before.end]

    def previous_span(self, span: QuoteSpan) -> QuoteSpan | None:
        """The whole sentence before ``span``'s sentence in the passage, as a span."""
        ends = [s.sentence_end for s in self.spans if s.sentence_end <= span.sentence_start]
        if not ends:
            return None
        end = max(ends)
        start = next(s.sentence_start for s in self.spans if s.sentence_end == end)
        return QuoteSpan(start, end, start, end)

    def sentences(self) -> list[int]:
        """Indexes of the spans that are whole sentences, in text order."""
        return [i for i, s in enumerate(self.spans) if s.is_sentence]

    def closest_sentence(self, vector: np.ndarray) -> tuple[QuoteSpan, float] | None:
        """The whole sentence closest to ``vector`` and its cosine."""
        rows = self.sentences()
        if not rows:
            return None
        sims = self.vectors[rows] @ vector
        best = int(np.argmax(sims))
        return self.spans[rows[best]], float(sims[best])

    def window(self, start: int, end: int) -> QuoteIndex:
        """The passage cut to ``text[start:end]`` (whole sentences) with the spans inside it:
        derived, not re-embedded."""
        p = self.passage
        cut = Passage(p.chunk_id, p.source, p.start + start, p.start + end, p.text[start:end],
                      p.score, p.dense_score, p.lexical_score, p.rank)
        keep = [i for i, s in enumerate(self.spans)
                if start <= s.sentence_start and s.sentence_end <= end]
        return QuoteIndex(cut, tuple(self.spans[i].shifted(start) for i in keep),
                          self.vectors[keep])


def candidate_spans(text: str) -> tuple[QuoteSpan, ...]:
    """Sentences, their clauses and pairs of adjacent clauses, without duplicates."""
    spans: list[QuoteSpan] = []
    for a, b in sentence_spans(text):
        spans.append(QuoteSpan(a, b, a, b))
        clauses = clause_spans(text, a, b)
        if len(clauses) > 1:
            spans.extend(QuoteSpan(x, y, a, b) for x, y in clauses)
            spans.extend(QuoteSpan(c1[0], c2[1], a, b)
                         for c1, c2 in zip(clauses, clauses[1:], strict=False))
    return tuple(dict.fromkeys(spans))


class QuoteIndexer:
    """Builds quote indexes, embedding each passage's spans once (cached per chunk span)."""

    def __init__(self, embeddings: Embedder, max_cached: int = 4096) -> None:
        self.embeddings = embeddings
        self.max_cached = max_cached
        self._cache: dict[tuple[str, int, int], QuoteIndex] = {}

    def __call__(self, passage: Passage) -> QuoteIndex:
        key = (passage.chunk_id, passage.start, passage.end)
        hit = self._cache.get(key)
        if hit is not None and hit.passage.text == passage.text:
            return hit
        spans = candidate_spans(passage.text)
        vectors = (self.embeddings.encode([passage.text[s.start:s.end] for s in spans])
                   if spans else np.zeros((0, 0), dtype=np.float32))
        return self.remember(QuoteIndex(passage, spans, vectors))

    def remember(self, index: QuoteIndex) -> QuoteIndex:
        """Cache an index built elsewhere (a ``window`` of a cached one)."""
        if len(self._cache) >= self.max_cached:
            self._cache.clear()
        p = index.passage
        self._cache[(p.chunk_id, p.start, p.end)] = index
        return index


def sentence_before(passage: Passage, span: QuoteSpan, passages: list[Passage],
                    quotes: QuoteIndexer) -> tuple[Passage, QuoteSpan] | None:
    """The whole sentence right before ``span``'s sentence in the source: in its own passage,
    else the sentence of another of ``passages`` (same source) that ends at most ``SENTENCE_GAP``
    characters before it starts (the end of the chunk before; overlapping chunks hold it
    too). None when no passage holds it."""
    before = quotes(passage).previous_span(span)
    if before is not None:
        return passage, before
    at = passage.start + span.sentence_start
    for p in passages:
        if p.source != passage.source or not p.start < at <= p.end + SENTENCE_GAP:
            continue
        index = quotes(p)
        for row in index.sentences():
            s = index.spans[row]
            if 0 <= at - (p.start + s.sentence_end) <= SENTENCE_GAP:
                return p, QuoteSpan(s.sentence_start, s.sentence_end, s.sentence_start,
                                    s.sentence_end)
    return None

