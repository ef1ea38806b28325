"""What one system produced for one question (``Run``), and the project's own system.

Both the harness and the naive baseline depend on this module; it depends on neither.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from rag import Assistant


@dataclass
class Run:
    """One system's answer to one item, in the shape both systems share."""

    answer: str
    abstained: bool
    citations: list[dict]
    passages: dict[str, str]  # chunk_id -> text, for everything the system retrieved
    cite_text: dict[int, str]  # marker number in the answer -> cited passage text
    retrieved: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    first_token: float | None = None


def run_project(assistant: Assistant, question: str) -> Run:
    """Ask the project's assistant and time it."""
    t0 = time.perf_counter()
    answer = assistant.ask(question)
    seconds = time.perf_counter() - t0
    text = {p.chunk_id: p.text for p in answer.passages}
    return Run(answer.text, answer.abstained, [c.to_dict() for c in answer.citations], text,
               {c.n: text.get(c.chunk_id, c.quote) for c in answer.citations},
               seconds=seconds, first_token=answer.timings.get("first_token"))


@dataclass(frozen=True)
class Hit:
    """One chunk of the project's ranked search."""

    chunk_id: str
    score: float
    dense: float | None
    lexical: float | None


@dataclass(frozen=True)
class Retrieval:
    """The project's top-10 search for one item, kept beside the item, not in it."""

    hits: tuple[Hit, ...]
    gold_rank: int | None  # 1-based rank of the first hit holding a support string

    def rows(self) -> list[dict]:
        return [asdict(h) for h in self.hits]
