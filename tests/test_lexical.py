"""The on-disk lexical index: kept in step with the vector store, incrementally."""

from rag.ingestion import ingest
from rag.lexical import LexicalIndex
from rag.retrieval import HybridSearcher
from rag.store import make_store


def _ids(index: LexicalIndex) -> set[str]:
    return {c.id for c in index.chunks()}


def test_ingest_writes_the_lexical_index_in_step_with_the_store(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    store = make_store(settings)
    index = LexicalIndex(store.lexical_path)
    assert index.state == store.state
    assert _ids(index) == {c.id for c in store.all_chunks()}
    hits = index.search("Who was the chief engineer?", 3)
    assert hits and "engineer" in hits[0][0].text.lower()
    assert index.search("the of and", 3) == []  # stopwords only: nothing to match


def test_a_changed_file_updates_the_index_in_place(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    ferry = settings.corpus_dir / "ferry.txt"
    ferry.write_text(ferry.read_text() + "\n\nA museum about the ferry opened in 1999.\n")
    ingest(settings=settings, embeddings=embeddings, progress=False)
    store = make_store(settings)
    index = LexicalIndex(store.lexical_path)
    assert index.state == store.state
    assert _ids(index) == {c.id for c in store.all_chunks()}
    (chunk, _), *_ = index.search("museum 1999", 1)
    assert "museum" in chunk.text and chunk.source == "ferry.txt"
    text = ferry.read_text()
    assert text[chunk.start:chunk.end] == chunk.text  # offsets follow the new file

    ferry.unlink()
    ingest(settings=settings, embeddings=embeddings, progress=False)
    assert index.search("museum", 3) == []
    assert index.doc_freq("museum") == 0


def test_an_index_out_of_step_is_rebuilt_from_the_store_on_first_use(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    store = make_store(settings)
    stale = LexicalIndex(store.lexical_path)
    stale.rebuild([], ("some-other-collection", 7))  # as if an ingest died half-way
    searcher = HybridSearcher(store, embeddings, settings)
    index = searcher.lexical()
    assert index.state == store.state
    assert _ids(index) == {c.id for c in store.all_chunks()}
    assert searcher.search("chief engineer")[0].lexical_score


def test_vocabulary_questions_answer_from_disk(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    index = LexicalIndex(make_store(settings).lexical_path)
    assert index.doc_freq("engineer") >= 1
    assert index.knows("engineers")  # another ending of a corpus word
    assert not index.knows("airbus")
    first = index.first_chunk("ferry.txt")
    assert first is not None and first.start == min(
        c.start for c in index.chunks() if c.source == "ferry.txt")
