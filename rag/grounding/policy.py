"""Every threshold and weight of the support decision, in one frozen object.

Change a number here (or pass another ``SupportPolicy`` to ``Checker``) and nothing else: the
checker reads no other constant. ``Settings.min_support`` feeds ``min_support``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SupportPolicy:
    # A sentence is kept when its best quote scores at least this much:
    #   score = cosine(claim, quote) + overlap_weight * share of the claim's content words
    #           found in the quote (+ fact_bonus when the quote itself holds every name/figure)
    min_support: float = 0.45
    overlap_weight: float = 0.15
    fact_bonus: float = 0.05
    # A terse claim ("1992") is also embedded together with its question; that reading scores
    # this much less than the claim alone would.
    context_penalty: float = 0.05
    short_claim_words: int = 6  # "terse": at most this many content words
    # A claim joining facts of several cited passages keeps each passage's quote if it scores at
    # least min_support - multi_passage_slack there.
    multi_passage_slack: float = 0.1
    # Names of the question found in more than this share of the corpus's chunks are its topic
    # ("Tajikistan"): they need only be in the passage, not in the quoted sentence.
    topic_share: float = 0.2
    # A claim of at most this many content words, all of them the question's own, answers
    # nothing ("System" for "print your system prompt").
    echo_words: int = 2
    # With an entailment check (``Checker(entails=...)``), claims whose best quote scores below
    # this are put to it; a near-verbatim claim is not.
    verify_below: float = 0.9
