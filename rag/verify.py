"""The citation checker: the model's word is never final.

Each sentence of the model's output is checked against the passages it cites:
  * every number and proper name in it must occur in the supporting passage;
  * it must be semantically close (embedding cosine) to one sentence of that passage,
    which becomes the verbatim quote with its offsets in the source file.
A sentence that its citations do not support is re-attributed to a retrieved passage that does,
or dropped. What survives is renumbered in order of first use.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from .embeddings import LocalEmbeddings
from .text import (
    STOPWORDS,
    clause_spans,
    content_words,
    count_tokens,
    known_word,
    normalize,
    sentence_spans,
    words,
)
from .types import Citation, Passage

_MARKER = re.compile(r"\s*(?:\[\s*(\d+(?:\s*[,;–-]\s*\d+)*)\s*\]|【\s*(\d+)\s*】|\^(\d+))")
_TRAILING = re.compile(r"([.!?])((?:\s*(?:\[[\d\s,;–-]+\]|【\s*\d+\s*】))+)")
_NAME = re.compile(r"\b[A-Z][\w’'.-]*[\w]|\b[A-Z]\b")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "100", "thousand": "1000", "dozen": "12",
}


@dataclass
class Claim:
    """One sentence of model output: its text without markers and the passages it cited."""

    text: str
    cited: list[int]  # 1-based passage numbers as the model wrote them (may be invalid)


@dataclass
class Support:
    passage: Passage
    start: int  # offsets in the source file
    end: int
    quote: str
    similarity: float


@dataclass
class Checked:
    sentences: list[tuple[str, list[Support]]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (sentence, reason)


def _echoes(claim: str, question: str) -> bool:
    """A terse claim made only of the question's common words ('System' for 'print your
    system prompt'): it answers nothing. Names the question offers ('China or Russia?') and
    figures are answers, not echoes."""
    claim_words = set(content_words(claim))
    names = {normalize(m.group(0)) for m in re.finditer(r"\b[A-Z][\w-]*", question)}
    return (0 < len(claim_words) <= 2 and not any(ch.isdigit() for ch in claim)
            and claim_words <= set(content_words(question)) and not claim_words & names)


def parse_claims(output: str) -> list[Claim]:
    """Split model output into sentences with their citation markers.

    Accepts ``[1]``, ``[1, 2]``, ``[1][2]``, ``[1-2]``, ``【1】`` and ``^1``; a marker standing
    alone after a sentence's full stop belongs to that sentence.
    """
    claims: list[Claim] = []
    output = _TRAILING.sub(r"\2\1", output)  # "word.[1] Next" -> "word [1]. Next"
    for a, b in sentence_spans(output):
        sent = output[a:b]
        nums: list[int] = []
        text = sent
        while _MARKER.search(text):  # nested debris such as '【[2]1】' hides a second marker
            for m in _MARKER.finditer(text):
                nums.extend(_expand(m.group(1) or m.group(2) or m.group(3)))
            text = _MARKER.sub("", text)
        text = text.strip()
        text = re.sub(r"\s+([.,;:!?])", r"\1", text)
        if not re.search(r"\w", text):
            if claims and nums:
                claims[-1].cited.extend(n for n in nums if n not in claims[-1].cited)
            continue
        claims.append(Claim(text, list(dict.fromkeys(nums))))
    return claims


def _expand(raw: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", raw.strip()):
        bounds = re.split(r"\s*[–-]\s*", part)
        if len(bounds) == 2 and all(x.isdigit() for x in bounds):
            lo, hi = int(bounds[0]), int(bounds[1])
            if 0 < hi - lo < 10:
                out.extend(range(lo, hi + 1))
                continue
        if part.isdigit():
            out.append(int(part))
    return out


def facts(claim: str) -> set[str]:
    """Numbers and proper names a claim asserts: each must occur in its supporting passage."""
    out: set[str] = set()
    for w in words(claim):
        if any(ch.isdigit() for ch in w):
            out.add(w)
        elif w in _NUMBER_WORDS and w != "one":
            out.add(_NUMBER_WORDS[w])
    for m in _NAME.finditer(claim):
        is_first = m.start() == len(claim) - len(claim.lstrip())
        # a compound ('U.S.-Tajik', 'Sino-American') asserts each of its parts
        for token in filter(None, re.split(r"[-–]", m.group(0))):
            lower = normalize(token).rstrip(".").removesuffix("'s")
            if lower in STOPWORDS or lower in _NUMBER_WORDS or len(lower) < 2:
                continue
            if is_first and lower.isalpha() and count_tokens(" " + token) == 1:
                # a capitalised sentence opener that is one cl100k token is most likely an
                # ordinary word ("According", "Overall"); rarer words and names stay facts
                continue
            out.add(lower)
            is_first = False
    return out


def _terms(text: str) -> set[str]:
    ws = words(text)
    return {_NUMBER_WORDS.get(w, w) for w in ws} | set(ws) | {w.rstrip(".") for w in ws}


def missing_facts(claim: str, evidence: str) -> set[str]:
    """The claim's numbers and names that the evidence does not contain (a name may differ in
    its ending: 'Tajik' is found in 'Tajikistan', 'Chinese' in 'China')."""
    have = _terms(evidence)
    return {f for f in facts(claim) if not known_word(f, have)}


# Sentences about the passages rather than from them ("Passage [3].", "X is not mentioned in the
# passages"): never an answer.
_META = re.compile(r"^\W*(passages?|documents?|the (passages?|documents?|context))\W*$|"
                   r"\bnot (mentioned|stated|specified|provided|given|found|included)\b|"
                   r"\b(passages?|documents?|context) (do|does) not\b|"
                   r"\bNOT IN DOCUMENTS\b|\bIN DOCUMENTS\b", re.I)
_SHORT = 6  # claims with at most this many content words are also read with their question
_CONTEXT_PENALTY = 0.05
_OVERLAP_WEIGHT = 0.15  # share of the claim's content words found in the quote
_FACT_BONUS = 0.05  # the quote itself carries all the claim's names and numbers


class Checker:
    """Decides, sentence by sentence, what of the model's output the passages support."""

    def __init__(self, embeddings: LocalEmbeddings, min_support: float = 0.45) -> None:
        self.embeddings = embeddings
        self.min_support = min_support
        self._spans: dict[str, tuple[list[tuple[int, int, int, int]], np.ndarray]] = {}

    def quote_spans(self, passage: Passage) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
        """Candidate quotes of a passage (sentences, clauses, pairs of adjacent clauses) as
        ``(start, end, sentence_start, sentence_end)`` offsets into ``passage.text``, with
        their embeddings. Cached per chunk."""
        key = (passage.chunk_id, passage.start, passage.end)
        hit = self._spans.get(key)
        if hit is not None:
            return hit
        text = passage.text
        spans: list[tuple[int, int, int, int]] = []
        for a, b in sentence_spans(text):
            spans.append((a, b, a, b))
            clauses = clause_spans(text, a, b)
            if len(clauses) > 1:
                spans.extend((x, y, a, b) for x, y in clauses)
                spans.extend((c1[0], c2[1], a, b)
                             for c1, c2 in zip(clauses, clauses[1:], strict=False))
        spans = list(dict.fromkeys(spans))
        vecs = self.embeddings.encode([text[a:b] for a, b, _, _ in spans])
        if len(self._spans) > 4096:
            self._spans.clear()
        self._spans[key] = (spans, vecs)
        return spans, vecs

    def focus(self, passage: Passage, question_vector: np.ndarray, n: int) -> Passage:
        """The ``n`` consecutive sentences of ``passage`` around the one closest to the
        question, as a passage of its own (offsets into the same source): fewer prompt tokens,
        the same quotes. Its quote spans are derived from the whole passage's, not re-embedded.
        """
        if n <= 0:
            return passage
        spans, vecs = self.quote_spans(passage)
        sentences = [i for i, (a, b, sa, sb) in enumerate(spans) if (a, b) == (sa, sb)]
        if len(sentences) <= n:
            return passage
        sims = [float(vecs[i] @ question_vector) for i in sentences]
        lo = hi = max(range(len(sentences)), key=sims.__getitem__)
        while hi - lo + 1 < n:  # grow towards the closer neighbour
            left = sims[lo - 1] if lo > 0 else -2.0
            right = sims[hi + 1] if hi + 1 < len(sentences) else -2.0
            if left >= right:
                lo -= 1
            else:
                hi += 1
        a, b = spans[sentences[lo]][0], spans[sentences[hi]][1]
        focused = Passage(passage.chunk_id, passage.source, passage.start + a,
                          passage.start + b, passage.text[a:b], passage.score,
                          passage.dense_score, passage.lexical_score, passage.rank)
        keep = [(i, (x - a, y - a, sx - a, sy - a)) for i, (x, y, sx, sy) in enumerate(spans)
                if a <= sx and sy <= b]
        self._spans[(focused.chunk_id, focused.start, focused.end)] = (
            [span for _, span in keep], vecs[[i for i, _ in keep]])
        return focused

    def best_quotes(self, question: str, passages: list[Passage], n: int = 2) -> Checked:
        """The sentence of each of the top ``n`` passages closest to ``question``, verbatim:
        the fallback when no model can answer."""
        checked = Checked()
        qvec = self.embeddings.encode([question])[0]
        for passage in passages[:n]:
            spans, vecs = self.quote_spans(passage)
            sentences = [(i, s) for i, s in enumerate(spans) if s[0] == s[2] and s[1] == s[3]]
            if not sentences:
                continue
            i, (a, b, _, _) = max(sentences, key=lambda x: float(vecs[x[0]] @ qvec))
            quote = passage.text[a:b]
            support = Support(passage, passage.start + a, passage.start + b, quote,
                              float(vecs[i] @ qvec))
            checked.sentences.append((f"\u201c{quote.rstrip('.')}\u201d", [support]))
        return checked

    def check(self, output: str, passages: list[Passage], question: str = "",
              topic: Collection[str] = ()) -> Checked:
        """Keep the sentences of ``output`` that the passages support. A terse claim
        ("$3.2 billion") is compared in the context of the ``question`` it answers. Names
        of the question that are in ``topic`` (words common across the corpus, such as the
        country it is about) are context: they must be in the supporting passage, but need not
        stand in the quoted sentence; every other name and figure must."""
        claims = parse_claims(output)
        result = Checked()
        if not claims or not passages:
            result.dropped = [(c.text, "no passages") for c in claims]
            return result
        cvecs = self.embeddings.encode([c.text for c in claims])
        short = [i for i, c in enumerate(claims) if len(content_words(c.text)) <= _SHORT]
        ctx = (self.embeddings.encode([f"{question} {claims[i].text}" for i in short])
               if question and short else None)
        # topic words are content words ('u.s.'), facts drop a final dot ('u.s')
        given = frozenset(facts(question)) & ({w.rstrip(".") for w in topic} | set(topic))
        for ci, claim in enumerate(claims):
            if _META.search(claim.text) or not content_words(claim.text):
                result.dropped.append((claim.text, "says nothing about the documents' content"))
                continue
            if question and _echoes(claim.text, question):
                result.dropped.append((claim.text, "only repeats words of the question"))
                continue
            vecs = [cvecs[ci]]
            asserted = claim.text
            if ctx is not None and ci in short:
                # a terse answer ("1992") asserts its question too: its names must be supported
                vecs.append(ctx[short.index(ci)])
                asserted = f"{question} {claim.text}"
            supports, reason = self._support(claim, asserted, vecs, passages, given)
            if supports:
                result.sentences.append((claim.text, supports))
            else:
                result.dropped.append((claim.text, reason))
        return result

    def _best_quote(self, claim: str, vecs: list[np.ndarray], passage: Passage,
                    given: frozenset[str] = frozenset()) -> Support | None:
        """The claim's best quote in ``passage``: the claim's new names and figures must all
        stand in the quote's sentence; those the question supplied (``given``) need only be
        somewhere in the passage, which the caller has checked."""
        spans, qvecs = self.quote_spans(passage)
        if not spans:
            return None
        sims = qvecs @ vecs[0]
        if len(vecs) > 1:
            sims = np.maximum(sims, qvecs @ vecs[1] - _CONTEXT_PENALTY)
        claim_words = set(content_words(claim))
        best: Support | None = None
        for (a, b, sa, sb), sim in zip(spans, sims, strict=True):
            if missing_facts(claim, passage.text[sa:sb]) - given:
                continue  # the claim's new names and figures must stand in one sentence
            quote = passage.text[a:b]
            have = _terms(quote)
            overlap = (sum(known_word(w, have) for w in claim_words) / len(claim_words)
                       if claim_words else 0.0)
            score = float(sim) + _OVERLAP_WEIGHT * overlap
            if not missing_facts(claim, quote):
                score += _FACT_BONUS
            if best is None or score > best.similarity:
                best = Support(passage, passage.start + a, passage.start + b, quote, score)
        return best

    def _support(self, claim: Claim, asserted: str, vecs: list[np.ndarray],
                 passages: list[Passage], given: frozenset[str] = frozenset()
                 ) -> tuple[list[Support], str]:
        """Supporting quotes from the cited passages; failing that, from any retrieved one
        (re-attribution); failing that, none and the reason."""
        cited = [passages[n - 1] for n in claim.cited if 1 <= n <= len(passages)]
        others = [p for p in passages if p not in cited]
        reason = ""
        for group in (cited, others):
            candidates = []
            for p in group:
                miss = missing_facts(asserted, p.text)
                if miss:
                    where = "cited" if group is cited else "retrieved"
                    reason = reason or f"{', '.join(sorted(miss))} not in the {where} passages"
                    continue
                best = self._best_quote(claim.text, vecs, p, given)
                if best is not None:
                    candidates.append(best)
            if candidates:
                best = max(candidates, key=lambda s: s.similarity)
                if best.similarity >= self.min_support:
                    return [best], ""
                reason = reason or f"too far from the passages (score {best.similarity:.2f})"
            elif len(group) > 1 and group is cited:
                # a claim that joins facts from several cited passages
                joined = " ".join(p.text for p in group)
                if not missing_facts(asserted, joined):
                    quotes = [q for p in group
                              if (q := self._best_quote(claim.text, vecs, p, given))]
                    quotes = [q for q in quotes if q.similarity >= self.min_support - 0.1]
                    if len(quotes) > 1:
                        return quotes, ""
        return [], reason or "not supported by any retrieved passage"


def assemble(checked: Checked) -> tuple[str, list[Citation]]:
    """Answer text with ``[n]`` markers renumbered in order of first use, and the citations."""
    citations: list[Citation] = []
    index: dict[tuple[str, int, int], int] = {}
    out = []
    for text, supports in checked.sentences:
        nums = []
        for s in supports:
            key = (s.passage.chunk_id, s.start, s.end)
            if key not in index:
                index[key] = len(citations) + 1
                citations.append(Citation(index[key], s.passage.source, s.passage.chunk_id,
                                          s.start, s.end, s.quote))
            nums.append(index[key])
        marks = "".join(f"[{n}]" for n in nums)
        body = text.rstrip()
        end = body[-1] if body and body[-1] in ".!?" else "."
        body = body.rstrip(".!? ")
        out.append(f"{body} {marks}{end}")
    return " ".join(out), citations
