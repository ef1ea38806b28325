"""The premise check: does what a question takes for granted stand in the documents?

"Why is Tajikistan so eager to host large-scale U.S. military deployments?" assumes that it is;
the article says it is reluctant. A model asked the question tends to explain the assumption
("Tajikistan is eager to host ... [1]"), and a checker that only looks for the quote's names and
figures lets it through. So, before the answer is written, the question's assumption is stated
as the yes/no question it presupposes ("Is Tajikistan so eager to host ...?"), the documents'
closest sentences are found, and the language model is asked whether they say yes. A no makes the
answer a correction: what the documents say instead, quoted verbatim and cited.

Six question forms carry such an assumption here:
  * an assumption stated before the question ("Given the article's three-year horizon, what
    …?", "Since X, …?", "When X, …?") presupposes "Is it true that X?";
  * "Why AUX X?" presupposes "AUX X?" ("Why did Tajikistan choose Airbus ...?" -> "Did ...?");
  * "How AUX X?" too ("How did the Taliban's loss of power open the door ...?"), checked by
    the readings below only, never by the model;
  * a person placed at an organisation ("Almas Miriev of the Atlantic Council", "Georgetown
    scholar Emily Harding") presupposes "Is the person at the organisation?", and an office
    before a name ("Prime Minister Emomali Rahmon") "Is the person the Prime Minister?";
  * "What did <person> say about X?" presupposes that the person said what the documents say
    about X (checked only for misattribution, never by the model).
Before the model is asked, two readings that need no model: a claim credited to one person whose
closest sentence the documents attribute to another (misattribution), and a closest sentence
that denies the claim in its own words ("cannot fundamentally alter", ``polarity.denial``).
A question whose assumption holds (or cannot be checked) is answered as usual, so a true-premise
"why" whose reason the documents never give is still refused.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from ..embeddings import Embedder
from ..generation import LLM
from ..questions import stated_assumption
from ..text import STOPWORDS, content_words, fenced, known_word, normalize
from ..types import Passage
from .checker import Support
from .claims import DURATION, durations, facts, missing_facts, terms
from .entailment import reply
from .polarity import denial
from .quotes import SENTENCE_GAP, QuoteIndexer, QuoteSpan

_AUX = (r"is|are|was|were|has|have|had|does|do|did|will|would|can|could|should|must|might|"
        r"may")


def _opening(word: str) -> re.Pattern[str]:
    """'<word> AUX rest?', after leading 'so', 'and', 'briefly' …"""
    return re.compile(rf"^\W*(?:(?:so|and|but|then|briefly|exactly),?\s+)*{word}\s+"
                      rf"(?P<aux>{_AUX})\s+(?P<rest>.+?)[\s?.!]*$", re.I | re.S)


_WHY = _opening("why")
# "What explains the six years Washington has spent …?": a why question about a noun phrase
_EXPLAINS = re.compile(r"^\W*what(?:\s+|['’]s\s+)(?:explains|accounts\s+for|(?:is|was)\s+behind|"
                       r"lies\s+behind|behind|drove|drives|led\s+to|caused|"
                       r"(?:(?:is|was|are|were)\s+)?the\s+(?:reasons?|rationale|motives?)\s+"
                       r"(?:behind|for))\s+(?P<rest>.+?)[\s?.!]*$", re.I | re.S)
# "How did the Taliban's loss of power open the door …?" presupposes "Did … open the door?"
_HOW = _opening("how")
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
# "Prime Minister Emomali Rahmon", "President Rahmon": an office before a name
_TITLED = re.compile(r"\b(?P<title>(?:Prime\s+|Vice\s+|Foreign\s+|Defen[cs]e\s+)?Minister|"
                     r"(?:Vice\s+)?President|Senator|Governor|Ambassador|King|Queen|Mayor|"
                     r"Chancellor|Premier|Emir|Sultan)\s+"
                     r"(?P<person>[A-Z][\w’'.-]+(?:\s+[A-Z][\w’'.-]+)*)")
# "What did Emily Harding say about transit routes?"
_SAID_ABOUT = re.compile(rf"^\W*(?i:what)\s+(?i:did|does|has|do)\s+(?P<person>{_NAME})\s+"
                         r"(?i:say|said|note|argue|write|warn|think|believe)\s+"
                         r"(?i:about|on|of|regarding)\s+(?P<topic>.+?)[\s?.!]*$", re.S)
# who speaks in a sentence: "argues Dr. Almas Miriev", "Dr. Emily Harding, a fellow ..., notes"
_SAY = (r"(?:says?|said|notes?|noted|argues?|argued|warns?|warned|writes?|wrote|told|tells|"
        r"explains?|explained|adds?|added|states?|stated|insists?|insisted|observes?|observed|"
        r"contends?|contended|cautions?|cautioned|according to)")
_SPEAKER = re.compile(rf"\b{_SAY}\s+(?P<a>{_NAME})|"
                      rf"(?P<b>{_NAME})(?:,[^,“”\"]{{0,120}},)?\s+{_SAY}\b")
# a figure with its unit ("1 GW", "$3.2 billion", "10 years"), for the correction's wording
_UNIT = (r"(?:\s*(?:%|percent|billion|million|thousand|years?|months?|"
         r"(?!(?:of|in|to|on|at|by|and|or|the|a|an|for|as|is|was)\b)[A-Za-z]{1,3}\b))?")
_FIGURE = re.compile(rf"\$?\d(?:[\d,.]*\d)?{_UNIT}")
_TITLE = re.compile(r"^(?:Dr\.?|Prof\.?)\s+")
# the other half of a two-part question ("Why X, and where does she work?") assumes nothing
_SECOND_PART = re.compile(r",?\s+and\s+(?:what|where|who|whom|which|how|when|why)\b.*$",
                          re.I | re.S)

def _parts(name: str) -> set[str]:
    """The facts a written name asserts, part by part ("Coca-Cola's" -> coca, cola; "Bank of
    Skye" -> bank, skye)."""
    return {w for x in re.split(r"[-–\s]+", name)
            if (w := normalize(x).rstrip(".").removesuffix("'s")) and w not in STOPWORDS}


# _other_subject: words of the question's frame, not of what it claims
_FRAMING = frozenset("author article piece writer text documents document consider considers "
                     "considered call calls called describe describes described see sees view "
                     "views regard regards say says said think thinks believe believes "
                     "according".split())
SUBJECT_SHARE = 0.6
SUBJECT_SENTENCES = 2

INSTRUCTION = ("You check a yes/no question against quotations from documents. Reply with one "
               "word: yes if the quotations say so, no if they say otherwise or something "
               "different.")


@dataclass(frozen=True)
class Premise:
    """What a question takes for granted, as the yes/no question it presupposes. An
    affiliation ("Almas Miriev of the Atlantic Council") also keeps the person and the
    organisation: it is checked by reading the person's sentences, not by the model."""

    question: str
    person: str = ""
    org: str = ""
    # False: never put to the model; then only the misattribution reading, or, with ``lexical``,
    # also a figure the documents give otherwise and a denial in the premise's own words
    ask_model: bool = True
    lexical: bool = False
    # "What did <speaker> say about <topic>?": also checked for whether they are quoted on it
    speaker: str = ""
    topic: str = ""


# a claim that gives words to someone: "Boeing described the deal as …", "According to Dr.
# Harding, …", "Miriev argues that …"
_CREDITED = re.compile(rf"^\W*(?:(?i:according)\s+to\s+(?P<a>{_ORG})\s*,|"
                       rf"(?P<b>{_ORG})(?:\s+itself)?"
                       rf"(?:,[^,“”\"]{{0,120}},)?\s+(?:(?:has|have|had)\s+)?(?:{_SAY}|"
                       r"describe[sd]?|call(?:s|ed)?(?!\s+for\b)|claims?|claimed|"
                       r"characteri[sz]e[sd]?)\b)")
# (not "believes", "thinks", "sees": the documents' author gives a party its views — "Washington
# recognized a strategic void" — without quoting it)


# "How did Boeing itself describe the deal?", "What does Miriev think of …?"
_ASKED_SPEAKER = re.compile(rf"^\W*(?i:how|what)\s+(?i:did|does|do|has|have)\s+(?P<name>{_ORG})"
                            r"(?:\s+itself|\s+themselves)?\s+(?i:say|said|describe|call|argue|"
                            r"note|warn|write|characteri[sz]e)\b")


def asked_speaker(question: str) -> str:
    """The party a question asks the words or views of ("How did Boeing describe …?" ->
    "Boeing"), or ''."""
    m = _ASKED_SPEAKER.match(question)
    return "" if m is None or normalize(m["name"].split()[0]) in STOPWORDS else m["name"]


def credits(claim: str) -> str:
    """The name a claim gives its words to ("Boeing described …" -> "Boeing"), or ''; not the
    documents themselves ("The article says …")."""
    if not (m := _CREDITED.match(claim)):
        return ""
    name = m["a"] or m["b"]
    return "" if normalize(_TITLE.sub("", name).split()[0]) in STOPWORDS else name


def mentions(surname: str, text: str) -> bool:
    """Whether ``text`` names the person of that surname (a word of its own: "Li" is not in
    "Libya")."""
    return bool(re.search(rf"\b{re.escape(surname)}\b", text))


def surname_of(name: str) -> str:
    """"Dr. Emily Harding" -> "Harding"."""
    return _TITLE.sub("", name).split()[-1]


def presuppositions(question: str) -> list[Premise]:
    """The assumptions of ``question`` (none for most questions), in its own words."""
    out = []
    if m := _SAID_ABOUT.match(question):
        out.append(Premise(f"Did {m['person']} say anything about {m['topic']}?",
                           ask_model=False, speaker=m["person"], topic=m["topic"]))
    if stated := stated_assumption(question):
        claim, noun_phrase = stated
        first, _, after = claim.partition(" ")
        if normalize(first) in STOPWORDS:  # "The article treats …", not "Washington …"
            claim = f"{first.lower()} {after}"
        out.append(Premise(f"Do the documents speak of {claim}?" if noun_phrase
                           else f"Is it true that {claim}?"))
    if m := _WHY.match(_ACCORDING.sub("", question)):
        rest = _SECOND_PART.sub("", m["rest"]).strip(" ,")
        out.append(Premise(f"{m['aux'].capitalize()} {rest}?"))
    elif m := _EXPLAINS.match(_ACCORDING.sub("", question)):
        # read only, as for "how": the model's no was measured on "why" questions alone
        rest = _SECOND_PART.sub("", m["rest"]).strip(" ,")
        out.append(Premise(f"Do the documents speak of {rest}?", ask_model=False, lexical=True))
    elif m := _HOW.match(_ACCORDING.sub("", question)):
        # read only, never put to the model: most "how" questions assume what is true, and
        # the model's no was measured on "why" questions alone
        rest = _SECOND_PART.sub("", m["rest"]).strip(" ,")
        out.append(Premise(f"{m['aux'].capitalize()} {rest}?", ask_model=False, lexical=True))
    for m in _PERSON_OF.finditer(question):
        if m["org"].startswith("the ") or _INSTITUTION.search(m["org"]):
            out.append(Premise(f"Is {m['person']} {m['prep']} {m['org']}?", m["person"],
                               m["org"]))
    for m in _ORG_ROLE.finditer(question):
        out.append(Premise(f"Is {m['person']} a {m['org']} {m['role']}?", m["person"],
                           m["org"]))
    for m in _TITLED.finditer(question):  # read like an affiliation: the office by the name
        title = re.sub(r"\s+", " ", m["title"])
        out.append(Premise(f"Is {m['person']} the {title}?", m["person"], title))
    return out


@dataclass(frozen=True)
class Verdict:
    """The verdict on ``premise``: the documents' sentences it was judged on (passage, span),
    best first, and whether they bear it out."""

    premise: Premise
    evidence: list[tuple[Passage, QuoteSpan]]
    holds: bool
    why: str = ""  # what the verdict rests on, when it is not the model's word


class PremiseCheck:
    """Whether the passages bear out a question's assumption:
      * an assumption naming something the corpus never mentions ('Airbus', '2015') does not
        hold (the caller passes those ``unknown`` terms);
      * an affiliation holds when a sentence naming the person also names the organisation;
      * otherwise the model (``llm``) is asked whether the closest sentences say yes.
    """

    def __init__(self, llm: LLM, embeddings: Embedder, quotes: QuoteIndexer,
                 sentences: int = 2, overlap_weight: float = 0.3,
                 min_topic_similarity: float = 0.25) -> None:
        self.llm = llm
        self.min_topic_similarity = min_topic_similarity
        self.embeddings = embeddings
        self.quotes = quotes
        self.sentences = sentences
        self.overlap_weight = overlap_weight

    def _sentences(self, passages: list[Passage]
                   ) -> list[tuple[Passage, QuoteSpan, np.ndarray]]:
        """Every whole sentence of ``passages`` once (passage, span, its embedding)."""
        out, seen = [], set()
        for p in passages:
            index = self.quotes(p)
            for row in index.sentences():
                span = index.spans[row]
                if (key := (p.source, p.start + span.start)) not in seen:
                    seen.add(key)
                    out.append((p, span, index.vectors[row]))
        return out

    def speakers(self, passages: list[Passage]
                 ) -> dict[tuple[str, int], tuple[str, tuple[Passage, QuoteSpan]]]:
        """Who speaks in each quoting sentence: (source, start) -> (surname, the sentence
        naming them). A sentence that opens with a quotation mark right after a sentence with a
        speaker ("“While the U.S. can offer ...”") is that speaker's too."""
        out: dict[tuple[str, int], tuple[str, tuple[Passage, QuoteSpan]]] = {}
        last = None  # (surname, naming sentence), end offset of the speaker's last sentence
        for p, span, _ in sorted(self._sentences(passages),
                                 key=lambda t: (t[0].source, t[0].start + t[1].start)):
            text, start = p.text[span.start:span.end], p.start + span.start
            if m := _SPEAKER.search(text):
                last = (surname_of(m["a"] or m["b"]), (p, span)), start + len(text)
            elif last and text[:1] in "“\"" and start - last[1] <= 3:
                last = last[0], start + len(text)
            else:
                last = None
                continue
            out[(p.source, start)] = last[0]
        return out

    def miscredited(self, claim: str, supports: list[Support], passages: list[Passage]
                    ) -> str:
        """The name ``claim`` gives its words to when none of its quotes is theirs ("Boeing
        described the deal as a strategic move" on the author's own sentence), else ''."""
        if not (name := credits(claim)):
            return ""
        speaking = self.speakers(passages)
        return "" if any(self.says(name, s, speaking) for s in supports) else name

    @staticmethod
    def says(name: str, support: Support,
             speaking: dict[tuple[str, int], tuple[str, tuple[Passage, QuoteSpan]]]) -> bool:
        """Whether the sentence of ``support`` is the words of ``name`` (``speaking``: the
        passages' ``speakers``)."""
        who = surname_of(name)
        p, span = support.passage, support.span
        found = speaking.get((p.source, p.start + span.sentence_start))
        return found is not None and found[0] == who or \
            bool(_SPEAKER.search(support.sentence)) and mentions(who, support.sentence)

    def speaker_of(self, phrases: list[str], passages: list[Passage]
                   ) -> tuple[str, list[tuple[Passage, QuoteSpan]]] | None:
        """Who says the words a question quotes ("the person the article quotes on
        'strategic calculus'"): the speaker's surname and the sentences to show, the one
        naming them first, then the one holding the words if it is another; None when no
        quoted phrase stands in a speaker's sentence."""
        speaking = self.speakers(passages)
        wanted = [normalize(phrase) for phrase in phrases]
        for p, span, _ in self._sentences(passages):
            if not any(w in normalize(p.text[span.start:span.end]) for w in wanted):
                continue
            if found := speaking.get((p.source, p.start + span.start)):
                who, naming = found
                return who, [naming] if naming == (p, span) else [naming, (p, span)]
        return None

    def _misattributed(self, premise: Premise, passages: list[Passage]) -> Verdict | None:
        """A claim the question credits to one speaker whose closest sentence another speaker
        says ("Why does Miriev warn ...?" for Harding's words): does not hold."""
        speaking = self.speakers(passages)
        named = {who for who, _ in speaking.values()}
        credited = [m[0] for m in re.finditer(_NAME, premise.question) if surname_of(m[0]) in named]
        if not credited:
            return None
        claim = premise.question
        for name in credited:
            claim = claim.replace(name, " ")
        best = self.evidence(claim, passages)[:1]
        if not best:
            return None
        p, span = best[0]
        who, naming = speaking.get((p.source, p.start + span.start), ("", best[0]))
        if not who or who in {surname_of(n) for n in credited}:
            return None
        evidence = best if naming == best[0] else best + [naming]  # the naming sentence too
        return Verdict(premise, evidence, False, f"they attribute this to {who}")

    def _quoted_on(self, premise: Premise, passages: list[Passage]) -> Verdict | None:
        """"What did Emily Harding say about the Boeing deal?" where the documents quote her
        only on other things: does not hold, with no evidence (there is nothing of hers on it to
        show). None when a sentence of hers is about the topic (it holds one of its content
        words, or is at least ``min_topic_similarity`` close to it), or when nobody of that name
        is quoted here."""
        surname = surname_of(premise.speaker)
        speaking = self.speakers(passages)
        theirs = [(terms(p.text[s.start:s.end]), vector)
                  for p, s, vector in self._sentences(passages)
                  if speaking.get((p.source, p.start + s.start), ("",))[0] == surname]
        if not theirs:
            return None
        asked = content_words(premise.topic)
        # a name the topic gives that few passages hold ("the Perplexity AI collaboration", not
        # "Tajikistan" in a corpus about it) must stand in their words: "risks" alone does not
        # make Harding's warning about one leader a view on Perplexity AI's data security
        held = [terms(p.text) for p in passages]
        named = [f for f in facts(premise.topic)
                 if sum(known_word(f, have) for have in held) < len(passages) / 2]
        if any(all(known_word(f, have) for f in named)
               and any(known_word(w, have) for w in asked) for have, _ in theirs):
            return None
        vec = self.embeddings.encode_query(premise.topic)
        if not named and max(float(vector @ vec) for _, vector in theirs) >= \
                self.min_topic_similarity:
            return None
        return Verdict(premise, [], False,
                       f"they don't quote {premise.speaker} on {premise.topic}")

    def evidence(self, premise: str, passages: list[Passage]) -> list[tuple[Passage, QuoteSpan]]:
        """The ``sentences`` sentences of ``passages`` closest to ``premise``, best first:
        cosine plus ``overlap_weight`` times the share of the premise's content words they
        hold (a sentence that says the opposite in the same words ranks high)."""
        vec = self.embeddings.encode_query(premise)
        asked = set(content_words(premise))
        scored = []
        for p, span, vector in self._sentences(passages):
            sim = float(vector @ vec)
            have = terms(p.text[span.start:span.end])
            overlap = sum(known_word(w, have) for w in asked) / len(asked) if asked else 0.0
            scored.append((sim + self.overlap_weight * overlap, p, span))
        scored.sort(key=lambda t: -t[0])
        return [(p, s) for _, p, s in scored[:self.sentences]]

    def __call__(self, premise: Premise, passages: list[Passage],
                 unknown: Collection[str] = ()) -> Verdict | None:
        """The verdict on ``premise``; None when it cannot be checked (no sentence, the person
        named nowhere, or the model unavailable): the question is then answered as usual."""
        if premise.person:
            return self._affiliation(premise, passages)
        verdict = self._misattributed(premise, passages)
        if verdict is None and premise.speaker:
            verdict = self._quoted_on(premise, passages)
        if verdict is not None or not (premise.ask_model or premise.lexical):
            return verdict
        evidence = self.evidence(premise.question, passages)
        if not evidence:
            return None
        if any(normalize(t) in normalize(premise.question) for t in unknown):
            return Verdict(premise, evidence, False)  # it names what the corpus never does
        if found := self._other_unit(premise, passages):
            (sentence, span_of_time) = found
            evidence = [sentence] + [e for e in evidence if e != sentence][:self.sentences - 1]
            return Verdict(premise, evidence, False, f"they say “{span_of_time}”")
        if figures := self._other_figures(premise, evidence):
            return Verdict(premise, evidence, False, f"they say {figures}")
        for i, (p, s) in enumerate(evidence):
            if said := denial(premise.question, p.text[s.start:s.end]):
                return Verdict(premise, [evidence[i]] + evidence[:i] + evidence[i + 1:], False,
                               f"they say “{said}”")
        if verdict := self._other_subject(premise, evidence, passages):
            return verdict
        if not premise.ask_model:
            return None
        quoted = " ".join(f"“{fenced(p.text[s.start:s.end])}”" for p, s in evidence)
        said = reply(self.llm, INSTRUCTION, f"Quotations: {quoted}\nQuestion: "
                                            f"{fenced(premise.question)}\nDo the quotations "
                                            "say yes?")
        if said is None:
            return None
        return Verdict(premise, evidence, not said.startswith("no"))

    def _other_subject(self, premise: Premise, evidence: list[tuple[Passage, QuoteSpan]],
                       passages: list[Passage]) -> Verdict | None:
        """A claim the question makes of one thing that the documents make of another ("Why
        does the author consider the Coca-Cola investment the cornerstone of the renewed
        cooperation?" where "The aviation sector represents a cornerstone of the renewed
        cooperation"): one of the assumption's closest sentences holds most of what it says
        (``SUBJECT_SHARE`` of its content words besides its names and words like "author"),
        while the name the claim is made of (one written before the first of those words: "the
        economy of Skye" names no subject) is used rarely in the documents (in at most
        ``SUBJECT_SENTENCES`` sentences, so not the corpus's topic) and stands neither in that
        sentence nor in the sentences right before and after it in the source, not even by a
        word of it ("the bakery" for "Orwell Bakery"), and none of the name's own sentences says
        as much. Does not hold, shown with both: that sentence and the name's own. None when a
        neighbour of that sentence is not among ``passages`` (nothing to tell by)."""
        claim = premise.question
        names = facts(claim)
        said = [w for w in content_words(claim) if w not in _FRAMING and w not in names]
        if len(said) < 2:
            return None
        ordered = sorted(self._sentences(passages),
                         key=lambda t: (t[0].source, t[0].start + t[1].start))
        texts = [normalize(p.text[s.start:s.end]) for p, s, _ in ordered]

        def share(i: int) -> float:
            have = terms(texts[i])
            return sum(known_word(w, have) for w in said) / len(said)

        rows = sorted((i for i, (p, s, _) in enumerate(ordered) if (p, s) in evidence),
                      key=share, reverse=True)
        if not rows or share(rows[0]) < SUBJECT_SHARE:
            return None
        row = rows[0]
        if not self._beside(ordered, row):
            return None
        near = " ".join(texts[max(row - 1, 0):row + 2])
        have = terms(texts[row])
        first = min((m.start() for m in re.finditer(r"[\w’'-]+", claim)
                     if (w := normalize(m[0]).removesuffix("'s")) in said
                     and known_word(w, have)), default=len(claim))
        for m in re.finditer(_ORG, claim[:first]):
            written = m[0].split()
            while written and not names >= _parts(written[0]) != set():  # "Does Transparent …"
                written = written[1:]
            parts = _parts(" ".join(written))
            if not written or not parts <= names:
                continue  # an ordinary capitalised word
            order = normalize(" ".join(written))
            name = re.compile(r"\b" + r"\W+(?:(?:of|for|and|the)\W+)*".join(
                map(re.escape, sorted(parts, key=order.find))) + r"\b")
            own = [i for i, t in enumerate(texts) if name.search(t)]
            if not own or len(own) > SUBJECT_SENTENCES:
                continue  # named nowhere (an unknown term), or the topic
            if any(re.search(rf"\b{re.escape(x)}\b", near) for x in parts if len(x) > 3):
                continue  # said of it, or of it by a word of its name ("the bakery")
            if any(share(i) >= SUBJECT_SHARE for i in own):
                continue
            p, s, _ = ordered[own[0]]
            shown = " ".join(written)
            shown = shown.removesuffix("’s").removesuffix("'s")
            return Verdict(premise, [ordered[row][:2], (p, s)], False,
                           f"they don't say this of {shown}")
        return None

    @staticmethod
    def _beside(ordered: list[tuple[Passage, QuoteSpan, np.ndarray]], row: int) -> bool:
        """Whether the sentences right before and after sentence ``row`` of ``ordered`` (in
        source order) are there too, or it opens its source, or it is the last one here of its
        source (taken as the source's end): nothing beside it is missing."""
        def at(i: int) -> tuple[str, int, int]:
            p, span, _ = ordered[i]
            return p.source, p.start + span.start, p.start + span.end

        source, start, end = at(row)
        if row == 0 or at(row - 1)[0] != source:
            before = start <= SENTENCE_GAP
        else:
            before = 0 <= start - at(row - 1)[2] <= SENTENCE_GAP
        after = (row + 1 == len(ordered) or at(row + 1)[0] != source
                 or 0 <= at(row + 1)[1] - end <= SENTENCE_GAP)
        return before and after

    def other_figure(self, question: str, passages: list[Passage], unknown: Collection[str]
                     ) -> Verdict | None:
        """A figure the question gives that the documents never do, where a sentence closest to
        the question holds every name of it and another figure of the same kind ("What does the
        $2.3 billion Boeing deal cover?" where the documents say "The $3.2 billion deal with
        Boeing …"): the question has the figure wrong, and that sentence says what is right.
        Only figures with a unit or a currency: a year in a question ("What did Rahmon do in
        2010?") dates what is asked more often than it asserts a fact. None when the question
        names no such figure, or no sentence bears on it: the usual answer follows ("they don't
        mention $5")."""
        wrong = [m for m in _FIGURE.finditer(question)
                 if any(_kind(m[0])) and any(normalize(t) in normalize(m[0]) for t in unknown
                                             if any(ch.isdigit() for ch in t))]
        if not wrong:
            return None
        rest = question
        for m in reversed(wrong):
            rest = rest[:m.start()] + rest[m.end():]
        names = {f for f in facts(rest) if not any(ch.isdigit() for ch in f)}
        if not names:
            return None
        kinds = {_kind(m[0]) for m in wrong}
        evidence = self.evidence(question, passages)
        for i, (p, span) in enumerate(evidence):
            text = p.text[span.start:span.end]
            if missing_facts(rest, text):
                continue
            same = [m[0] for m in _FIGURE.finditer(text) if _kind(m[0]) in kinds]
            if same:
                return Verdict(Premise(question, ask_model=False, lexical=True),
                               [evidence[i]] + evidence[:i] + evidence[i + 1:], False,
                               "they say " + ", ".join(f"“{f}”" for f in same))
        return None

    @staticmethod
    def _other_figures(premise: Premise, evidence: list[tuple[Passage, QuoteSpan]]) -> str:
        """"10 GW" assumed where the closest sentences say "1 GW": the closest sentence's own
        figures, quoted with the word after each ("“1 GW”"), when a figure of the assumption
        stands in none of them; else ""."""
        assumed = {f for f in facts(premise.question) if any(ch.isdigit() for ch in f)}
        if not assumed:
            return ""
        texts = [p.text[s.start:s.end] for p, s in evidence]
        # each figure in some sentence will do: "the next six months compared with the next
        # 5–10 years" takes its two spans from two sentences
        if not set.intersection(*(missing_facts(premise.question, t) for t in texts)) & assumed:
            return ""
        figures = [m[0] for m in _FIGURE.finditer(texts[0])]
        return ", ".join(f"“{f}”" for f in figures)

    def _other_unit(self, premise: Premise, passages: list[Passage]
                    ) -> tuple[tuple[Passage, QuoteSpan], str] | None:
        """"six years" assumed where the documents give six only in another unit ("six
        months", and nowhere "six years"): the first sentence that does, and its words."""
        assumed = durations(premise.question)
        if not assumed:
            return None
        figures = {d.split()[0] for d in assumed}
        found = None
        for p, span, _ in self._sentences(passages):
            text = p.text[span.start:span.end]
            if assumed & durations(text):
                return None  # the documents give it in its own unit somewhere
            for m in DURATION.finditer(text):
                if found is None and figures & {d.split()[0] for d in durations(m[0])}:
                    found = ((p, span), m[0])
        return found

    def _affiliation(self, premise: Premise, passages: list[Passage]) -> Verdict | None:
        surname = surname_of(premise.person)
        naming = [(p, s) for p, s, _ in self._sentences(passages)
                  if mentions(surname, p.text[s.start:s.end])]
        if not naming:
            return None  # the person is named nowhere here: nothing to check against
        org = content_words(premise.org)
        holds = any(all(known_word(w, terms(p.text[s.start:s.end])) for w in org)
                    for p, s in naming)
        return Verdict(premise, naming[:self.sentences], holds)


def _kind(figure: str) -> tuple[bool, str]:
    """What a figure counts: money or not, and its unit ("$3.2 billion" -> (True, "billion"),
    "1 GW" -> (False, "gw"), "1992" -> (False, ""))."""
    unit = re.sub(r"^\$?[\d,.]+\s*", "", figure).lower()
    return figure.startswith("$"), unit


def echoed(premises: list[Premise], contradicted: list[tuple[str, list[Support]]],
           share: float = 0.7) -> Verdict | None:
    """A premise the model's answer restated (``share`` of the premise's content words or more)
    and whose own quotes the checker found not to say it ("Tajikistan's lithium … are needed
    chiefly for solar panels [4]" on "… vital components for … batteries and defense"): the
    premise does not hold, on that quote. The premise check had let it through (the model said
    yes); its restatement, checked against the documents, says otherwise."""
    for premise in premises:
        if not (premise.ask_model or premise.lexical):
            continue
        asked = set(content_words(premise.question))
        for claim, supports in contradicted:
            said = set(content_words(claim))
            if asked and supports and len(asked & said) >= share * len(asked):
                return Verdict(premise, [(s.passage, s.span) for s in supports], False)
    return None

