"""Completing a checked answer with the documents' own words.

The 1.5B model answers one part of a two-part question, or paraphrases a sentence and leaves out
what was asked (the unit of a figure, an expert's affiliation), and its summaries cite one or two
passages. Three steps add whole source sentences, verbatim and cited, after the checker:

- ``missing``: for each part of the question the answer does not take up (a name or figure of
  the part, or most of its content words, missing from the kept sentences), the sentence closest
  to the part (by meaning, and by the part's own words: "Coca-Cola" should find the Coca-Cola
  sentence), unless the answer cites it already or it scores under ``min_score`` (on the dev
  split, the sentences under 0.5 added for a part were unrelated to it). No model call: the
  1.5B, asked whether a sentence answers a part, says yes to "Critical minerals represent a core
  element of this strategy" for "What are the critical minerals used for?" and no to the
  Coca-Cola sentence that does answer its part.
- ``spread``: a summary citing fewer than ``want`` passages gets, from the passages it does not
  cite, their sentences closest to the question, until it cites ``want``. No model call: every
  sentence is quoted, and a summary's sentences answer it by being its main points.
- ``topical``: then a summary gets the sentences closest to its topic (the question without
  "summarise", "give an overview of") that it does not cite yet: on the dev split the 1.5B's
  summaries and the spread left out most required points, which sit in such sentences.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..text import content_words, is_instruction, known_word
from ..types import Passage
from .checker import Checked, Support
from .claims import facts, terms
from .extractive import ranked
from .quotes import QuoteIndexer, QuoteSpan, leans_on_previous, sentence_before

# how much the share of the part's content words found in a sentence adds to its cosine
LEXICAL_WEIGHT = 0.3


def closest(part: str, part_vector: np.ndarray, passages: list[Passage], quotes: QuoteIndexer,
            fits: Callable[[str], bool] = lambda sentence: True) -> list[Support]:
    """The sentences of ``passages`` that ``fits``, closest to ``part`` first: cosine plus
    ``LEXICAL_WEIGHT`` times the share of the part's content words the sentence holds."""
    words = set(content_words(part))
    out = []
    for s in ranked(part_vector, passages, quotes, fits):
        have = terms(s.sentence)
        share = sum(known_word(w, have) for w in words) / len(words) if words else 0.0
        out.append(Support(s.passage, s.span, s.score + LEXICAL_WEIGHT * share))
    out.sort(key=lambda s: -s.score)
    return out


def cites(checked: Checked, support: Support) -> bool:
    """Whether a kept sentence of ``checked`` already quotes from ``support``'s sentence."""
    return overlaps([s for _, supports in checked.sentences for s in supports], support)


def overlaps(quoted: list[Support], support: Support) -> bool:
    """Whether one of ``quoted`` lies in the same sentence of the same passage as ``support``."""
    span = support.span
    return any(s.passage.chunk_id == support.passage.chunk_id
               and s.span.sentence_start < span.sentence_end
               and span.sentence_start < s.span.sentence_end for s in quoted)


def answered(part: str, said: str, min_share: float = 0.5) -> bool:
    """Whether the answer's kept text ``said`` takes up ``part``: it holds every name and
    figure of the part and at least ``min_share`` of its content words."""
    have = terms(said)
    if any(not known_word(f, have) for f in facts(part)):
        return False
    words = set(content_words(part))
    return not words or sum(known_word(w, have) for w in words) / len(words) >= min_share


def missing(parts: list[str], vectors: list[np.ndarray], checked: Checked,
            passages: list[Passage], quotes: QuoteIndexer,
            fits: Callable[[str, str], bool] = lambda part, sentence: True,
            min_score: float = 0.5) -> list[Support]:
    """For each part (``vectors``: their embeddings) the answer does not take up, its closest
    sentence (that ``fits(part, sentence)``: the answer type it asks for) if it scores at least
    ``min_score`` (``closest``), unless the answer cites that sentence already."""
    said = " ".join(text for text, _ in checked.sentences)
    out: list[Support] = []
    for part, vector in zip(parts, vectors, strict=True):
        if answered(part, said):
            continue
        best = closest(part, vector, passages, quotes, lambda s, p=part: fits(p, s))[:1]
        if best and best[0].score >= min_score and not cites(checked, best[0]) \
                and not any(_same(best[0], o) for o in out):
            out.append(best[0].whole_sentence())
    return out


def spread(question_vector: np.ndarray, question: str, checked: Checked,
           passages: list[Passage], quotes: QuoteIndexer, want: int = 3) -> list[Support]:
    """Sentences closest to the question from passages the answer does not cite, one per
    passage, until it cites ``want`` passages."""
    cited = {s.passage.chunk_id for _, supports in checked.sentences for s in supports}
    out: list[Support] = []
    for support in closest(question, question_vector, passages, quotes):
        if len(cited) >= want:
            break
        if support.passage.chunk_id not in cited:
            cited.add(support.passage.chunk_id)
            out.append(support.whole_sentence())
    return out


def topical(topic_vector: np.ndarray, checked: Checked, added: list[Support],
            passages: list[Passage], quotes: QuoteIndexer, n: int,
            diversity: float = 0.0) -> list[Support]:
    """``n`` sentences on a summary's topic that neither the answer nor ``added`` cites, by
    maximal marginal relevance: cosine to the topic, less ``diversity`` times the cosine to the
    closest sentence already in the answer or chosen (0: the closest to the topic). A summary's
    points lie in sentences of their own, all over the corpus; the closest to the topic alone
    are much alike ("The recent surge in U.S. activity in Tajikistan …", "Ultimately, the U.S.
    engagement in Tajikistan …")."""
    taken = [s for _, supports in checked.sentences for s in supports] + added
    free: list[tuple[Support, np.ndarray]] = []
    chosen: list[np.ndarray] = []
    for passage in passages:
        index = quotes(passage)
        for row in index.sentences():
            span = index.spans[row]
            if is_instruction(index.sentence_of(span)):
                continue
            support = Support(passage, span, float(index.vectors[row] @ topic_vector))
            if overlaps(taken, support):
                chosen.append(index.vectors[row])
            else:
                free.append((support, index.vectors[row]))
    out: list[Support] = []
    while free and len(out) < n:
        def gain(i: int) -> float:
            near = max((float(free[i][1] @ c) for c in chosen), default=0.0)
            return free[i][0].score - diversity * near
        support, vector = free.pop(max(range(len(free)), key=gain))
        out.append(support.whole_sentence())
        chosen.append(vector)
    return out


def _same(a: Support, b: Support) -> bool:
    return (a.passage.chunk_id, a.span.sentence_start) == (b.passage.chunk_id,
                                                           b.span.sentence_start)


def readable(support: Support, taken: list[Support], quotes: QuoteIndexer) -> Support:
    """A source sentence shown on its own, readable: one that opens by referring back ("It is
    a calculated move …"), or a bare quotation whose speaker the sentence before names
    ("“While the U.S. can offer …”" after "… argues Dr. Almas Miriev, …"), is quoted from the
    sentence before it in its passage, unless one of ``taken`` (the answer's quotes) already
    quotes that one."""
    if not leans_on_previous(support.sentence):
        return support
    before = quotes(support.passage).previous_span(support.span)
    if before is None or overlaps(taken, Support(support.passage, before, support.score)):
        return support
    span = QuoteSpan(before.start, support.span.sentence_end, before.start,
                     support.span.sentence_end)
    return Support(support.passage, span, support.score)


def with_previous(support: Support, passages: list[Passage], quotes: QuoteIndexer,
                  taken: list[Support] | None = None) -> list[Support]:
    """``readable`` across a chunk boundary: a sentence that leans on the one before it
    (``quotes.leans_on_previous``) and opens its passage comes after the sentence right
    before it in the source, the last of the chunk before ("… argues Dr. Almas Miriev, …"
    ending one chunk, "“While the U.S. can offer …”" opening the next:
    ``quotes.sentence_before``), unless one of ``taken`` quotes that one already; any other
    sentence alone."""
    if not leans_on_previous(support.sentence) \
            or quotes(support.passage).previous_span(support.span) is not None:
        return [support]
    found = sentence_before(support.passage, support.span, passages, quotes)
    if found is None:
        return [support]
    before = Support(found[0], found[1], support.score)
    if overlaps(taken or [], before) or overlaps([support], before):
        return [support]
    return [before, support]


def one_by_one(support: Support, quotes: QuoteIndexer) -> list[Support]:
    """``support``'s whole sentences, each a support of its own (one that ``readable`` widened
    to the sentence before is two): every sentence shown gets its own citation."""
    index = quotes(support.passage)
    span = support.span
    out = [Support(support.passage, s, support.score) for row in index.sentences()
           if span.sentence_start <= (s := index.spans[row]).sentence_start
           and s.sentence_end <= span.sentence_end]
    return out or [support]

