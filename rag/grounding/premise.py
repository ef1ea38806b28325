"""The premise check: does what a question takes for granted stand in the documents?

"Why is Tajikistan so eager to host large-scale U.S. military deployments?" assumes that it is;
the article says it is reluctant. A model asked the question tends to explain the assumption
("Tajikistan is eager to host ... [1]"), and a checker that only looks for the quote's names and
figures lets it through. So, before the answer is written, the question's assumption is stated
as the yes/no question it presupposes ("Is Tajikistan so eager to host ...?"), the documents'
closest sentences are found, and the language model is asked whether they say yes. A no makes the
answer a correction: what the documents say instead, quoted verbatim and cited.

Two question forms carry such an assumption here:
  * "Why AUX X?" presupposes "AUX X?" ("Why did Tajikistan choose Airbus ...?" -> "Did ...?");
  * a person placed at an organisation ("Almas Miriev of the Atlantic Council", "Georgetown
    scholar Emily Harding") presupposes "Is the person at the organisation?".
A question whose assumption holds (or cannot be checked) is answered as usual, so a true-premise
"why" whose reason the documents never give is still refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..embeddings import Embedder
from ..generation import LLM, BackendError
from ..types import Passage
from .quotes import QuoteIndexer, QuoteSpan

_AUX = (r"is|are|was|were|has|have|had|does|do|did|will|would|can|could|should|must|might|"
        r"may")
_WHY = re.compile(rf"^\W*(?:(?:so|and|but|then|briefly|exactly),?\s+)*why\s+(?P<aux>{_AUX})\s+"
                  r"(?P<rest>.+?)[\s?.!]*$", re.I | re.S)
_ACCORDING = re.compile(r",?\s*\b(?:according to|in the view of|as (?:stated|said) in)\s+(?:the|"
                        r"this)\s+(?:article|documents?|text|report|passages?|sources?)\b\s*,?",
                        re.I)
_NAME = r"(?:Dr\.?\s+|Prof\.?\s+)?[A-Z][\w’'.-]+(?:\s+[A-Z][\w’'.-]+)+"
_ORG = r"[A-Z][\w’'.-]+(?:\s+(?:of\s+|for\s+)?[A-Z][\w’'.-]+)*"
_INSTITUTION = re.compile(r"\b(?:University|College|School|Institute|Council|Center|Centre|"
                          r"Foundation|Agency|Bank|Ministry|Department|Commission|Committee|"
                          r"Association|Company|Corporation|Group|Office|Fund|Forum|Program|"
                          r"Programme|Party|Court|Academy|Society|Laboratory|Lab)\b")
_ROLE = (r"scholar|expert|specialist|fellow|analyst|professor|researcher|economist|historian|"
         r"official|director|adviser|advisor|spokesperson|spokesman|spokeswoman|diplomat|"
         r"ambassador|minister|engineer|journalist|reporter|correspondent")
# "Almas Miriev of the Atlantic Council": an organisation named with "the" or as an institution
_PERSON_OF = re.compile(rf"(?P<person>{_NAME}),?\s+(?P<prep>of|at|from)\s+(?P<org>(?:the\s+)?"
                        rf"{_ORG})")
# "Georgetown scholar Emily Harding"
_ORG_ROLE = re.compile(rf"(?P<org>{_ORG})\s+(?P<role>{_ROLE})\s+(?P<person>{_NAME})")
# the other half of a two-part question ("Why X, and where does she work?") assumes nothing
_SECOND_PART = re.compile(r",?\s+and\s+(?:what|where|who|whom|which|how|when|why)\b.*$",
                          re.I | re.S)

INSTRUCTION = ("You check a yes/no question against quotations from documents. Reply with one "
               "word: yes if the quotations say so, no if they say otherwise or something "
               "different.")


def presuppositions(question: str) -> list[str]:
    """The yes/no questions that ``question`` takes for granted (none for most questions),
    in the question's own words."""
    out = []
    if m := _WHY.match(_ACCORDING.sub("", question)):
        rest = _SECOND_PART.sub("", m["rest"]).strip(" ,")
        out.append(f"{m['aux'].capitalize()} {rest}?")
    for m in _PERSON_OF.finditer(question):
        if m["org"].startswith("the ") or _INSTITUTION.search(m["org"]):
            out.append(f"Is {m['person']} {m['prep']} {m['org']}?")
    for m in _ORG_ROLE.finditer(question):
        out.append(f"Is {m['person']} a {m['org']} {m['role']}?")
    return out


@dataclass(frozen=True)
class Verdict:
    """The premise ``question`` and the documents' closest sentences (passage, span), best
    first; ``holds`` is the model's reading of them."""

    question: str
    evidence: list[tuple[Passage, QuoteSpan]]
    holds: bool


class PremiseCheck:
    """Ask ``llm`` whether the closest sentences of the passages answer a presupposed yes/no
    question with yes."""

    def __init__(self, llm: LLM, embeddings: Embedder, quotes: QuoteIndexer,
                 sentences: int = 2) -> None:
        self.llm = llm
        self.embeddings = embeddings
        self.quotes = quotes
        self.sentences = sentences

    def evidence(self, premise: str, passages: list[Passage]) -> list[tuple[Passage, QuoteSpan]]:
        """The ``sentences`` whole sentences of ``passages`` closest to ``premise``, best
        first (each sentence once, whichever passage holds it)."""
        vec = self.embeddings.encode_query(premise)
        scored: list[tuple[float, Passage, QuoteSpan]] = []
        seen: set[tuple[str, int]] = set()
        for p in passages:
            index = self.quotes(p)
            rows = index.sentences()
            if not rows:
                continue
            sims = index.vectors[rows] @ vec
            for row, sim in zip(rows, np.asarray(sims).tolist(), strict=True):
                span = index.spans[row]
                key = (p.source, p.start + span.start)
                if key not in seen:
                    seen.add(key)
                    scored.append((float(sim), p, span))
        scored.sort(key=lambda t: -t[0])
        return [(p, s) for _, p, s in scored[:self.sentences]]

    def __call__(self, premise: str, passages: list[Passage]) -> Verdict | None:
        """The verdict on ``premise``; None when it cannot be checked (no sentence, or the
        model is unavailable): the question is then answered as usual."""
        evidence = self.evidence(premise, passages)
        if not evidence:
            return None
        quoted = " ".join(f"“{p.text[s.start:s.end]}”" for p, s in evidence)
        messages = [{"role": "system", "content": INSTRUCTION},
                    {"role": "user", "content": f"Quotations: {quoted}\nQuestion: {premise}\n"
                                                "Do the quotations say yes?"}]
        try:
            reply = "".join(self.llm.stream(messages, max_tokens=2))
        except BackendError:
            return None
        return Verdict(premise, evidence, not reply.strip().lower().startswith("no"))
