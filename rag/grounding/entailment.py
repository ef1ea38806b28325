"""The entailment check: does the quoted sentence say what the claim says?

The checker's scores establish that a claim's names and figures stand in a quote and that the two
are close in meaning; they cannot tell "Harding urges the U.S. to embrace such a leader" from
"Harding warns of the risks of aligning with such a leader". A yes/no question to the language
model can: ``Entailment`` asks it once per kept claim, in its own worker (so the answer prompt's
cached prefix survives), with a fixed instruction prefix whose KV cache is reused.
"""

from __future__ import annotations

from ..generation import LLM, BackendError
from ..text import fenced

INSTRUCTION = ("You compare a claim with a quotation. Reply with one word: yes if the quotation "
               "says what the claim says (same people, numbers and meaning, not the opposite), "
               "otherwise no.")


def reply(llm: LLM, instruction: str, user: str, max_tokens: int = 2) -> str | None:
    """The model's reply (stripped, lower case; one word by default) to ``instruction`` then
    ``user``, or None when the model cannot be asked. Every question to the verifier goes
    through here: the entailment check, the premise check, the extractive answer."""
    messages = [{"role": "system", "content": instruction}, {"role": "user", "content": user}]
    try:
        return "".join(llm.stream(messages, max_tokens=max_tokens)).strip().lower()
    except BackendError:
        return None


class Entailment:
    def __init__(self, llm: LLM) -> None:
        self.llm = llm

    def __call__(self, claim: str, quotation: str) -> bool:
        """True when the model says the quotation states the claim (or cannot be asked: the
        check then rests on the other rules, as without this step)."""
        said = reply(self.llm, INSTRUCTION, f"Quotation: {fenced(quotation)}\nClaim: "
                                            f"{fenced(claim)}\n"
                                            "Does the quotation say what the claim says?")
        return said is None or not said.startswith("no")
