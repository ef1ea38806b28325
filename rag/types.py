"""The values that flow through the pipeline: Chunk -> Passage -> Citation -> Answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Chunk:
    """A token-bounded slice of one source file: ``source_text[start:end] == text``."""

    id: str
    source: str  # path relative to the corpus root
    start: int
    end: int
    text: str


@dataclass
class Passage:
    """A retrieved chunk with its retrieval scores; ``rank`` is 1-based after fusion."""

    chunk_id: str
    source: str
    start: int
    end: int
    text: str
    score: float = 0.0  # fused score (reciprocal-rank fusion)
    dense_score: float | None = None  # cosine similarity, None if not in the dense list
    lexical_score: float | None = None  # BM25, None if not in the lexical list
    rank: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """A verbatim quote from a source that supports one sentence of an answer."""

    n: int
    source: str
    chunk_id: str
    start: int
    end: int
    quote: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Disagreement:
    """The documents disagree: citation ``said`` (what the answer rests on) and citation
    ``other`` (a passage about the same subject with a different figure)."""

    said: int
    other: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DocumentInfo:
    """One indexed file: its ``source`` (path relative to ``root``, the folder it was ingested
    from), its chunks in the index, the size of the file on disk (None if it is gone) and when
    it was indexed (ISO 8601; None for an index written before this was recorded)."""

    source: str
    root: str
    chunks: int
    bytes: int | None
    indexed_at: str | None

    @property
    def path(self) -> str:
        """The file's path on disk (where it was when it was indexed)."""
        return str(Path(self.root) / self.source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CollectionInfo:
    """One collection of a store: its documents and chunks (None, with ``problem`` saying why,
    when its index cannot be opened with these settings)."""

    name: str
    documents: int | None
    chunks: int | None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    """What the assistant says: text with ``[n]`` markers, or an abstention."""

    text: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    # what retrieval returned, then any other passage of the prompt's context a citation quotes
    passages: list[Passage] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # model sentences the checker rejected
    reason: str = ""  # why it abstained (gate, model, checker)
    raw: str = ""  # the model's unchecked output
    timings: dict[str, float] = field(default_factory=dict)
    fallback: bool = False  # no model answer: verbatim quotes of the best passages
    read_as: str = ""  # a follow-up question as it was understood, when it was rewritten
    disagreements: list[Disagreement] = field(default_factory=list)
    # the question's assumption, as a yes/no question, when the documents do not bear it out
    # (the answer is then the correction: what they say instead)
    premise: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "abstained": self.abstained,
            "fallback": self.fallback,
            "citations": [c.to_dict() for c in self.citations],
            **({"read_as": self.read_as} if self.read_as else {}),
            **({"disagreements": [d.to_dict() for d in self.disagreements]}
               if self.disagreements else {}),
            **({"premise": self.premise} if self.premise else {}),
        }
