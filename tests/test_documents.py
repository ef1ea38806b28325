"""Listing and removing indexed documents (``Assistant.documents/remove``, ``rag list``,
``rag remove``): real Chroma on disk, the real embedder and BM25 index; the model is scripted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import rag.store
from rag import Assistant, UnknownDocument
from rag.cli import main
from rag.doctor import OK, diagnose
from rag.lexical import LexicalIndex


@pytest.fixture
def cli_env(settings, monkeypatch):
    """``rag …`` run in this process against the test's corpus and store."""
    monkeypatch.setenv("RAG_STORE_DIR", str(settings.store_dir))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(settings.corpus_dir))
    monkeypatch.setenv("RAG_MODEL_DIR", str(settings.model_dir))
    monkeypatch.delenv("RAG_CONFIG", raising=False)


def sources(passages) -> set[str]:
    return {p.source for p in passages}


def test_documents_lists_each_file_with_chunks_size_and_time(make, corpus):
    before = datetime.now(UTC) - timedelta(seconds=2)
    assistant, _ = make()
    docs = assistant.documents()
    assert [d.source for d in docs] == ["ferry.txt", "harbor-bridge.md"]
    stored = assistant.store.all_chunks()
    for d in docs:
        assert d.root == str(corpus.resolve())
        assert d.chunks == sum(c.source == d.source for c in stored) > 0
        assert d.bytes == (corpus / d.source).stat().st_size
        assert before <= datetime.fromisoformat(d.indexed_at) <= datetime.now(UTC)
    (corpus / "ferry.txt").unlink()
    assert assistant.documents()[0].bytes is None  # indexed, gone from disk


def test_an_index_written_before_indexed_at_existed_still_lists(settings, embeddings,
                                                                monkeypatch):
    old_meta = rag.store._meta
    with monkeypatch.context() as m:  # what an older version wrote: no indexed_at
        m.setattr(rag.store, "_meta", lambda *a: {k: v for k, v in old_meta(*a).items()
                                                  if k != "indexed_at"})
        Assistant(settings, embeddings=embeddings).ingest(progress=False)
    docs = Assistant(settings, embeddings=embeddings).documents()
    assert len(docs) == 2 and all(d.indexed_at is None and d.chunks for d in docs)


def test_a_removed_document_is_never_retrieved_nor_answered_from(make, settings):
    assistant, llm = make("It carried 47,000 passengers a day [1].")
    reader = Assistant(settings, embeddings=assistant.embeddings)  # another store, opened
    assert "ferry.txt" in sources(reader.retrieve("47,000 passengers a day"))  # and used
    removed = assistant.remove("ferry.txt")
    assert removed == 1 and removed.document.source == "ferry.txt"
    assert "come back at the next ingest" in removed.message
    assert (settings.corpus_dir / "ferry.txt").exists()  # the user's file is never touched

    assert [d.source for d in assistant.documents()] == ["harbor-bridge.md"]
    for a in (assistant, reader):  # dense and BM25, in this store and in another one
        assert "ferry.txt" not in sources(a.retrieve("47,000 passengers a day ferry"))
    store = assistant.store
    dense = store.query(assistant.embeddings.encode(["Tern Ferry Company passengers"])[0], 10)
    assert "ferry.txt" not in sources(dense)
    lexical = LexicalIndex(store.lexical_path)
    try:  # the lexical index is in step: same generation, same ids, no ferry terms
        assert lexical.state == store.state and lexical.ids() == store.ids()
        assert all(c.source != "ferry.txt" for c, _ in lexical.search("passengers ferry", 10))
        assert lexical.doc_freq("47,000") == 0
    finally:
        lexical.close()

    answer = assistant.ask("How many passengers did the Tern Ferry Company carry?")
    prompts = " ".join(m["content"] for call in llm.calls for m in call)
    assert "47,000" not in prompts  # the whole-corpus context no longer holds it
    assert answer.abstained or all(c.source != "ferry.txt" for c in answer.citations)

    diagnosis = diagnose(settings, repair=False)  # what `rag doctor --check` runs
    assert diagnosis.healthy, diagnosis.report()
    status = {c.name: c.status for c in diagnosis.checks}
    assert status["stored files"] == status["lexical index"] == status["query"] == OK

    report = assistant.ingest(progress=False)  # the file is still in the corpus: it returns
    assert report.added == 1 and "ferry.txt" in sources(assistant.retrieve("47,000 passengers"))


def test_removing_an_upload_deletes_the_uploaded_copy(make, settings, corpus):
    assistant, _ = make()
    uploads = settings.uploads_dir
    uploads.mkdir(parents=True)
    copy = uploads / "ferry.txt"  # the same name as a corpus file, another text
    copy.write_text("The night ferry to Gull Island leaves at 23:10 from pier 4.\n")
    (uploads / "notes.txt").write_text("The Zorblat lantern festival is held every March.\n")
    assistant.ingest([copy, uploads / "notes.txt"], progress=False)
    assert len(assistant.documents()) == 4

    removed = assistant.remove("notes.txt")
    assert removed.deleted_copy == uploads / "notes.txt" and not removed.deleted_copy.exists()
    assert "uploaded copy was deleted" in removed.message
    assert "notes.txt" not in sources(assistant.retrieve("Zorblat lantern festival"))

    with pytest.raises(UnknownDocument, match="names 2 indexed documents"):
        assistant.remove("ferry.txt")  # in the corpus and in the uploads: which one?
    assert assistant.remove(str(copy)) == 1 and not copy.exists()
    assert "Gull Island" not in " ".join(p.text for p in assistant.retrieve("night ferry"))
    assert (corpus / "ferry.txt").exists()
    assert [(d.source, d.root) for d in assistant.documents()] == [
        ("ferry.txt", str(corpus.resolve())), ("harbor-bridge.md", str(corpus.resolve()))]


def test_an_unknown_name_is_refused_with_close_matches_and_nothing_changes(make):
    assistant, _ = make()
    state = assistant.store.state
    with pytest.raises(UnknownDocument, match="close matches: harbor-bridge.md"):
        assistant.remove("harbour-bridge.md")
    with pytest.raises(UnknownDocument, match="no indexed document"):
        assistant.remove("/nowhere/at/all.pdf")
    with pytest.raises(UnknownDocument):
        assistant.remove("  ")
    assert assistant.store.state == state and len(assistant.documents()) == 2


def test_cli_list_and_remove(make, cli_env, capsys, settings):
    make()
    assert main(["list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["SOURCE", "CHUNKS", "BYTES", "INDEXED"]
    assert [line.split()[0] for line in table[1:]] == ["ferry.txt", "harbor-bridge.md"]

    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [set(d) for d in listed] == [{"source", "root", "chunks", "bytes", "indexed_at"}] * 2

    assert main(["remove", "ferrys.txt"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "ferry.txt" in err and "Traceback" not in err

    assert main(["remove", str(settings.corpus_dir / "ferry.txt")]) == 0
    assert "Removed ferry.txt" in capsys.readouterr().out
    assert main(["list", "--json"]) == 0
    assert [d["source"] for d in json.loads(capsys.readouterr().out)] == ["harbor-bridge.md"]
    assert main(["doctor", "--check"]) == 0  # sound; the corpus file is only 'new' again
    assert "STALE    sources: 1 new (ferry.txt)" in capsys.readouterr().out
