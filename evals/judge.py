"""The entailment judge: does a passage support a claim?

The judge shares nothing with the citation checker it grades (``rag.grounding``): its own fact
extraction, comparison unit, scoring, threshold and polarity test. It borrows only generic parts
of the product: the embedding model, the LLM interface and the sentence splitter.

No NLI model ships offline here, so the judge combines what is available, cheapest first:
  1. facts: every figure (with its unit: "six months" is not "six years") and every capitalised
     name of the claim occurs in the passage;
  2. meaning: the claim against windows of one or two consecutive passage sentences, scored as
     the mean of the embedding cosine and the share of the claim's content words the window
     contains; the best window must reach the threshold;
  3. polarity: negation in that window and in the claim must agree on what they negate (a
     negation whose scope holds none of the other side's words does not count);
  4. optionally, an LLM asked a strict yes/no question, for claims the first three let through
     (the embedded model by default, or an OpenAI-compatible one when configured).
A claim that is word for word one sentence of the passage, or two consecutive ones, is supported
without any of these: the passage states it (this spares the LLM most extractive answers).
Its balanced accuracy on the hand-labelled ``judge_labels.jsonl`` is reported with every eval.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from rag.embeddings import LocalEmbeddings
from rag.generation import LLM
from rag.text import sentence_spans

_PROMPT = """Passage: {passage}

Claim: {claim}

Does the passage state the claim, with the same names, numbers and meaning? \
Answer only yes or no."""

# -- tokens -------------------------------------------------------------------------------------
_TOKEN = re.compile(r"(?:[A-Za-z]\.){2,}|\d+(?:,\d{3})*(?:\.\d+)?|%|"
                    r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
_BREAK = re.compile(r"[,;:()\[\]\"“”–—]|\s-\s")  # ends a clause, and a negation's reach
_FILLER = frozenset("""
a an the and or but if then than as of in on at to for from by with about into onto over under
after before between through during since until upon via per this that these those it its they
them their there here he him his she her we our you your i me my is are was were be been being
am do does did done has have had having will would shall should can could may might must also
so such very more most much many some any each every all both either other another same own
which who whom whose what when where why how while whether just only even still already yet
too again further thus hence however indeed overall because although though unless whereas
despite according including regarding against among across around toward towards within s
""".split())
_NUMBERS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
            "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
            "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100", "dozen": "12"}
_UNITS = frozenset("""
second minute hour day week month year decade century percent thousand million billion trillion
gw mw kw gwh mwh km mile ton tonne barrel dollar
""".split())
_TITLES = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr"})
# names a passage may give as an abbreviation ("U.S.") where a claim says "American"
_ALIASES = (frozenset({"us", "usa", "america", "american", "americans"}),
            frozenset({"uk", "britain", "british"}),
            frozenset({"eu", "europe", "european", "europeans"}))
# capitalised only because it opens the sentence: endings of ordinary English words
_ORDINARY = re.compile(r"(ing|ly|ed|ion|ions|ment|ments|ness|ity|ities|ies|ive|ous|ful|ance|"
                       r"ence|ship)$")


@dataclass(frozen=True)
class _Tok:
    raw: str
    key: str  # lower case, possessive and dots dropped
    start: int
    end: int


def _tokens(text: str) -> list[_Tok]:
    """Word, figure and '%' tokens with offsets into ``text`` (already NFKC-normalised)."""
    out = []
    for m in _TOKEN.finditer(text):
        raw = m.group(0)
        key = raw.lower().replace("’", "'")
        if key.endswith("'s"):
            key = key[:-2]
        if "." in key and not key[0].isdigit():
            key = key.replace(".", "")  # "U.S." -> "us"
        key = key.replace(",", "") if key[0].isdigit() else key
        out.append(_Tok(raw, "percent" if key == "%" else key, m.start(), m.end()))
    return out


def _same(a: str, b: str) -> bool:
    """One word, allowing another ending: 'tajik' ~ 'tajikistan', 'china' ~ 'chinese',
    'reluctant' ~ 'reluctance'; figures must be equal."""
    if a == b:
        return True
    if a[0].isdigit() or b[0].isdigit():
        return False
    short, long = sorted((a, b), key=len)
    if len(short) >= 4 and long.startswith(short):
        return True
    n = 0
    while n < len(short) and a[n] == b[n]:
        n += 1
    return n >= 4 and len(a) - n <= 3 and len(b) - n <= 3


def _has(word: str, vocabulary: set[str]) -> bool:
    return word in vocabulary or any(_same(word, v) for v in vocabulary)


def _content(toks: list[_Tok]) -> list[str]:
    return [t.key for t in toks if t.key not in _FILLER and (len(t.key) > 1 or t.key.isdigit())]


# -- facts: figures with their units, and names -----------------------------------------------
def _figures(toks: list[_Tok]) -> dict[str, set[str | None]]:
    """Each figure of the text with the units it is given ('6' -> {'month'})."""
    out: dict[str, set[str | None]] = {}
    for i, t in enumerate(toks):
        value = _NUMBERS.get(t.key, t.key)
        if not value[0].isdigit():
            continue
        unit = toks[i + 1].key if i + 1 < len(toks) else ""
        unit = unit[:-1] if unit.endswith("s") and unit[:-1] in _UNITS else unit
        out.setdefault(value, set()).add(unit if unit in _UNITS else None)
    return out


def _names(text: str, toks: list[_Tok]) -> list[tuple[str, str | None]]:
    """The claim's capitalised names as (word, initials of the run of capitalised words it
    stands in: 'United States' -> 'us', or None for a lone word)."""
    caps = []
    for i, t in enumerate(toks):
        if not any(ch.isupper() for ch in t.raw) or t.key in _FILLER or t.key in _TITLES:
            continue
        if len(t.key) < 2 or t.key.isdigit() or t.key in _NUMBERS:
            continue
        before = text[:t.start].rstrip()
        opener = not before or before[-1] in ".!?:\"“(" or not re.search(r"\w", before)
        if opener and t.raw[1:].islower():
            after = text[t.end:t.end + 1]
            if after == "," or _ORDINARY.search(t.key):
                continue  # "Working with...", "However, ..." are no names
        caps.append(i)
    out = []
    for i in caps:
        run = [i]
        while run[0] - 1 in caps:
            run.insert(0, run[0] - 1)
        while run[-1] + 1 in caps:
            run.append(run[-1] + 1)
        initials = "".join(toks[j].key[0] for j in run) if len(run) > 1 else None
        for part in toks[i].key.split("-"):
            if len(part) > 1:
                out.append((part, initials))
    return out


def _acronyms(text: str, toks: list[_Tok]) -> set[str]:
    """Initials of each run of capitalised words in the passage ('United States' -> 'us')."""
    out, run = set(), ""
    for i, t in enumerate(toks):
        joined = i > 0 and not text[toks[i - 1].end:t.start].strip()
        if t.raw[:1].isupper() and t.key not in _FILLER:
            run = run + t.key[0] if joined or not run else t.key[0]
            if len(run) > 1:
                out.add(run)
        else:
            run = ""
    return out


def missing(claim: str, passage: str) -> list[str]:
    """The claim's figures and names that the passage lacks, in order."""
    claim, passage = unicodedata.normalize("NFKC", claim), unicodedata.normalize("NFKC", passage)
    ctoks, ptoks = _tokens(claim), _tokens(passage)
    have = {t.key for t in ptoks} | {p for t in ptoks for p in t.key.split("-")}
    pfig = _figures(ptoks)
    out = []
    for value, units in _figures(ctoks).items():
        given = pfig.get(value)
        if given is None:
            out.append(value)
            continue
        for unit in units - {None}:
            if None not in given and unit not in given:
                out.append(f"{value} {unit}")
    acronyms = _acronyms(passage, ptoks)
    short = {t.key for t in ptoks if t.raw.isupper() or "." in t.raw}  # "U.S.", "EU"
    spelled = {w for w in have if len(w) > 2}  # "us" only as "U.S." or "US"
    for word, initials in _names(claim, ctoks):
        if _has(word, have) or (initials is not None and initials in short):
            continue
        if word in acronyms:  # "U.S." for "United States"
            continue
        if any(word in group and group & (short | acronyms | spelled) for group in _ALIASES):
            continue
        out.append(word)
    return list(dict.fromkeys(out))


# -- polarity -----------------------------------------------------------------------------------
_NEGATORS = frozenset("""
not no never none nobody nothing nowhere neither nor cannot without unlikely reluctant
reluctance lack lacks lacking fail fails failed refuse refuses refused
""".split())
_ADDITIVE = frozenset({"only", "just", "simply", "merely"})  # "not only X": X and more
_SCOPE_END = frozenset({"but", "while", "although", "though", "whereas", "yet", "however"})
_REACH = 8  # words a negation governs at most


def _negated(text: str) -> set[str]:
    """Content words under a negation: those after a negator, up to the clause's end."""
    toks = _tokens(text)
    out: set[str] = set()
    for i, t in enumerate(toks):
        if not (t.key in _NEGATORS or t.key.endswith("n't")):
            continue
        if i + 1 < len(toks) and toks[i + 1].key in _ADDITIVE and t.key == "not":
            continue
        for u in toks[i + 1:i + 1 + _REACH]:
            if u.key in _SCOPE_END or _BREAK.search(text[t.end:u.start]):
                break
            if u.key not in _FILLER and u.key not in _NEGATORS:
                out.add(u.key)
    return out


def polarity_differs(claim: str, window: str) -> bool:
    """One side negates something the other side talks about, and the other does not."""
    claim, window = unicodedata.normalize("NFKC", claim), unicodedata.normalize("NFKC", window)
    claim_words, window_words = set(_content(_tokens(claim))), set(_content(_tokens(window)))
    claim_neg = any(_has(w, window_words) for w in _negated(claim))
    window_neg = any(_has(w, claim_words) for w in _negated(window))
    return claim_neg != window_neg


# -- the judge ----------------------------------------------------------------------------------
def _folded(text: str) -> str:
    """Case, quote marks, dashes, spacing and the final stop folded, for word-for-word tests."""
    t = unicodedata.normalize("NFKC", text).lower()
    t = re.sub(r"[‘’`]", "'", re.sub(r"[“”\"]", "", t))
    t = re.sub(r"[‐–—]", "-", t)
    t = re.sub(r"\s+", " ", t).strip()
    return t.rstrip(" .!?;:'").lstrip("'")


@dataclass
class Verdict:
    supported: bool
    score: float
    reason: str


class Judge:
    """``judge(claim, passage) -> Verdict``; verdicts are cached per (claim, passage)."""

    def __init__(self, embeddings: LocalEmbeddings, llm: LLM | None = None,
                 threshold: float = 0.5) -> None:
        self.embeddings = embeddings
        self.llm = llm
        self.threshold = threshold
        self._cache: dict[tuple[str, str], Verdict] = {}
        self._vectors: dict[str, np.ndarray] = {}

    @property
    def name(self) -> str:
        return "facts+windows+polarity" + (f"+llm({self.llm.name})" if self.llm else "")

    def __call__(self, claim: str, passage: str) -> Verdict:
        key = (claim, passage)
        if key not in self._cache:
            self._cache[key] = self._judge(claim, passage)
        return self._cache[key]

    def _encode(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if new:
            if len(self._vectors) > 20000:
                self._vectors.clear()
            self._vectors.update(zip(new, self.embeddings.encode(new), strict=True))
        return np.stack([self._vectors[t] for t in texts])

    def windows(self, passage: str) -> list[str]:
        """Every sentence of the passage, and every two consecutive ones."""
        sentences = [passage[a:b] for a, b in sentence_spans(passage)]
        pairs = [f"{x} {y}" for x, y in zip(sentences, sentences[1:], strict=False)]
        return sentences + pairs

    def score(self, claim: str, window: str, cosine: float) -> float:
        """Mean of the embedding cosine and the share of the claim's content words (with
        their figures) that the window contains."""
        words = set(_content(_tokens(unicodedata.normalize("NFKC", claim))))
        have = set(_content(_tokens(unicodedata.normalize("NFKC", window))))
        covered = sum(_has(w, have) for w in words) / len(words) if words else 0.0
        return (cosine + covered) / 2

    def _judge(self, claim: str, passage: str) -> Verdict:
        windows = self.windows(passage)
        if not windows:
            return Verdict(False, 0.0, "empty passage")
        folded = _folded(claim)
        if folded and any(_folded(w) == folded for w in windows):
            return Verdict(True, 1.0, "verbatim")
        lacking = missing(claim, passage)
        if lacking:
            return Verdict(False, 0.0, f"not in passage: {', '.join(lacking)}")
        vecs = self._encode([claim, *windows])
        cosines = vecs[1:] @ vecs[0]
        scores = [self.score(claim, w, float(c)) for w, c in zip(windows, cosines, strict=True)]
        best = int(np.argmax(scores))
        top = scores[best]
        if top < self.threshold:
            return Verdict(False, top, f"meaning too far ({top:.2f})")
        if polarity_differs(claim, windows[best]):
            return Verdict(False, top, "negation differs")
        if self.llm is not None:
            prompt = _PROMPT.format(passage=passage, claim=claim)
            reply = "".join(self.llm.stream([{"role": "user", "content": prompt}], 3))
            if not reply.strip().lower().startswith("yes"):
                return Verdict(False, top, f"llm said {reply.strip()[:10]!r}")
        return Verdict(True, top, "supported")
