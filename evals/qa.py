"""The Q&A set: typed items, loading with validation, and stratified subsets."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, fields
from pathlib import Path

SPLITS = ("dev", "test")  # tune on dev; test is only run to report (README, Evaluation)
CATEGORIES = ("fact", "numeric", "attribution", "multi", "summary", "unanswerable",
              "false_premise", "contradiction", "injection")


@dataclass(frozen=True)
class QAItem:
    """One question of the Q&A file, exactly its keys."""

    id: str
    question: str
    category: str
    answer: str
    must_include: tuple[str, ...]  # lowercase strings a correct answer contains
    support: tuple[str, ...]  # verbatim corpus text that answers the question
    answerable: bool
    split: str  # "dev" or "test"


KEYS = tuple(f.name for f in fields(QAItem))


def _item(raw: dict, where: str, corpus_text: str | None) -> QAItem:
    if set(raw) != set(KEYS):
        raise ValueError(f"{where}: keys must be exactly {', '.join(KEYS)}")
    if raw["split"] not in SPLITS:
        raise ValueError(f"{where}: split must be one of {', '.join(SPLITS)}")
    if not isinstance(raw["answerable"], bool):
        raise ValueError(f"{where}: answerable must be true or false")
    for key in ("must_include", "support"):
        if not (isinstance(raw[key], list) and all(isinstance(s, str) for s in raw[key])):
            raise ValueError(f"{where}: {key} must be a list of strings")
    if raw["answerable"] and not (raw["must_include"] and raw["support"]):
        raise ValueError(f"{where}: an answerable item needs must_include and support")
    if any(m != m.lower() for m in raw["must_include"]):
        raise ValueError(f"{where}: must_include strings must be lowercase")
    if corpus_text is not None:
        for s in raw["support"]:
            if s not in corpus_text:
                raise ValueError(f"{where}: support is not in the corpus: {s[:60]!r}")
    return QAItem(id=raw["id"], question=raw["question"], category=raw["category"],
                  answer=raw["answer"], must_include=tuple(raw["must_include"]),
                  support=tuple(raw["support"]), answerable=raw["answerable"],
                  split=raw["split"])


def load_qa(path: Path, corpus_text: str | None = None) -> list[QAItem]:
    """Read and validate a Q&A file; ``corpus_text``, if given, must contain every support."""
    items: list[QAItem] = []
    seen: set[str] = set()
    for n, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
        if not isinstance(raw, dict):
            raise ValueError(f"{path}:{n}: not a JSON object")
        item = _item(raw, f"{path}:{n}", corpus_text)
        if item.id in seen:
            raise ValueError(f"{path}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise ValueError(f"{path}: no items")
    return items


def stratified(items: list[QAItem], limit: int | None) -> list[QAItem]:
    """Up to ``limit`` items, taken round-robin across categories so each stays represented."""
    if not limit or limit >= len(items):
        return items
    by_cat: dict[str, list[QAItem]] = defaultdict(list)
    for it in items:
        by_cat[it.category].append(it)
    out: list[QAItem] = []
    while len(out) < limit:
        for cat in list(by_cat):
            if by_cat[cat] and len(out) < limit:
                out.append(by_cat[cat].pop(0))
    order = {it.id: i for i, it in enumerate(items)}
    return sorted(out, key=lambda it: order[it.id])
