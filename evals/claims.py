"""The harness's own claim splitter: an answer's sentences and the ``[n]`` markers each cites.

Deliberately separate from the product's parser: the eval must not read answers through the code
it evaluates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text import sentence_spans

# "[3]", "[1, 2]", "[1,2]"; the white space before a marker goes with it
_MARKER = re.compile(r"\s*\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")


@dataclass(frozen=True)
class Sentence:
    """One sentence of an answer, without its markers, and the marker numbers it carries."""

    text: str
    cited: tuple[int, ...]


def split_answer(answer: str) -> list[Sentence]:
    """The sentences of ``answer`` with their citation markers, in order.

    A marker belongs to the sentence it stands in; one standing after a sentence's final
    punctuation ("... deal.[1] Next") belongs to that sentence, not to the next.
    """
    plain: list[str] = []
    marks: list[tuple[int, list[int]]] = []  # (offset in the marker-free text, numbers)
    size = last = 0
    for m in _MARKER.finditer(answer):
        plain.append(answer[last:m.start()])
        size += m.start() - last
        marks.append((size, [int(n) for n in re.split(r"\s*,\s*", m.group(1))]))
        last = m.end()
    plain.append(answer[last:])
    text = "".join(plain)
    spans = sentence_spans(text)
    cited: list[list[int]] = [[] for _ in spans]
    for pos, nums in marks:
        # the last sentence that starts before the marker; the first if none does
        owner = max((i for i, (a, _) in enumerate(spans) if a < pos), default=0)
        if spans:
            cited[owner].extend(n for n in nums if n not in cited[owner])
    return [Sentence(re.sub(r"\s+([.,;:!?])", r"\1", text[a:b]), tuple(c))
            for (a, b), c in zip(spans, cited, strict=True) if re.search(r"\w", text[a:b])]
