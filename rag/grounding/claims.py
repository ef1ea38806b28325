"""Claims: the sentences of a model's output, their citation markers, and the names and figures
each asserts. Pure text functions: no model, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..text import (
    STOPWORDS,
    content_words,
    count_tokens,
    known_word,
    normalize,
    sentence_spans,
    words,
)

_MARKER = re.compile(r"\s*(?:\[\s*(\d+(?:\s*[,;–-]\s*\d+)*)\s*\]|【\s*(\d+)\s*】|\^(\d+))")
_TRAILING = re.compile(r"([.!?])((?:\s*(?:\[[\d\s,;–-]+\]|【\s*\d+\s*】))+)")
_NAME = re.compile(r"\b[A-Z][\w’'.-]*[\w]|\b[A-Z]\b")
NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "100", "thousand": "1000", "dozen": "12",
}
# Sentences about the passages rather than from them ("Passage [3].", "X is not mentioned in the
# passages"): never an answer.
_META = re.compile(r"^\W*(passages?|documents?|the (passages?|documents?|context))\W*$|"
                   r"\bnot (mentioned|stated|specified|provided|given|found|included)\b|"
                   r"\b(passages?|documents?|context) (do|does) not\b|"
                   r"\bNOT IN DOCUMENTS\b|\bIN DOCUMENTS\b", re.I)


_NEGATION = re.compile(r"\b(not|no|never|neither|nor|rather than|instead of)\b|n[’']t\b", re.I)


def denied(claim: str) -> set[str]:
    """The names and figures the claim denies: those after its first negation ('No: the deal is
    worth $3.2 billion, not $5 billion' -> {'5'}; a leading 'No:' denies the question, not the
    rest). 'Harding noted that the deal is not simply about…' denies nothing about Harding."""
    body = re.sub(r"^\W*no\b\W*", "", claim, flags=re.I)
    m = _NEGATION.search(body)
    return facts(body[m.end():]) if m else set()


@dataclass
class Claim:
    """One sentence of model output: its text without markers and the passages it cited."""

    text: str
    cited: list[int]  # 1-based passage numbers as the model wrote them (may be invalid)


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


# A sentence starts at the text's start or after a full stop that ends a word (not "U.S. Navy").
_OPENS = re.compile(r"(?:^|[a-z0-9)”\"][.!?]\s+|[!?]\s+)\W*$")
# "Belt and Road Initiative (BRI)": an acronym the writer spelled out asserts nothing new
_ACRONYM = re.compile(r"\(([A-Z]{2,6})s?\)")
_CONNECTORS = {"and", "of", "the", "for", "on", "in", "&"}
# "three factors: A, B and C": a count of the items the sentence itself lists
_COUNTED = re.compile(rf"\b({'|'.join(NUMBER_WORDS)}|\d+)\s+(?:[\w-]+\s+){{0,10}}?[\w-]+\s*"
                      r"[:–—]\s*(?P<items>[^.;:]+)", re.I)


# "six months", "5-10 years", "a 30-year": a figure is read with its unit of time, so "six years"
# is not supported by "six months"
DURATION = re.compile(rf"\b({'|'.join(NUMBER_WORDS)}|\d+(?:\.\d+)?)(?:\s*(?:-|–|to)\s*"
                      rf"(\d+(?:\.\d+)?))?[\s-]+"
                      # "six long years", "six more months": such words may stand between
                      r"(?:(?:long|more|full|whole|consecutive|straight|additional|further|"
                      r"hard|difficult|short)\s+){0,2}"
                      r"(year|month|week|day|decade|hour|minute)s?\b", re.I)


def durations(text: str) -> set[str]:
    """The spans of time ``text`` states, as 'figure unit' ("next 6 months" -> {"6 month"},
    "5-10 years" -> {"5 year", "10 year"}); a single one ("one year", "1 month") is left out:
    "one" is no figure in ``facts`` either."""
    out = set()
    for m in DURATION.finditer(text):
        for n in filter(None, (m.group(1), m.group(2))):
            n = NUMBER_WORDS.get(n.lower(), n)
            if n != "1":
                out.add(f"{n} {m.group(3).lower()}")
    return out


def _spelled_out(claim: str) -> set[str]:
    """Acronyms in parentheses right after the words they abbreviate (lowercased)."""
    out = set()
    for m in _ACRONYM.finditer(claim):
        acronym, initials = m.group(1), ""
        for w in reversed(re.findall(r"[\w’'&-]+", claim[:m.start()])):
            if len(initials) == len(acronym) or not (w[0].isupper() or w in _CONNECTORS):
                break
            if w[0].isupper():
                initials = w[0] + initials
        if initials == acronym:
            out.add(acronym.lower())
    return out


def _enumerated(claim: str) -> set[str]:
    """Counts that equal the number of items listed after them in the same sentence."""
    out = set()
    for m in _COUNTED.finditer(claim):
        items = [i for i in re.split(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+",
                                     m.group("items")) if i.strip()]
        n = NUMBER_WORDS.get(m.group(1).lower(), m.group(1))
        if n.isdigit() and int(n) == len(items) > 1:
            out.add(n)
    return out


# offices and ranks a claim gives a person: "Miriev is a professor at Georgetown" on "…, a Central
# Asia specialist at Georgetown University" names a rank the documents do not give him
TITLES = frozenset("""
professor lecturer dean director chairman chairwoman ceo founder president minister ambassador
senator governor secretary spokesperson spokesman spokeswoman mayor chancellor premier
""".split())


def facts(claim: str) -> set[str]:
    """Numbers, proper names and titles (``TITLES``) a claim asserts: each must occur in its
    supporting passage."""
    out: set[str] = set()
    for w in words(claim):
        if any(ch.isdigit() for ch in w):
            out.add(w)
        elif w in NUMBER_WORDS and w != "one":
            out.add(NUMBER_WORDS[w])
        elif (title := w if w in TITLES else w.removesuffix("s")) in TITLES:
            out.add(title)
    listed = _enumerated(claim)
    out -= listed
    out |= {d for d in durations(claim) if d.split()[0] not in listed}
    spelled = _spelled_out(claim)
    for m in _NAME.finditer(claim):
        is_first = bool(_OPENS.search(claim[:m.start()]))
        # a compound ('U.S.-Tajik', 'Sino-American') asserts each of its parts
        for token in filter(None, re.split(r"[-–]", m.group(0))):
            lower = normalize(token).rstrip(".").removesuffix("'s")
            if lower in STOPWORDS or lower in NUMBER_WORDS or len(lower) < 2 or lower in spelled:
                continue
            if is_first and lower.isalpha() and count_tokens(" " + token) == 1:
                # a capitalised sentence opener that is one cl100k token is most likely an
                # ordinary word ("According", "Overall"); rarer words and names stay facts
                continue
            out.add(lower)
            is_first = False
    return out


def terms(text: str) -> set[str]:
    """The words of ``text`` as facts are compared with them (number words as digits)."""
    ws = words(text)
    return {NUMBER_WORDS.get(w, w) for w in ws} | set(ws) | {w.rstrip(".") for w in ws}


def missing_facts(claim: str, evidence: str) -> set[str]:
    """The claim's numbers and names that the evidence does not contain (a name may differ in
    its ending: 'Tajik' is found in 'Tajikistan', 'Chinese' in 'China')."""
    have = terms(evidence)
    spans = durations(evidence)  # a span of time must be stated as such, in its own unit
    return {f for f in facts(claim) if not (f in spans if " " in f else _stands(f, have))}


def _stands(fact: str, have: set[str]) -> bool:
    """A title as written (or its plural): 'director' is not 'directed', 'governor' not
    'government'; any other fact as ``known_word`` finds it."""
    if fact in TITLES:
        return fact in have or f"{fact}s" in have
    return known_word(fact, have)


def is_meta(claim: str) -> bool:
    """A sentence about the passages, not from them, or one without content words."""
    return bool(_META.search(claim)) or not content_words(claim)


# Words no finished sentence ends on: what follows them was cut off (the model's token budget,
# or a list announced and never given: "… limited by Tajikistan's reluctance to [8].")
_DANGLING = frozenset("to of the a an and or but with by for from including into than whose "
                      "its their such".split())


def unfinished(claim: str) -> bool:
    """A sentence cut short: it ends (before its stop) on a colon, comma, semicolon or dash, or on
    a word that needs what follows (``_DANGLING``)."""
    body = claim.rstrip().rstrip(".!?…").rstrip()
    if body.endswith((":", ",", ";", "—", "-")):
        return True
    words = re.findall(r"[\w']+", body.lower())
    return bool(words) and words[-1] in _DANGLING


def echoes(claim: str, question: str, max_words: int = 2) -> bool:
    """A terse claim made only of the question's common words ('System' for 'print your
    system prompt'): it answers nothing. Names the question offers ('China or Russia?') and
    figures are answers, not echoes."""
    claim_words = set(content_words(claim))
    names = {normalize(m.group(0)) for m in re.finditer(r"\b[A-Z][\w-]*", question)}
    return (0 < len(claim_words) <= max_words and not any(ch.isdigit() for ch in claim)
            and claim_words <= set(content_words(question)) and not claim_words & names)


_WHY_QUESTION = re.compile(r"^\W*(?:(?:so|and|but|then),?\s+)*why\b", re.I)


def restates(claim: str, question: str) -> bool:
    """A sentence that only restates a 'why' question's assumption ("Harding warns about
    aligning with such a leader [1]." for "Why does Harding warn about ...?"): every content
    word of it is one of the question's (another ending allowed), so it gives no reason."""
    if not _WHY_QUESTION.match(question):
        return False
    asked = set(content_words(question))
    said = content_words(claim)
    return bool(said) and all(known_word(w, asked) for w in said)


_COUNT_WORDS = "two|three|four|five|six|seven|eight|nine|ten"
_ASKED_COUNT = re.compile(rf"\b(?:(?:what|which)\s+(?P<n>{_COUNT_WORDS}|\d+)|"
                          rf"the\s+(?P<known>{_COUNT_WORDS}))\s+\w", re.I)


def asked_counts(question: str) -> set[str]:
    """The number a question asks to be listed ("What two developments …?" -> {"2"}) or takes
    as known ("… the two AI companies' involvement …"): an answer naming "two developments"
    repeats the question's frame, not a figure of its own."""
    out = set()
    for m in _ASKED_COUNT.finditer(question):
        n = (m["n"] or m["known"]).lower()  # "the 2019 report" is no count: only words
        out.add(n if n.isdigit() else NUMBER_WORDS[n])
    return out
