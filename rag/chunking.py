"""Token-aware chunking on sentence and paragraph boundaries, with exact character offsets.

Linear time. Every decision uses exact token counts (``count_tokens`` of the very slice in
question), but a chunk is not grown one unit at a time, re-counting the whole span at each
step. One encoding of the whole text gives every token's character span, from which the count
of any slice is estimated in O(log n); each greedy "how far does it fit" step jumps to the
estimated answer and confirms it with exact counts on either side of it. cl100k splits text
at word boundaries before merging bytes into tokens, so the count of a span of whole words
only grows as the span grows: the confirmed answer is the one the step-by-step scan found.
(Spans that end inside a word cut by characters are the exception; those are tried in order.)
"""

from __future__ import annotations

import hashlib
import itertools
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from .text import count_tokens, encoding, sentence_spans
from .types import Chunk

_PARA = re.compile(r"\n\s*\n|\n")
_WORD = re.compile(r"\S+")
# A run of non-space characters up to this long that is over the budget on its own is cut by
# characters in proportion to its token count, as always; a longer one (base64, minified code)
# is cut about half a budget of tokens at a time by the whole-text token spans.
_EXACT_CUT_CHARS = 1024


def chunk_id(source: str, text: str, occurrence: int = 0) -> str:
    """Stable id from the source path and the chunk's content (and which repeat of it this is)."""
    h = hashlib.sha256(f"{source}\0{occurrence}\0{text}".encode()).hexdigest()
    return h[:24]


def chunk_text(text: str, source: str, size: int = 96, overlap: int = 16) -> list[Chunk]:
    """Split ``text`` into chunks of at most ``size`` tokens (cl100k) that start and end on
    sentence boundaries where possible, never span a paragraph break once half full, and
    repeat up to ``overlap`` tokens of whole sentences from the previous chunk.

    Every chunk satisfies ``text[chunk.start:chunk.end] == chunk.text`` and
    ``count_tokens(chunk.text) <= size``.
    """
    if size < 8:
        raise ValueError("chunk size must be at least 8 tokens")
    overlap = max(0, min(overlap, size // 2))
    tokens = _TokenSpans(text)
    starts, ends, full = _units(text, size, tokens)
    n = len(starts)
    paras = _para_indices(text, starts)
    crosses = [paras[k + 1] != paras[k] for k in range(n - 1)]  # a line break after unit k
    next_cross = [n] * (n + 1)  # the first k' >= k with crosses[k']
    for k in range(n - 2, -1, -1):
        next_cross[k] = k if crosses[k] else next_cross[k + 1]
    # est. count of text[starts[x]:ends[y]] = before_end[y] - done_by_start[x]
    done_by_start = tokens.ending_by(starts).tolist()
    before_end = tokens.starting_before(ends).tolist()
    half = size // 2

    def over(x: int, y: int, limit: int) -> bool:
        return _over(text[starts[x]:ends[y]], limit)

    spans: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if full[i]:  # known: not even the next unit's first word fits after this one
            j = i
        else:  # add units while the chunk stays within ``size`` ...
            guess = bisect_right(before_end, done_by_start[i] + size, i + 1, n)
            j = _first_true(i + 1, n, guess, lambda k, i=i: over(i, k, size)) - 1
        # ... but stop at a line break once the chunk is half full
        if next_cross[i] < j:
            guess = bisect_right(before_end, done_by_start[i] + half - 1, i, j)
            filled = _first_true(i, j, guess, lambda k, i=i: over(i, k, half - 1))
            j = min(j, next_cross[filled])
        spans.append((starts[i], ends[j]))
        if j + 1 >= n:
            break
        nxt = j + 1
        if overlap and not crosses[j]:
            # repeat the trailing units of this chunk that fit in ``overlap`` tokens ...
            guess = bisect_left(done_by_start, before_end[j] - overlap, i + 1, j + 1)
            nxt = _first_true(i + 1, j + 1, guess, lambda k, j=j: not over(k, j, overlap))
            # ... but shed those that leave the next chunk no room to reach past this one
            guess = bisect_left(done_by_start, before_end[j + 1] - size, nxt, j + 1)
            nxt = _first_true(nxt, j + 1, guess, lambda k, j=j: not over(k, j + 1, size))
        i = nxt
    seen: dict[str, int] = {}
    chunks = []
    for a, b in spans:
        piece = text[a:b]
        occ = seen.get(piece, 0)
        seen[piece] = occ + 1
        chunks.append(Chunk(chunk_id(source, piece, occ), source, a, b, piece))
    return chunks


def _first_true(lo: int, hi: int, guess: int, pred: Callable[[int], bool]) -> int:
    """The first ``k`` in ``[lo, hi)`` with ``pred(k)`` (``hi`` if none), for a ``pred`` that
    is false up to some point and true from there on. ``guess`` is an estimate of the answer;
    ``pred`` is evaluated on either side of it and the guess moved until they disagree."""
    k = min(max(guess, lo), hi)
    if k > lo and pred(k - 1):
        k -= 1
        while k > lo and pred(k - 1):
            k -= 1
        return k
    while k < hi and not pred(k):
        k += 1
    return k


def _over(piece: str, limit: int) -> bool:
    """Whether ``count_tokens(piece) > limit``, without encoding when the length decides."""
    if 4 * len(piece) <= limit:  # a token is at least one UTF-8 byte, a character at most four
        return False
    if len(piece) > limit * _token_tables()[1]:  # a token is at most that many bytes
        return True
    return count_tokens(piece) > limit


@lru_cache(maxsize=1)
def _token_tables() -> tuple[np.ndarray, int]:
    """For each token id, the number of characters that start in it (UTF-8 lead bytes); and
    the longest token in bytes."""
    enc = encoding()
    continuation = bytes(range(0x80, 0xC0))
    chars = np.zeros(enc.max_token_value + 1, dtype=np.int64)
    longest = 1
    for t in range(enc.max_token_value + 1):
        try:
            b = enc.decode_single_token_bytes(t)
        except KeyError:  # a gap between the ordinary and the special tokens
            continue
        chars[t] = len(b.translate(None, continuation))
        longest = max(longest, len(b))
    return chars, longest


class _TokenSpans:
    """The character spans of the tokens of a whole text (one encoding). The number of them
    that overlap a slice estimates the slice's own token count closely: they differ only where
    the slice's edges cut a token of the whole text."""

    def __init__(self, text: str) -> None:
        ids = encoding().encode_to_numpy(text, disallowed_special=())
        chars = _token_tables()[0][ids]
        self.ends = np.cumsum(chars)
        self.starts = self.ends - chars

    def ending_by(self, positions: list[int] | np.ndarray) -> np.ndarray:
        """How many tokens end at or before each position."""
        return np.searchsorted(self.ends, positions, side="right")

    def starting_before(self, positions: list[int] | np.ndarray) -> np.ndarray:
        """How many tokens start before each position."""
        return np.searchsorted(self.starts, positions, side="left")


def _para_indices(text: str, starts: list[int]) -> list[int]:
    """For each position, the number of line breaks (runs of blank lines counting once)
    before it: one pass over the text, not one per position."""
    breaks = [m.end() for m in _PARA.finditer(text)]
    return [bisect_right(breaks, a) for a in starts]


def _units(text: str, size: int, tokens: _TokenSpans
           ) -> tuple[list[int], list[int], list[bool]]:
    """Starts and ends of the sentences, with any sentence longer than ``size`` tokens cut at
    word boundaries; and for each unit, whether it is known that the unit and the first word
    after it are over ``size`` tokens together (the pieces of a long sentence but its last)."""
    starts: list[int] = []
    ends: list[int] = []
    full: list[bool] = []
    for a, b in sentence_spans(text):
        if not _over(text[a:b], size):
            starts.append(a)
            ends.append(b)
            full.append(False)
        else:
            s, e = _split_long(text, a, b, size, tokens)
            starts += s
            ends += e
            full += [True] * (len(s) - 1) + [False]
    return starts, ends, full


def _split_long(text: str, a: int, b: int, size: int, tokens: _TokenSpans
                ) -> tuple[list[int], list[int]]:
    """``text[a:b]`` cut into pieces of at most ``size`` tokens: as many whole words as fit,
    and a single "word" longer than that (e.g. a URL or base64) cut by characters."""
    flat = np.fromiter(itertools.chain.from_iterable(m.span() for m in _WORD.finditer(text, a, b)),
                       dtype=np.int64)
    ws, we = flat[0::2], flat[1::2]
    # pieces that end where a word up to _EXACT_CUT_CHARS long was cut by characters
    in_word = np.zeros(len(ws), dtype=bool)
    long_words = np.flatnonzero(4 * (we - ws) > size).tolist()
    if long_words:
        parts: list[tuple[np.ndarray | list[int], np.ndarray | list[int],
                          np.ndarray | list[bool]]] = []
        prev = 0
        for w in long_words:
            parts.append((ws[prev:w], we[prev:w], in_word[prev:w]))
            cuts = _cut_word(text, int(ws[w]), int(we[w]), size, tokens)
            parts.append(([c[0] for c in cuts], [c[1] for c in cuts], [c[2] for c in cuts]))
            prev = w + 1
        parts.append((ws[prev:], we[prev:], in_word[prev:]))
        ws, we, in_word = (np.concatenate([np.asarray(p[n], dtype=dtype) for p in parts])
                           for n, dtype in enumerate((np.int64, np.int64, bool)))
    in_word_before = np.concatenate([[0], np.cumsum(in_word)])
    # join the pieces greedily: each run of them as long as it stays within ``size`` tokens
    done_by_start = tokens.ending_by(ws)
    before_end = tokens.starting_before(we)
    out_s: list[int] = []
    out_e: list[int] = []
    m = len(ws)
    p = 0
    while p < m:
        start = int(ws[p])

        def over(k: int, start: int = start) -> bool:
            return _over(text[start:int(we[k])], size)

        guess = p + 1 + int(np.searchsorted(before_end[p + 1:], done_by_start[p] + size,
                                            side="right"))
        q = _first_true(p + 1, m, guess, over)
        if in_word_before[q - 1] > in_word_before[p + 1]:
            # it passed over the end of a piece cut inside a word: the count of a span that
            # ends mid-word need not grow with it, so try each of them in order
            q = p + 1
            while q < m and not over(q):
                q += 1
        out_s.append(start)
        out_e.append(int(we[q - 1]))
        p = q
    return out_s, out_e


def _cut_word(text: str, s: int, e: int, size: int, tokens: _TokenSpans
              ) -> list[tuple[int, int, bool]]:
    """The non-space run ``text[s:e]`` as pieces of at most ``size`` tokens (one piece if it
    fits), each with whether it was cut in proportion to its token count (see
    _EXACT_CUT_CHARS)."""
    pieces: list[tuple[int, int, bool]] = []
    while True:
        exact = e - s <= _EXACT_CUT_CHARS
        if exact:
            n = count_tokens(text[s:e])
            if n <= size:
                break
            cut = s + max(1, (e - s) * size // (2 * n))
        else:  # about size/2 tokens of the whole text's encoding on from s
            first = int(np.searchsorted(tokens.ends, s, side="right"))
            k = min(first + size // 2, len(tokens.starts) - 1)
            cut = min(max(int(tokens.starts[k]), s + 1), s + _EXACT_CUT_CHARS)
        while cut - s > 1 and _over(text[s:cut], size):  # denser at its start than on average
            cut = s + (cut - s) // 2
        pieces.append((s, cut, exact))
        s = cut
    pieces.append((s, e, False))
    return pieces
