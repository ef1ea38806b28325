"""The checker: the model's word is never final.

For each claim (sentence) of the model's output, in this order:
  1. a sentence about the passages ("Passage [3].") or one that only echoes the question (or
     only restates a "why" question's assumption) is dropped;
  2. the passages it cites are tried, then every other retrieved passage (re-attribution): a
     passage can support the claim only if it contains every name and figure the claim asserts
     (a terse claim asserts its question's too);
  3. in such a passage, each candidate quote (``quotes.QuoteIndex``) whose sentence holds the
     claim's names and figures — except the question's topic names, which the passage holding
     them is enough for — is scored by ``SupportPolicy``; the best quote wins if it reaches
     ``min_support``;
  4. a claim joining facts of several cited passages keeps one quote of each;
  5. a claim its quote denies in the claim's own words (``polarity.denial``) is dropped, and
     so is one the model, asked (``entails``), finds the quote does not say.
What survives is numbered in order of first use by ``assemble``. Every threshold is in
``policy.SupportPolicy``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from ..embeddings import Embedder
from ..questions import bears, compares
from ..text import content_words, is_instruction, known_word
from ..types import Citation, Passage
from .claims import (
    Claim,
    asked_counts,
    denied,
    echoes,
    facts,
    is_meta,
    missing_facts,
    parse_claims,
    restates,
    terms,
    unfinished,
)
from .polarity import denial, overstated
from .policy import SupportPolicy
from .quotes import QuoteIndexer, QuoteSpan, is_bare_quote, sentence_before

# "These include …", "They …", "Such …": a sentence that only continues the one before it
_CONTINUES = re.compile(r"^\W*(?:these|those|they|such)\b", re.I)


@dataclass
class Support:
    """A verbatim quote of a passage (``span``, offsets into ``passage.text``) that supports a
    claim, and its support score."""

    passage: Passage
    span: QuoteSpan
    score: float

    @property
    def start(self) -> int:  # offsets in the source file
        return self.passage.start + self.span.start

    @property
    def end(self) -> int:
        return self.passage.start + self.span.end

    @property
    def quote(self) -> str:
        return self.passage.text[self.span.start:self.span.end]

    @property
    def sentence(self) -> str:
        """The source sentence the quote lies in."""
        return self.passage.text[self.span.sentence_start:self.span.sentence_end]

    def whole_sentence(self) -> Support:
        """The same support, quoting its whole sentence."""
        a, b = self.span.sentence_start, self.span.sentence_end
        return Support(self.passage, QuoteSpan(a, b, a, b), self.score)


@dataclass
class Checked:
    sentences: list[tuple[str, list[Support]]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (sentence, reason)
    # sentences whose quotes were found but do not say what they say (entailment check)
    contradicted: list[tuple[str, list[Support]]] = field(default_factory=list)

    def without(self, why: Callable[[str, list[Support]], str]) -> Checked:
        """These sentences less those ``why`` gives a reason against (its reason, or '' to keep
        the sentence), which are dropped with that reason."""
        keep: list[tuple[str, list[Support]]] = []
        gone: list[tuple[str, str]] = []
        for text, supports in self.sentences:
            if reason := why(text, supports):
                gone.append((text, reason))
            else:
                keep.append((text, supports))
        return Checked(keep, self.dropped + gone, self.contradicted)


class Checker:
    """Decides, sentence by sentence, what of the model's output the passages support."""

    def __init__(self, embeddings: Embedder, policy: SupportPolicy | None = None,
                 quotes: QuoteIndexer | None = None,
                 entails: Callable[[str, str], bool] | None = None) -> None:
        self.embeddings = embeddings
        self.policy = policy or SupportPolicy()
        self.quotes = quotes or QuoteIndexer(embeddings)
        self.entails = entails  # (claim, quoted sentences) -> says the same? (entailment.py)

    def check(self, output: str, passages: list[Passage], question: str = "",
              topic: Collection[str] = ()) -> Checked:
        """Keep the sentences of ``output`` that ``passages`` support. ``topic``: the words
        common across the corpus (``LexicalIndex.common_terms``); the question's names among
        them need only be in the supporting passage."""
        claims = parse_claims(output)
        result = Checked()
        if not claims or not passages:
            result.dropped = [(c.text, "no passages") for c in claims]
            return result
        pol = self.policy
        cvecs = self.embeddings.encode([c.text for c in claims])
        short = [i for i, c in enumerate(claims)
                 if len(content_words(c.text)) <= pol.short_claim_words]
        ctx = (self.embeddings.encode([f"{question} {claims[i].text}" for i in short])
               if question and short else None)
        # topic words are content words ('u.s.'), facts drop a final dot ('u.s')
        asked = frozenset(facts(question))
        given = asked & ({w.rstrip(".") for w in topic} | set(topic))
        unsupported = False  # the claim before this one was dropped for want of support
        for ci, claim in enumerate(claims):
            if unsupported and _CONTINUES.match(claim.text):
                # "… recommends concrete steps (unsupported). These include …": what "these"
                # are was not supported, so the list is not either
                result.dropped.append((claim.text, "continues a sentence that was dropped"))
                continue
            unsupported = False
            if is_meta(claim.text):
                result.dropped.append((claim.text, "says nothing about the documents' content"))
                continue
            if unfinished(claim.text):
                result.dropped.append((claim.text, "an unfinished sentence"))
                unsupported = True
                continue
            if question and echoes(claim.text, question, pol.echo_words):
                result.dropped.append((claim.text, "only repeats words of the question"))
                continue
            if question and restates(claim.text, question):
                result.dropped.append((claim.text, "only restates the question, gives no reason"))
                continue
            vecs = [cvecs[ci]]
            asserted = claim.text
            if ctx is not None and ci in short:
                # a terse answer ("1992") asserts its question too: its names must be supported
                vecs.append(ctx[short.index(ci)])
                asserted = f"{question} {claim.text}"
            # a correction may name the question's false premise ("..., not $5 billion"): the
            # question's names and figures need no support in a sentence that denies something
            excused = asked & denied(claim.text) | asked_counts(question)
            supports, reason = self._support(claim, asserted, vecs, passages, given, excused)
            if supports and (why := gainsaid(claim.text, " ".join(s.sentence
                                                                  for s in supports))):
                result.contradicted.append((claim.text, supports))
                result.dropped.append((claim.text, why))
                unsupported = True
                continue
            if supports and self.entails is not None and supports[0].score < pol.verify_below:
                quoted = " ".join(self._read_with_antecedent(claim.text, s) for s in supports)
                if not self.entails(claim.text, quoted):
                    result.contradicted.append((claim.text, supports))
                    result.dropped.append((claim.text, "the quote does not say this "
                                                       "(entailment check)"))
                    unsupported = True
                    continue
            if supports:
                result.sentences.append((claim.text, supports))
            else:
                result.dropped.append((claim.text, reason))
                unsupported = True
        return result

    def _read_with_antecedent(self, claim: str, support: Support) -> str:
        """The quote's sentence as the entailment check reads it: after the sentence before it
        when the claim names what the sentence only refers to: a topic name of the question,
        which need not stand in the quote ("The bridge's engineer was Oduya" on "Its chief
        engineer was Margit Oduya", the bridge being named one sentence earlier)."""
        sentence = support.sentence
        if not missing_facts(claim, sentence):
            return sentence
        previous = self.quotes(support.passage).previous_sentence(support.span)
        return f"{previous} {sentence}".strip()

    def best_quote(self, claim: str, vecs: list[np.ndarray], passage: Passage,
                   given: frozenset[str] = frozenset(),
                   within: QuoteSpan | None = None) -> Support | None:
        """The claim's best quote in ``passage`` (in the sentence of ``within``, if given): the
        claim's names and figures must all stand in the quote's sentence, except those the
        question supplied (``given``)."""
        index = self.quotes(passage)
        if not index.spans:
            return None
        pol = self.policy
        sims = index.vectors @ vecs[0]
        # a terse answer borrows its question's meaning ("1992 [1]." for "Since when…?"), but
        # only where it shares a word with the quote: "The moon is made of cheese [1]." after a
        # question about Boeing must not ride on the question's similarity to a Boeing quote
        in_context = (index.vectors @ vecs[1] - pol.context_penalty if len(vecs) > 1
                      else None)
        claim_words = set(content_words(claim))
        best: Support | None = None
        for i, span in enumerate(index.spans):
            if within is not None and span.sentence_start != within.sentence_start:
                continue
            sentence = index.sentence_of(span)
            if missing_facts(claim, sentence) - given or is_instruction(sentence):
                continue  # an instruction planted in a document is no evidence of anything
            quote = index.text(span)
            have = terms(quote)
            overlap = (sum(known_word(w, have) for w in claim_words) / len(claim_words)
                       if claim_words else 0.0)
            sim = float(sims[i])
            if in_context is not None and overlap > 0:
                sim = max(sim, float(in_context[i]))
            score = sim + pol.overlap_weight * overlap
            if not missing_facts(claim, quote):
                score += pol.fact_bonus
            if best is None or score > best.score:
                best = Support(passage, span, score)
        return best

    def _support(self, claim: Claim, asserted: str, vecs: list[np.ndarray],
                 passages: list[Passage], given: frozenset[str],
                 excused: frozenset[str] = frozenset()) -> tuple[list[Support], str]:
        """Supporting quotes from the cited passages; failing that, from any retrieved one
        (re-attribution); failing that, none and the reason."""
        pol = self.policy
        cited = [passages[n - 1] for n in claim.cited if 1 <= n <= len(passages)]
        others = [p for p in passages if p not in cited]
        reason = ""
        fewest: set[str] | None = None  # the fewest names and figures a passage lacks
        for group in (cited, others):
            candidates = []
            for p in group:
                miss = missing_facts(asserted, p.text) - excused
                if miss:
                    fewest = miss if fewest is None or len(miss) < len(fewest) else fewest
                    continue
                best = self.best_quote(claim.text, vecs, p, given | excused)
                if best is not None:
                    candidates.append(best)
                else:
                    fewest = set()  # in the passage, never all in one sentence
            if candidates:
                best = max(candidates, key=lambda s: s.score)
                if best.score >= pol.min_support:
                    return [best], ""
                reason = reason or f"too far from the passages (score {best.score:.2f})"
            elif len(group) > 1 and group is cited:
                # a claim that joins facts from several cited passages
                joined = " ".join(p.text for p in group)
                if not missing_facts(asserted, joined) - excused:
                    quotes = [q for p in group if (q := self.best_quote(claim.text, vecs, p,
                                                                         given | excused))]
                    quotes = [q for q in quotes
                              if q.score >= pol.min_support - pol.multi_passage_slack]
                    if len(quotes) > 1:
                        return quotes, ""
        if joined := self._adjacent(claim.text, asserted, vecs, passages, given | excused):
            return joined, ""
        if not reason and fewest == set():
            reason = "its names and figures are never all in one sentence of a passage"
        elif not reason and fewest:
            reason = (f"no passage holds all its names and figures (the closest lacks "
                      f"{', '.join(sorted(fewest))})")
        return [], reason or "not supported by any retrieved passage"

    def _adjacent(self, claim: str, asserted: str, vecs: list[np.ndarray],
                  passages: list[Passage], allowed: frozenset[str]) -> list[Support]:
        """Quotes of two sentences that read as one: a bare quotation ("“… its relationship
        with Russia.”") and the sentence right before it in the source, which names its
        speaker ("… argues Dr. Almas Miriev, a Central Asia specialist at Georgetown
        University."), in one passage or across a chunk boundary (``quotes.sentence_before``),
        however the model cited them. They are taken together when neither holds every name
        and figure of the claim and both do; each quote scores at least ``min_support -
        multi_passage_slack``. Only a bare quotation: a sentence that names its own speaker
        ("It would cut the town off, the mayor warned.") or facts joined from sentences that do
        not read together ("Coca-Cola" here, "U.S. national security" there) would make a claim
        neither says."""
        pol = self.policy
        need = missing_facts(asserted, "") - allowed
        if not need:
            return []
        for passage in passages:
            index = self.quotes(passage)
            for row in index.sentences():
                span = index.spans[row]
                words = index.sentence_of(span)
                if not is_bare_quote(words):
                    continue
                found = sentence_before(passage, span, passages, self.quotes)
                if found is None:
                    continue
                where, before = found
                speaker = where.text[before.sentence_start:before.sentence_end]
                lack_a = missing_facts(asserted, speaker) & need
                lack_b = missing_facts(asserted, words) & need
                if not lack_a or not lack_b or lack_a & lack_b:
                    continue  # one sentence holds them all (read alone), or neither holds one
                pair = [self.best_quote(claim, vecs, where, allowed | lack_a, before),
                        self.best_quote(claim, vecs, passage, allowed | lack_b, span)]
                if all(q is not None and q.score >= pol.min_support - pol.multi_passage_slack
                       for q in pair):
                    return [q for q in pair if q is not None]
        return []


def gainsaid(claim: str, quoted: str) -> str:
    """Why the quoted sentences, read without a model, do not say what ``claim`` says, or '':
    they say the opposite ("The outlook is more certain" on "… considerably more uncertain",
    which the 1.5B, asked, takes for agreement); they only forecast the outcome it states
    ("expected to be completed" on "will likely see … the gradual rollout"); or it compares
    and they do not ("The U.S. footprint is significantly larger than China's")."""
    if said := denial(claim, quoted):
        return f"the quote says the opposite (“{said}”)"
    if word := overstated(claim, quoted):
        return f"the quote forecasts, it does not say “{word}”"
    if compares(claim) and not bears("rank", quoted):
        return "a comparison the quote does not make"
    return ""


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
