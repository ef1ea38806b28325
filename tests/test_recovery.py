"""Recovery from damaged and changing indexes: real files on disk, real ``rag`` processes, the
real embedding model (never the LLM: answers go through a scripted fake).

- A process answering questions while another process's ingest removes files keeps answering,
  with live chunks only (issue 16, finding 4).
- A garbage lexical index is rebuilt on ask and on ingest; a truncated ``chroma.sqlite3`` or
  HNSW segment gives a message naming the fix, never a stack trace nor "unchanged";
  ``--rebuild`` works from any of these states, and a ``kill -9`` during a rebuild leaves the old
  index answering; ``rag doctor`` says what it finds and what it repairs (finding 5).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag import Assistant, Settings, StoreError
from rag.doctor import DAMAGED, OK, REPAIRED, STALE, diagnose
from rag.ingestion import ingest
from rag.lexical import LexicalIndex
from rag.retrieval import HybridSearcher
from rag.store import current_location, make_store

from .conftest import ARTICLE, PROJECT
from .support import rotated_corpus

GARBAGE = b"this is not an SQLite database " * 200


# -- helpers -------------------------------------------------------------------------------
def _env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "RAG_STORE_DIR": str(settings.store_dir),
            "RAG_CORPUS_DIR": str(settings.corpus_dir), "HF_HUB_OFFLINE": "1"}


def _rag(settings: Settings, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], env=_env(settings),
                          cwd=PROJECT, capture_output=True, text=True, timeout=timeout)


def _assert_clear_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit code 1 (a runtime error) with one ``error: …`` line naming the fix, and no stack
    trace."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "error: " in proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def _lexical_in_step(settings: Settings) -> bool:
    store = make_store(settings)
    lexical = LexicalIndex(store.lexical_path)
    try:
        ids = {c.id for c in lexical.chunks()}
        return lexical.state == store.state and ids == {c.id for c in store.all_chunks()}
    finally:
        lexical.close()


def _statuses(settings: Settings, repair: bool = True) -> dict[str, str]:
    diagnosis = diagnose(settings, repair=repair)
    print(diagnosis.report())
    return {c.name: c.status for c in diagnosis.checks}


def _answer(settings: Settings, embeddings, fake_llm):  # noqa: ANN001, ANN202
    llm = fake_llm("Margit Oduya was the chief engineer [1].")
    return Assistant(settings, llm=llm, embeddings=embeddings).ask(
        "Who was the chief engineer of the bridge?")


def _article_corpus(dest: Path, n_files: int) -> Path:
    """``n_files`` distinct files from the article's lines, rotated (21 chunks each)."""
    lines = [line for line in ARTICLE.read_text().splitlines() if line.strip()]
    return rotated_corpus(dest, lines, n_files)


def _queued(db: Path) -> int:
    """Chunk writes Chroma has logged in ``db`` so far, read-only."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as con:
            return con.execute("SELECT count(*) FROM embeddings_queue").fetchone()[0]
    except sqlite3.Error:
        return 0


# -- finding 4: a reader process while another process removes files -----------------------
READER = """
import json, sys
from rag import Settings
from rag.embeddings import default_embeddings
from rag.retrieval import HybridSearcher
from rag.store import make_store

settings = Settings.load()
searcher = HybridSearcher(make_store(settings), default_embeddings(), settings)
print("ready", flush=True)
for line in sys.stdin:
    try:
        dense = searcher.store.query(searcher.embeddings.encode([line.strip()])[0], 10)
        hits = searcher.search(line.strip(), k=10)
        print(json.dumps({"dense": [p.chunk_id for p in dense],
                          "hits": [p.chunk_id for p in hits],
                          "sources": sorted({p.source for p in dense + hits}),
                          "where": str(searcher.store.location.path)}), flush=True)
    except Exception as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
"""
QUESTION = "How much is the Boeing deal worth for aircraft purchases?"


def test_a_reader_process_keeps_answering_with_live_chunks_while_files_are_removed(
        tmp_path, embeddings):
    corpus = _article_corpus(tmp_path / "corpus", 6)
    settings = Settings.load(corpus_dir=corpus, store_dir=tmp_path / "store")
    ingest(settings=settings, embeddings=embeddings, progress=False)
    reader = subprocess.Popen([sys.executable, "-c", READER], env=_env(settings), cwd=PROJECT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, bufsize=1)
    assert reader.stdin is not None and reader.stdout is not None

    def ask() -> dict:
        reader.stdin.write(QUESTION + "\n")
        out = json.loads(reader.stdout.readline())
        assert "error" not in out, out["error"]  # never "'NoneType' object is not subscr…"
        return out

    try:
        assert reader.stdout.readline().strip() == "ready"
        before = ask()
        assert len(before["dense"]) == 10
        gone = {"report-00.txt", "report-01.txt"}
        assert gone & set(before["sources"])  # the dense top 10 holds chunks to be deleted
        for name in gone:
            (corpus / name).unlink()

        # process B: the real `rag ingest`, while A keeps answering
        writer = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest"],
                                  env=_env(settings), cwd=PROJECT, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        during = 0
        while writer.poll() is None:
            ask()
            during += 1
        assert writer.returncode == 0 and "2 removed" in writer.stdout.read()

        live = {c.id for c in make_store(settings).all_chunks()}
        after = ask()
        assert not gone & set(after["sources"])
        assert set(after["dense"] + after["hits"]) <= live
        assert len(after["dense"]) == 10  # the index was reread, not just filtered

        # and a rebuild by another process: A follows it to the new index
        rebuilt = _rag(settings, "ingest", "--rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        moved = ask()
        assert moved["where"] != after["where"]
        assert set(moved["dense"] + moved["hits"]) <= live and len(moved["dense"]) == 10
        print(f"{during} questions answered during the removal")
    finally:
        reader.stdin.close()
        reader.wait(60)


# -- finding 5: a damaged lexical index ----------------------------------------------------
def test_a_garbage_lexical_index_is_rebuilt_on_ask_and_on_ingest(settings, embeddings,
                                                                 fake_llm):
    first = ingest(settings=settings, embeddings=embeddings, progress=False)
    path = make_store(settings).lexical_path
    path.write_bytes(GARBAGE)
    answer = _answer(settings, embeddings, fake_llm)
    assert not answer.abstained and "Margit Oduya" in answer.citations[0].quote
    assert _lexical_in_step(settings)

    path.write_bytes(GARBAGE)
    again = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert (again.unchanged, again.embedded, again.chunks) == (2, 0, first.chunks)
    assert _lexical_in_step(settings)


def test_rebuild_works_with_a_garbage_lexical_index(settings, embeddings):
    first = ingest(settings=settings, embeddings=embeddings, progress=False)
    make_store(settings).lexical_path.write_bytes(GARBAGE)
    proc = _rag(settings, "ingest", "--rebuild")
    assert proc.returncode == 0, proc.stderr
    assert "2 added" in proc.stdout
    assert make_store(settings).count() == first.chunks
    assert _lexical_in_step(settings)
    assert not (settings.store_dir / "chroma.sqlite3").exists()  # the old index is gone


# -- finding 5: a damaged Chroma store -----------------------------------------------------
def test_a_truncated_chroma_sqlite_names_the_fix_and_rebuild_answers(settings, embeddings,
                                                                     fake_llm):
    first = ingest(settings=settings, embeddings=embeddings, progress=False)
    db = settings.store_dir / "chroma.sqlite3"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])

    _assert_clear_error(_rag(settings, "ingest"), "damaged", "rag ingest --rebuild")
    with pytest.raises(StoreError, match=r"damaged.*rag ingest --rebuild"):
        _answer(settings, embeddings, fake_llm)
    assert _statuses(settings)["vector store files"] == DAMAGED

    proc = _rag(settings, "ingest", "--rebuild")  # never opens the damaged file
    assert proc.returncode == 0, proc.stderr
    assert not db.exists()
    answer = _answer(settings, embeddings, fake_llm)
    assert not answer.abstained and "Margit Oduya" in answer.citations[0].quote
    assert make_store(settings).count() == first.chunks
    assert set(_statuses(settings).values()) == {OK}


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, embeddings) -> tuple[Settings, int]:
    """52 files, ~1,100 chunks: enough for Chroma to save its HNSW segment to disk (it keeps
    fewer than 1,000 in its log only)."""
    root = tmp_path_factory.mktemp("big")
    settings = Settings.load(corpus_dir=_article_corpus(root / "corpus", 52),
                             store_dir=root / "store")
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    return settings, report.chunks


def _copy(big: tuple[Settings, int], tmp_path: Path) -> Settings:
    settings = big[0].replace(store_dir=tmp_path / "store")
    shutil.copytree(big[0].store_dir, settings.store_dir)
    return settings


def _segment(settings: Settings) -> Path:
    (header,) = settings.store_dir.glob("*/header.bin")
    count = struct.unpack_from("<q", header.read_bytes(), 20)[0]
    assert count >= 1000, "the HNSW segment was not saved: a test without a subject"
    return header.parent


@pytest.mark.parametrize("name", ["data_level0.bin", "header.bin", "link_lists.bin",
                                  "length.bin", "index_metadata.pickle"])
def test_a_truncated_hnsw_file_names_the_fix_and_is_never_unchanged(big, tmp_path, name):
    settings = _copy(big, tmp_path)
    path = _segment(settings) / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    proc = _rag(settings, "ingest")  # its own process: a crash would show as a signal here
    assert "unchanged" not in proc.stdout
    _assert_clear_error(proc, "damaged", "rag ingest --rebuild")
    with pytest.raises(StoreError, match=r"damaged.*rag ingest --rebuild"):
        make_store(settings)
    checks = _statuses(settings)
    assert DAMAGED in checks.values() and REPAIRED not in checks.values()


def test_kill_9_during_a_rebuild_leaves_the_old_index_answering(big, tmp_path, embeddings):
    settings = _copy(big, tmp_path)
    count = big[1]
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "ingest", "--rebuild"],
                            env=_env(settings), cwd=PROJECT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    aside: list[Path] = []
    try:  # the event: the new index, built aside, has chunks written
        while proc.poll() is None and not (aside and _queued(aside[0] / "chroma.sqlite3")):
            aside = list(settings.store_dir.glob("index-*"))
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL  # killed mid-rebuild, not finished
    assert 0 < _queued(aside[0] / "chroma.sqlite3") < count
    print(f"killed with {_queued(aside[0] / 'chroma.sqlite3')} of {count} chunks aside")

    assert current_location(settings).path == settings.store_dir  # still the old index
    store = make_store(settings)
    assert store.count() == count
    hits = HybridSearcher(store, embeddings, settings).search("Boeing deal worth")
    assert hits and all(h.source.startswith("report-") for h in hits)

    doctor = _rag(settings, "doctor")
    assert doctor.returncode == 0, doctor.stdout
    assert "REPAIRED leftovers" in doctor.stdout and not aside[0].exists()
    again = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert (again.unchanged, again.embedded, again.chunks) == (52, 0, count)


# -- rag doctor ----------------------------------------------------------------------------
def test_doctor_on_a_healthy_store_then_stale_sources_then_a_lexical_it_repairs(settings,
                                                                               embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    proc = _rag(settings, "doctor")
    assert proc.returncode == 0, proc.stdout
    assert "DAMAGED" not in proc.stdout and "The index is sound." in proc.stdout
    for name in ("vector store", "stored files", "sources", "lexical index", "query"):
        assert f"OK       {name}" in proc.stdout

    (settings.corpus_dir / "ferry.txt").write_text("The ferry now runs at night.\n")
    assert _statuses(settings)["sources"] == STALE

    lexical = LexicalIndex(make_store(settings).lexical_path)
    lexical.apply([], [next(iter(lexical.chunks())).id], make_store(settings).state)
    lexical.close()  # a chunk missing, with the state in step: only the id check sees it
    assert _statuses(settings, repair=False)["lexical index"] == DAMAGED
    assert _statuses(settings)["lexical index"] == REPAIRED
    assert _lexical_in_step(settings)


def test_doctor_exit_codes_on_a_missing_and_a_damaged_store(settings, embeddings):
    missing = _rag(settings, "doctor")
    assert missing.returncode == 1 and "no index found" in missing.stdout
    ingest(settings=settings, embeddings=embeddings, progress=False)
    (settings.store_dir / "chroma.sqlite3").write_bytes(GARBAGE)
    damaged = _rag(settings, "doctor")
    assert damaged.returncode == 1, damaged.stdout
    assert "DAMAGED" in damaged.stdout and "rag ingest --rebuild" in damaged.stdout
    assert "Traceback" not in damaged.stdout + damaged.stderr


# -- client/server mode --------------------------------------------------------------------
def test_rebuild_through_a_chroma_server_switches_readers_to_the_new_collection(
        settings, chroma_server, embeddings, request):
    server = settings.replace(chroma_url=chroma_server,
                              collection=f"r{abs(hash(request.node.name))}")
    first = ingest(settings=server, embeddings=embeddings, progress=False)
    reader = make_store(server)
    old = reader.state
    vector = embeddings.encode(["chief engineer of the bridge"])[0]

    report = ingest(settings=server, embeddings=embeddings, rebuild=True, progress=False)
    assert report.added == 2 and report.chunks == first.chunks
    assert current_location(server).collection != server.collection  # the pointer moved
    assert reader.state[0] != old[0]  # the reader followed it: the old collection is gone
    assert len(reader.query(vector, 4)) == 4
    assert _lexical_in_step(server)
    assert set(_statuses(server).values()) == {OK}
