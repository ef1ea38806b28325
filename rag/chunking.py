"""Token-aware chunking on sentence and paragraph boundaries, with exact character offsets."""

from __future__ import annotations

import hashlib
import re

from .text import count_tokens, sentence_spans
from .types import Chunk

_PARA = re.compile(r"\n\s*\n|\n")


def chunk_id(source: str, text: str, occurrence: int = 0) -> str:
    """Stable id from the source path and the chunk's content (and which repeat of it this is)."""
    h = hashlib.sha256(f"{source}\0{occurrence}\0{text}".encode()).hexdigest()
    return h[:24]


def chunk_text(text: str, source: str, size: int = 96, overlap: int = 16) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``size`` tokens (cl100k) that start and end on
    sentence boundaries where possible, never span a paragraph break once half full, and
    repeat up to ``overlap`` tokens of whole sentences from the previous chunk.

    Every chunk satisfies ``text[chunk.start:chunk.end] == chunk.text``.
    """
    if size < 8:
        raise ValueError("chunk size must be at least 8 tokens")
    overlap = max(0, min(overlap, size // 2))
    units = _units(text, size)
    paras = [_para_index(text, a) for a, _ in units]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units):
            crosses = paras[j + 1] != paras[j]
            if crosses and count_tokens(text[units[i][0]:units[j][1]]) >= size // 2:
                break
            if count_tokens(text[units[i][0]:units[j + 1][1]]) > size:
                break
            j += 1
        spans.append((units[i][0], units[j][1]))
        if j + 1 >= len(units):
            break
        nxt = j + 1
        if overlap and paras[j + 1] == paras[j]:
            k = j
            while k > i and count_tokens(text[units[k][0]:units[j][1]]) <= overlap:
                k -= 1
            nxt = k + 1 if i < k + 1 <= j else j + 1
            # the next chunk must reach past this one: shed overlap that leaves no room
            while nxt <= j and count_tokens(text[units[nxt][0]:units[j + 1][1]]) > size:
                nxt += 1
        i = nxt
    seen: dict[str, int] = {}
    chunks = []
    for a, b in spans:
        piece = text[a:b]
        occ = seen.get(piece, 0)
        seen[piece] = occ + 1
        chunks.append(Chunk(chunk_id(source, piece, occ), source, a, b, piece))
    return chunks


def _para_index(text: str, pos: int) -> int:
    return len(_PARA.findall(text, 0, pos))


def _units(text: str, size: int) -> list[tuple[int, int]]:
    """Sentences, with any sentence longer than ``size`` tokens cut at word boundaries."""
    out: list[tuple[int, int]] = []
    for a, b in sentence_spans(text):
        if count_tokens(text[a:b]) <= size:
            out.append((a, b))
        else:
            out.extend(_split_long(text, a, b, size))
    return out


def _split_long(text: str, a: int, b: int, size: int) -> list[tuple[int, int]]:
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[a:b])]
    words = [(a + s, a + e) for s, e in words]
    pieces: list[tuple[int, int]] = []
    for s, e in words:  # a single "word" longer than size (e.g. a URL or base64) is cut by chars
        while count_tokens(text[s:e]) > size:
            cut = s + max(1, (e - s) * size // (2 * count_tokens(text[s:e])))
            pieces.append((s, cut))
            s = cut
        pieces.append((s, e))
    out: list[tuple[int, int]] = []
    start, end = pieces[0]
    for s, e in pieces[1:]:
        if count_tokens(text[start:e]) <= size:
            end = e
        else:
            out.append((start, end))
            start, end = s, e
    out.append((start, end))
    return out
