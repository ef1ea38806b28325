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
from dataclasses import dataclass, field

import numpy as np

from .embeddings import LocalEmbeddings
from .text import STOPWORDS, content_words, count_tokens, normalize, sentence_spans, words
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
        for m in _MARKER.finditer(sent):
            raw = m.group(1) or m.group(2) or m.group(3)
            nums.extend(_expand(raw))
        text = _MARKER.sub("", sent).strip()
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
        token = m.group(0)
        lower = normalize(token).rstrip(".").removesuffix("'s")
        is_first = m.start() == len(claim) - len(claim.lstrip())
        if lower in STOPWORDS or lower in _NUMBER_WORDS or len(lower) < 2:
            continue
        if is_first and lower.isalpha() and count_tokens(" " + token) == 1:
            # a capitalised sentence opener that is one cl100k token is most likely an
            # ordinary word ("According", "Overall"); rarer words and names stay facts
            continue
        out.add(lower)
    return out


def _terms(text: str) -> set[str]:
    ws = words(text)
    return {_NUMBER_WORDS.get(w, w) for w in ws} | set(ws) | {w.rstrip(".") for w in ws}


def missing_facts(claim: str, evidence: str) -> set[str]:
    """The claim's numbers and names that the evidence does not contain (a name may differ in
    its ending: 'Tajik' is found in 'Tajikistan')."""
    have = _terms(evidence)
    return {f for f in facts(claim)
            if f not in have and not any(len(f) >= 4 and len(h) >= 4
                                         and (h.startswith(f) or f.startswith(h)) for h in have)}


_SHORT = 6  # claims with at most this many content words are also read with their question
_CONTEXT_PENALTY = 0.05


class Checker:
    def __init__(self, embeddings: LocalEmbeddings, min_support: float = 0.45) -> None:
        self.embeddings = embeddings
        self.min_support = min_support

    def check(self, output: str, passages: list[Passage], question: str = "") -> Checked:
        """Keep the sentences of ``output`` that the passages support. A terse claim
        ("$3.2 billion") is compared in the context of the ``question`` it answers."""
        claims = parse_claims(output)
        result = Checked()
        if not claims or not passages:
            result.dropped = [(c.text, "no passages") for c in claims]
            return result
        spans = [(p, sentence_spans(p.text)) for p in passages]
        quotes = [(p, a, b) for p, ss in spans for a, b in ss]
        qvecs = self.embeddings.encode([p.text[a:b] for p, a, b in quotes])
        cvecs = self.embeddings.encode([c.text for c in claims])
        sims = cvecs @ qvecs.T  # normalised: cosine
        short = [i for i, c in enumerate(claims) if len(content_words(c.text)) <= _SHORT]
        if question and short:
            ctx = self.embeddings.encode([f"{question} {claims[i].text}" for i in short])
            sims[short] = np.maximum(sims[short], ctx @ qvecs.T - _CONTEXT_PENALTY)
        for ci, claim in enumerate(claims):
            support, reason = self._support(claim, passages, quotes, sims[ci])
            if support is None:
                result.dropped.append((claim.text, reason))
            else:
                result.sentences.append((claim.text, [support]))
        return result

    def _support(self, claim: Claim, passages: list[Passage], quotes: list, sims: np.ndarray
                 ) -> tuple[Support | None, str]:
        cited = [passages[n - 1] for n in claim.cited if 1 <= n <= len(passages)]
        others = [p for p in passages if p not in cited]
        reason = ""
        for group in (cited, others):
            best: Support | None = None
            for p in group:
                miss = missing_facts(claim.text, p.text)
                if miss:
                    reason = reason or f"{', '.join(sorted(miss))} not in the cited passages"
                    continue
                for qi, (qp, a, b) in enumerate(quotes):
                    if qp is not p:
                        continue
                    score = float(sims[qi])
                    # prefer the sentence that carries the claim's facts
                    if not missing_facts(claim.text, p.text[a:b]):
                        score += 0.05
                    if best is None or score > best.similarity:
                        best = Support(p, p.start + a, p.start + b, p.text[a:b], score)
            if best is not None and best.similarity >= self.min_support:
                return best, ""
            if best is not None:
                reason = reason or f"too far from the passages (similarity {best.similarity:.2f})"
        return None, reason or "not supported by any retrieved passage"


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
