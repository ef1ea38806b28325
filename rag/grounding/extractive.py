"""The extractive answer: when the model's answer does not survive the checker (or the model says
the documents are silent) but a sentence of the context plainly answers the question, that
sentence is the answer, verbatim and labelled as such.

Two conditions, both needed (measured on the eval's dev split, README "This round"): the
sentence is among the ``top`` closest to the question and at least ``min_similarity`` close
(unanswerable questions about the corpus's topic reach ~0.5 with unrelated sentences), and the
language model, asked a strict yes/no question, says the sentence states the answer. A sentence
less close (down to ``floor``) needs a stricter test: the model copies the words of the sentence
that answer, and every content word it copies must stand in the sentence, one of them not in the
question. The 1.5B says yes to "The Republic of Tajikistan, landlocked …" for "What is the
capital of Tajikistan?", and, asked to copy the answer, writes "Dushanbe", which the sentence
does not hold (on 192 sentences of the dev split, README: 30 false yes of 55 against 7 of 28).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from ..generation import LLM
from ..text import content_words, fenced, is_instruction, known_word
from ..types import Passage
from .checker import Support
from .claims import terms
from .entailment import reply
from .quotes import QuoteIndexer

# a question part that refers back to another part ("Where does that person work?")
_REFERS = re.compile(r"\b(?:(?:that|this|these|those|the same) (?:person|people|one|expert|"
                     r"company|firm|man|woman|group|deal|country)|he|she|him|her|his|hers|they|"
                     r"them|their|it|its|each)\b", re.I)

INSTRUCTION = ("You decide whether a text answers a question. Reply with one word: yes if the "
               "text states the answer to the question, otherwise no.")
COPY = ("You find the answer to a question in a text. Copy the shortest words of the text that "
        "answer the question, exactly as written. If the text does not answer the question, "
        "reply NONE.")


class AnswersQuestion:
    """Asks the language model whether a text states the answer to a question."""

    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    def __call__(self, question: str, text: str) -> bool:
        """True only when the model says yes (no model, no extractive answer)."""
        said = reply(self.llm, INSTRUCTION, f"Text: {fenced(text)}\nQuestion: "
                                            f"{fenced(question)}\n"
                                            "Does the text answer the question?")
        return said is not None and said.startswith("yes")

    def copies(self, question: str, text: str) -> bool:
        """The stricter test: the model copies the words of ``text`` that answer ``question``;
        True when it copies some, every content word of them stands in ``text`` as written and
        one of them is not in the question ("NONE", a bare yes/no and words from elsewhere are
        no)."""
        said = reply(self.llm, COPY, f"Text: {fenced(text)}\nQuestion: {fenced(question)}\n"
                                     "Answer words:", max_tokens=24)
        if said is None or re.match(r"\W*(?:none|yes|no)\b", said):
            return False
        copied = content_words(said)
        have, asked = terms(text), terms(question)
        # the words themselves, not another ending or an alias: "Dushanbe" is not in a
        # sentence that says "Tajikistan", though ``known_word`` takes one for the other
        return bool(copied) and all(w in have for w in copied) and any(
            not known_word(w, asked) for w in copied)


def ranked(question_vector: np.ndarray, passages: list[Passage], quotes: QuoteIndexer,
           fits: Callable[[str], bool] = lambda sentence: True) -> list[Support]:
    """Every whole sentence of ``passages`` that ``fits`` and is no planted instruction, as a
    ``Support`` scored by its cosine to the question, closest first."""
    candidates: list[Support] = []
    for passage in passages:
        index = quotes(passage)
        rows = index.sentences()
        if not rows:
            continue
        sims = index.vectors[rows] @ question_vector
        for row, sim in zip(rows, sims, strict=True):
            span = index.spans[row]
            sentence = index.sentence_of(span)
            if not is_instruction(sentence) and fits(sentence):
                candidates.append(Support(passage, span, float(sim)))
    candidates.sort(key=lambda s: -s.score)
    return candidates


def extract(question: str, question_vector: np.ndarray, passages: list[Passage],
            quotes: QuoteIndexer, answers: Callable[[str, str], bool], top: int = 3,
            keep: int = 2, min_similarity: float = 0.57,
            fits: Callable[[str], bool] = lambda sentence: True,
            shown: Callable[[Support], str] = lambda support: support.sentence,
            strict: Callable[[str, str], bool] | None = None, floor: float = 0.45
            ) -> list[Support]:
    """Up to ``keep`` whole sentences of ``passages`` that answer ``question``: of the ``top``
    closest to it that ``fits`` (a 'When…?' question: sentences giving a time), those at least
    ``min_similarity`` close that ``answers`` accepts, and, with ``strict``, those at least
    ``floor`` close that ``strict`` accepts (``AnswersQuestion.copies``), closest first. Each
    is read as it would be shown (``shown``: a bare quotation after the sentence naming its
    speaker, for "Who argues …?")."""
    out: list[Support] = []
    lowest = min_similarity if strict is None else min(floor, min_similarity)
    for support in ranked(question_vector, passages, quotes, fits)[:top]:
        if support.score < lowest:
            break
        test = answers if support.score >= min_similarity else strict
        if test is not None and test(question, shown(support)):
            out.append(support)
            if len(out) == keep:
                break
    return out


def extract_each(parts: list[str], vectors: list[np.ndarray], passages: list[Passage],
                 quotes: QuoteIndexer, answers: Callable[[str, str], bool],
                 fits: Callable[[str, str], bool] = lambda part, sentence: True,
                 shown: Callable[[Support], str] = lambda support: support.sentence,
                 min_similarity: float = 0.57,
                 strict: Callable[[str, str], bool] | None = None, floor: float = 0.45
                 ) -> list[Support]:
    """For a question of several parts (``vectors``: their embeddings) that no sentence answers
    whole, the sentence that answers each part (``extract`` with ``keep=1``; ``fits(part,
    sentence)``), none twice (the same source sentence in two overlapping chunks neither): the
    verifier says no to the sentence that answers "Who argues …" when asked "Who argues …,
    and where does that person work?". A part that refers back ("that person", "he", "it")
    is left out: read alone, it asks about anyone."""
    out: list[Support] = []
    seen: set[tuple[str, int]] = set()
    for part, vector in zip(parts, vectors, strict=True):
        if _REFERS.search(part):
            continue  # "Where does that person work?": read alone, any person's workplace
        for s in extract(part, vector, passages, quotes, answers, keep=1,
                         min_similarity=min_similarity,
                         fits=lambda sentence, p=part: fits(p, sentence), shown=shown,
                         strict=strict, floor=floor):
            if (key := (s.passage.source, s.passage.start + s.span.sentence_start)) \
                    not in seen:
                seen.add(key)
                out.append(s)
    return out

