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
