"""The entailment judge: does a passage support a claim?

No NLI model ships offline here, so the judge combines what is available, cheapest first:
  1. grounding: every number and proper name of the claim occurs in the passage;
  2. polarity: the claim and its closest passage sentence agree on negation;
  3. meaning: embedding cosine between the claim and its closest sentence or clause, plus
     word overlap;
  4. optionally, an LLM asked a strict yes/no question, for claims the first three let through
     (the embedded model by default, or an OpenAI-compatible one when configured).
Its balanced accuracy on the hand-labelled ``judge_labels.jsonl`` is reported with every eval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag.embeddings import LocalEmbeddings
from rag.generation import LLM
from rag.text import clause_spans, content_words, known_word, sentence_spans, words
from rag.verify import missing_facts

_NEGATION = re.compile(r"\b(not|no|never|none|nor|cannot|without|neither)\b|n't\b", re.I)
_JUDGE_PROMPT = """Passage: {passage}

Claim: {claim}

Does the passage state the claim, with the same names, numbers and meaning? \
Answer only yes or no."""


@dataclass
class Verdict:
    supported: bool
    score: float
    reason: str


class Judge:
    def __init__(self, embeddings: LocalEmbeddings, llm: LLM | None = None,
                 threshold: float = 0.62) -> None:
        self.embeddings = embeddings
        self.llm = llm
        self.threshold = threshold
        self._cache: dict[tuple[str, str], Verdict] = {}

    @property
    def name(self) -> str:
        return "facts+polarity+embedding" + (f"+llm({self.llm.name})" if self.llm else "")

    def __call__(self, claim: str, passage: str) -> Verdict:
        key = (claim, passage)
        if key not in self._cache:
            self._cache[key] = self._judge(claim, passage)
        return self._cache[key]

    def _judge(self, claim: str, passage: str) -> Verdict:
        miss = missing_facts(claim, passage)
        if miss:
            return Verdict(False, 0.0, f"not in passage: {', '.join(sorted(miss))}")
        spans = []
        for a, b in sentence_spans(passage):
            spans.append((a, b, a, b))
            spans.extend((x, y, a, b) for x, y in clause_spans(passage, a, b))
        if not spans:
            return Verdict(False, 0.0, "empty passage")
        vecs = self.embeddings.encode([claim] + [passage[a:b] for a, b, _, _ in spans])
        sims = vecs[1:] @ vecs[0]
        claim_words = set(content_words(claim))
        scores = []
        for (a, b, _, _), sim in zip(spans, sims, strict=True):
            have = set(words(passage[a:b]))
            overlap = (sum(known_word(w, have) for w in claim_words) / len(claim_words)
                       if claim_words else 0.0)
            scores.append(float(sim) + 0.15 * overlap)
        i = int(np.argmax(scores))
        a, b, _, _ = spans[i]
        if bool(_NEGATION.search(claim)) != bool(_NEGATION.search(passage[a:b])):
            return Verdict(False, scores[i], "negation differs")
        if scores[i] < self.threshold:
            return Verdict(False, scores[i], f"meaning too far ({scores[i]:.2f})")
        if self.llm is not None:
            prompt = _JUDGE_PROMPT.format(passage=passage, claim=claim)
            reply = "".join(self.llm.stream([{"role": "user", "content": prompt}], 3))
            if not reply.strip().lower().startswith("yes"):
                return Verdict(False, scores[i], f"llm said {reply.strip()[:10]!r}")
        return Verdict(True, scores[i], "supported")
