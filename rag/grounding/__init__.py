"""Grounding: why a sentence of an answer is kept, and which quote proves it.

    claims.py   the model's sentences, their [n] markers, the names and figures they assert
    quotes.py   the candidate quotes of a retrieved passage and their embeddings
    policy.py   every threshold and weight of the support decision (one frozen object)
    checker.py  the decision, sentence by sentence, and the numbered citations
"""

from .checker import Checked, Checker, Support, assemble
from .claims import Claim, durations, facts, missing_facts, parse_claims
from .policy import SupportPolicy
from .quotes import QuoteIndex, QuoteIndexer, QuoteSpan

__all__ = ["Checked", "Checker", "Claim", "QuoteIndex", "QuoteIndexer", "QuoteSpan", "Support",
           "SupportPolicy", "assemble", "durations", "facts", "missing_facts",
           "parse_claims"]
