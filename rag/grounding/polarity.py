"""Polarity: does a sentence say the opposite of a claim in the claim's own words?

"Does Miriev believe U.S. training can fundamentally change Tajikistan's relationship with
Russia?" against "... it cannot fundamentally alter Tajikistan's strategic calculus or its
relationship with Russia": the 1.5B model, asked whether the quote says yes, says yes. Read
lexically, the sentence negates ("cannot") a word the claim asserts ("fundamentally"). Three
readings, each needing the claim's word to stand un-negated in the claim:
  * a negator in the sentence (not, never, cannot, n't, no longer, without) directly before one
    of the claim's content words (at most one other word between);
  * the claim's word with a negative prefix in the sentence ('certain' / 'uncertain',
    'likely' / 'unlikely', 'ability' / 'inability'), or the other way round;
  * a pair of everyday antonyms, one on each side (growing / shrinking, eager / reluctant);
  * the other way round, a word the claim negates ("risk-free", "without risks") that the
    sentence asserts ("not without significant risks": a negated negation asserts).
Only meant for a sentence already found to be about the claim (the caller's closest sentence).
"""

from __future__ import annotations

import re

from ..text import STOPWORDS, words

_NEGATORS = {"not", "never", "cannot", "no", "without", "neither", "nor", "hardly"}
_NOT_ONLY = {"only", "just", "merely", "solely"}
_CONDITIONS = {"if", "unless", "whether"}
_PREFIXES = ("un", "non", "in", "im", "ir", "il", "dis")
# everyday antonyms: "grow-" is a stem (growing, growth), a word without "-" only itself
_EXPECTS = (("expect", "expects", "expected", "expecting", "anticipate", "anticipates",
             "anticipated", "predict", "predicts", "predicted"),
            ("unlikely", "improbable", "doubtful"))
# a claim that expects little ("expects it to change little") agrees with "unlikely to …"
_LITTLE = ("little", "hardly", "barely", "scarcely", "minimal", "modest", "marginal-")
_ANTONYMS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("increas-",), ("decreas-", "reduc-")), (("grow-", "grew"), ("shrink-", "shrank", "declin-")),
    (("expand-", "expansion"), ("shrink-", "shrank", "contract-")),
    (("rise", "rises", "rising", "rose", "risen"), ("fall", "falls", "falling", "fell", "fallen")),
    (("strengthen-", "stronger", "bolster-"), ("weaken-", "weaker", "undermin-")),
    (("large", "larger", "big", "bigger"), ("small", "smaller")),
    (("eager-", "willing", "willingness"), ("reluctan-", "unwilling-")),
    (("success-", "succeed-"), ("fail-",)), (("gain", "gains", "gained"),
                                             ("loss", "losses", "lost", "lose", "loses")),
    (("accept-",), ("reject-",)), (("support", "supports", "supported"), ("oppos-",)),
    (("allow-", "permit-"), ("prevent-", "forbid-", "prohibit-")),
    (("conservative",), ("liberal",)), (("confiden-",), ("doubt-",)),
    (("optimis-",), ("pessimis-",)),
    # "the author expects it to change much" against "… is unlikely to dramatically alter …"
    # (not "expects it to change little": see _LITTLE)
    _EXPECTS,
    (("high", "higher", "highest"), ("low", "lower", "lowest")),
    (("easy", "easier"), ("difficult", "harder")), (("cheap-",), ("expensive", "costly")),
    (("positive",), ("negative",)), (("benefit-",), ("harm", "harms", "harmed", "harmful")),
    (("improv-",), ("worsen-", "deteriorat-")), (("remov-", "eliminat-"), ("introduc-",)),
    (("welcom-",), ("resist-", "reluctan-")),
    (("intensif-", "deepen-", "escalat-", "ramp-"), ("scal-", "withdr-", "curtail-",
                                                     "diminish-")),
    (("eliminat-", "allay-", "dispel-"), ("rais-",)),
    (("prais-", "applaud-", "endors-", "celebrat-"), ("warn-", "critici-", "caution-")),
    (("consolidat-",), ("loss", "lost", "lose", "loses", "losing")),
    (("full", "fully", "complete", "completely", "immediate-"), ("gradual-", "partial-")),
    (("uncontroversial", "harmless"), ("sensitive", "controversial", "contentious")),
]


def _is(word: str, forms: tuple[str, ...]) -> bool:
    return any(word.startswith(f[:-1]) if f.endswith("-") else word == f for f in forms)


def _negator(word: str) -> bool:
    return word in _NEGATORS or word.endswith(("n't", "n’t"))


def _negated(tokens: list[str], i: int) -> str:
    """The negator right before ``tokens[i]`` (at most one word between), or "". A negator
    itself negated ("not without significant risks") cancels, and so does "only" between
    ("not only aircraft but also ...")."""
    for j in (i - 1, i - 2):
        if j == i - 2 and tokens[i - 1] in _NOT_ONLY:
            break
        if j >= 0 and _negator(tokens[j]):
            return "" if j >= 1 and _negator(tokens[j - 1]) else tokens[j]
    return ""


def _same_stem(a: str, b: str) -> bool:
    """'risk' / 'risks', 'deposit' / 'deposits': one word, or one a short extension of the
    other (both at least four letters)."""
    short, long = sorted((a, b), key=len)
    return a == b or (len(short) >= 4 and long.startswith(short) and len(long) - len(short) <= 2)


def _claim_negates(claim: str, tokens: list[str]) -> set[str]:
    """The content words the claim negates: 'risk' in 'risk-free', 'risks' in 'without risks'
    (right after the negator, which is not itself negated; no name: 'Doesn't Tajikistan allow
    …' does not negate Tajikistan)."""
    names = {w.lower() for w in re.findall(r"\b[A-Z][\w'’-]*", claim)}
    free = {m.group(1).lower() for m in re.finditer(r"(\w+)-free\b", claim)}
    return free | {w for i, w in enumerate(tokens)
                   if i >= 1 and _negator(tokens[i - 1]) and w not in STOPWORDS and len(w) > 2
                   and w not in names and not (i >= 2 and _negator(tokens[i - 2]))}


def _asserted(tokens: list[str]) -> set[str]:
    """The claim's content words that it does not negate itself."""
    return {w for i, w in enumerate(tokens)
            if w not in STOPWORDS and len(w) > 2 and not _negated(tokens, i)}


def denial(claim: str, sentence: str) -> str:
    """The words by which ``sentence`` denies ``claim`` ("cannot fundamentally" for "can
    fundamentally", "uncertain" for "certain", "reluctance" for "eager"), or "" when it does
    not read as a denial."""
    said, claimed = words(sentence), words(claim)
    asserted = _asserted(claimed)
    if not asserted:
        return ""
    # 1. "it cannot fundamentally alter": a word the claim asserts, negated by the sentence
    for i, w in enumerate(said):
        if w in asserted and (negator := _negated(said, i)):
            return f"{negator} {w}"
    said_set = set(said)
    claimed_set = set(claimed)
    # 2. "uncertain" against "certain" (either side), the bare word absent from the other
    for a, a_set, b_set in ((said, said_set, claimed_set), (claimed, claimed_set, said_set)):
        for w in a:
            for p in _PREFIXES:
                bare = w[len(p):]
                if w.startswith(p) and len(bare) >= 4 and bare in b_set and w not in b_set \
                        and bare not in a_set and (p != "in" or bare[0] in "aeiou"):
                    return w if a is said else bare  # the sentence's word
    # 3. antonyms: one side's word, the other side's opposite, neither word on both sides; a
    # word of the claim's condition is not asserted ("it could derail if the U.S. fails to …"
    # against "success hinges on …")
    cond = next((i for i, w in enumerate(claimed) if w in _CONDITIONS), len(claimed))
    hypothetical = set(claimed[cond:]) - set(claimed[:cond])
    for x, y in _ANTONYMS:
        if (x, y) == _EXPECTS and any(_is(w, _LITTLE) for w in claimed):
            continue
        for one, other in ((x, y), (y, x)):
            mine = [w for w in asserted if _is(w, one) and w not in hypothetical]
            # "not expected" in the sentence does not deny "unlikely" in the claim
            theirs = [w for i, w in enumerate(said) if _is(w, other) and not _negated(said, i)]
            if mine and theirs and not any(_is(w, one) for w in said) \
                    and not any(_is(w, other) for w in claimed):
                return theirs[0]
    # 4. "risk-free" against "not without significant risks"
    negated = _claim_negates(claim, claimed)
    for i, w in enumerate(said):
        if any(_same_stem(w, n) for n in negated) and not _negated(said, i):
            return w
    return ""


# What a forecast of work under way does not say: that it ends in an outcome. "The project is
# expected to be completed within six months" on "the next 6 months will likely see … the
# gradual rollout of the project": the 1.5B, asked, says the quote says so.
# ("concludes" is left out: "The piece concludes by …" describes the article)
_OUTCOMES = ("complet-", "finish-", "finaliz-", "finalis-", "sign",
             "signs", "signed", "signing", "ratif-", "achiev-", "accomplish-", "deliver-",
             "launch-", "doubl-", "tripl-", "approv-")
_FORECAST = ("likely", "will", "may", "might", "could", "expect-", "anticipat-", "gradual-",
             "continu-", "ongoing", "negotiat-", "potential-", "plann-", "aim-", "hope-")


def overstated(claim: str, sentence: str) -> str:
    """The outcome word ("completed", "signed") of ``claim`` that a forecast ``sentence``
    ("will likely see continued negotiations", "the gradual rollout") does not state, or "".
    A sentence that forecasts nothing is left to the other readings."""
    said = words(sentence)
    if not any(_is(w, _FORECAST) for w in said):
        return ""
    for w in words(claim):
        if _is(w, _OUTCOMES) and not any(_same_stem(w, s) for s in said):
            return w
    return ""
