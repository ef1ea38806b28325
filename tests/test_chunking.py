import random
import re
import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import chunk_id, chunk_text
from rag.text import count_tokens, sentence_spans

from .conftest import ARTICLE

text_strategy = st.lists(
    st.sampled_from(list("abc XYZ.,!?\n\t'’“”$3–é漢") + ["Dr. ", "U.S. ", "\n\n", "word "]),
    max_size=300).map("".join)


@given(text_strategy, st.integers(8, 64), st.integers(0, 40))
@settings(max_examples=150, deadline=None)
def test_every_chunk_is_its_exact_source_slice(text, size, overlap):
    for c in chunk_text(text, "doc.txt", size, overlap):
        assert text[c.start:c.end] == c.text
        assert c.text.strip() == c.text and c.text


@given(text_strategy, st.integers(8, 64))
@settings(max_examples=100, deadline=None)
def test_chunks_cover_all_text_in_order(text, size):
    chunks = chunk_text(text, "doc.txt", size, 0)
    covered = "".join(text[c.start:c.end] for c in chunks)
    assert "".join(covered.split()) == "".join(text.split())


def test_article_chunks_respect_the_token_budget_and_sentence_boundaries():
    text = ARTICLE.read_text()
    chunks = chunk_text(text, "a.txt", 96, 48)
    starts = {a for a, _ in sentence_spans(text)}
    ends = {b for _, b in sentence_spans(text)}
    assert 10 <= len(chunks) <= 30
    for c in chunks:
        assert count_tokens(c.text) <= 96
        assert c.start in starts and c.end in ends


def test_overlap_repeats_a_whole_sentence_within_a_paragraph():
    text = ARTICLE.read_text()
    chunks = chunk_text(text, "a.txt", 96, 48)
    overlapping = [(a, b) for a, b in zip(chunks, chunks[1:], strict=False) if b.start < a.end]
    assert overlapping, "expected some chunks to share a sentence with their predecessor"
    for a, b in overlapping:
        assert "\n" not in text[b.start:a.end]


def test_a_sentence_longer_than_the_budget_is_cut_at_word_boundaries():
    text = " ".join(f"word{i}" for i in range(400)) + "."
    chunks = chunk_text(text, "long.txt", 32, 0)
    assert len(chunks) > 5
    for c in chunks:
        assert count_tokens(c.text) <= 32
        assert text[c.start:c.end] == c.text


def test_ids_are_stable_and_depend_on_source_and_content():
    text = "One sentence here. Another one there."
    a = chunk_text(text, "x.txt", 16, 0)
    assert [c.id for c in a] == [c.id for c in chunk_text(text, "x.txt", 16, 0)]
    assert a[0].id != chunk_text(text, "y.txt", 16, 0)[0].id
    assert chunk_id("x.txt", "same") != chunk_id("x.txt", "same", occurrence=1)


def test_repeated_text_gets_distinct_ids():
    text = "Same words again.\n\nSame words again."
    chunks = chunk_text(text, "x.txt", 8, 0)
    assert len(chunks) == 2 and chunks[0].id != chunks[1].id


# --- the linear chunker against the step-by-step specification --------------------------------


def reference_chunks(text, size, overlap):
    """The original chunker (quadratic: it re-counts each growing span and re-scans the text
    for paragraph breaks before every sentence) as (start, end) spans; the linear one must
    produce the same. The only change: a character cut of an over-long word is halved until
    it fits the budget (the original could emit a chunk of 140 tokens at size 96)."""
    overlap = max(0, min(overlap, size // 2))
    units = []
    for a, b in sentence_spans(text):
        if count_tokens(text[a:b]) <= size:
            units.append((a, b))
            continue
        pieces = []
        for m in re.finditer(r"\S+", text[a:b]):
            s, e = a + m.start(), a + m.end()
            while count_tokens(text[s:e]) > size:
                cut = s + max(1, (e - s) * size // (2 * count_tokens(text[s:e])))
                while cut - s > 1 and count_tokens(text[s:cut]) > size:
                    cut = s + (cut - s) // 2
                pieces.append((s, cut))
                s = cut
            pieces.append((s, e))
        start, end = pieces[0]
        for s, e in pieces[1:]:
            if count_tokens(text[start:e]) <= size:
                end = e
            else:
                units.append((start, end))
                start, end = s, e
        units.append((start, end))
    paras = [len(re.findall(r"\n\s*\n|\n", text[:a])) for a, _ in units]
    spans = []
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
            while nxt <= j and count_tokens(text[units[nxt][0]:units[j + 1][1]]) > size:
                nxt += 1
        i = nxt
    return spans


@given(text_strategy, st.integers(8, 64), st.integers(0, 40))
@settings(max_examples=150, deadline=None)
def test_chunks_match_the_step_by_step_reference(text, size, overlap):
    assert [(c.start, c.end) for c in chunk_text(text, "doc.txt", size, overlap)] == \
        reference_chunks(text, size, overlap)


@pytest.mark.parametrize("size,overlap", [(96, 48), (64, 8), (32, 16), (200, 100)])
def test_article_chunks_match_the_step_by_step_reference(size, overlap):
    text = ARTICLE.read_text()
    assert [(c.start, c.end) for c in chunk_text(text, "a.txt", size, overlap)] == \
        reference_chunks(text, size, overlap)


def test_a_word_denser_at_its_start_is_still_cut_within_the_budget():
    text = "Look: " + "🎉" * 40 + "a" * 900 + " done."
    for size in (8, 32, 96):
        chunks = chunk_text(text, "emoji.txt", size, 0)
        assert all(count_tokens(c.text) <= size for c in chunks), size
        assert "".join(c.text for c in chunks).replace(" ", "") == text.replace(" ", "")


# --- linear time on pathological input --------------------------------------------------------


def _check_invariants(text, chunks, size):
    assert chunks
    assert chunks[0].start == len(text) - len(text.lstrip())
    assert chunks[-1].end == len(text.rstrip())
    for c in chunks:
        assert text[c.start:c.end] == c.text
        assert count_tokens(c.text) <= size
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert a.start < b.start and a.end < b.end
        assert b.start <= a.end or not text[a.end:b.start].strip()  # nothing skipped
    assert len({c.id for c in chunks}) == len(chunks)


@pytest.mark.parametrize("kind", ["initials", "base64"])
def test_five_megabytes_of_pathological_text_chunk_in_linear_time(kind):
    """'x. ' repeated is one 5 MB sentence (an initial never ends one); base64 is one 5 MB
    word. The original took 77 s for 100 kB of the first and 17 s for the second, growing
    with the square of the size (days at 5 MB); now about a second per MB. The bound is
    generous: a guard against quadratic blowup, not a speed claim."""
    n = 5_000_000
    if kind == "initials":
        text = "x. " * (n // 3)
    else:
        alphabet = string.ascii_letters + string.digits + "+/"
        text = "".join(random.Random(0).choices(alphabet, k=n))
    t0 = time.process_time()
    chunks = chunk_text(text, f"{kind}.txt", 96, 48)
    assert time.process_time() - t0 < 45
    _check_invariants(text, chunks, 96)
