"""Ingestion against a real Chroma store on disk with the real embedding model."""

import json
import sqlite3
import subprocess
import sys

import pytest

import rag.ingestion
import rag.store
from rag import IngestBusy, Settings, StoreError
from rag.ingestion import ingest, ingest_lock
from rag.loaders import load_text
from rag.store import make_store

from .conftest import PROJECT
from .test_loaders import bomb_pdf, hidden_text_pdf, make_bad_name, make_nested, remove_nested


def test_first_ingest_embeds_every_chunk_and_offsets_match_the_source(settings, embeddings):
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert (report.added, report.updated, report.removed, report.unchanged) == (2, 0, 0, 0)
    assert report.embedded == report.chunks > 0
    for chunk in make_store(settings).all_chunks():
        text = load_text(settings.corpus_dir / chunk.source)
        assert text[chunk.start:chunk.end] == chunk.text


def test_reingesting_an_unchanged_corpus_embeds_nothing(settings, embeddings):
    first = ingest(settings=settings, embeddings=embeddings, progress=False)
    again = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert again.to_dict() | {"seconds": 0} == {
        "added": 0, "updated": 0, "removed": 0, "unchanged": 2, "embedded": 0, "seconds": 0}
    assert again.chunks == first.chunks


def test_a_changed_file_only_embeds_its_new_chunks(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    before = {c.id for c in make_store(settings).all_chunks()}
    ferry = settings.corpus_dir / "ferry.txt"
    ferry.write_text(ferry.read_text() + "\n\nA museum about the ferry opened in 1999.\n")
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    after = make_store(settings).all_chunks()
    new = {c.id for c in after} - before
    assert report.embedded == len(new) >= 1
    assert any("museum" in c.text for c in after)
    assert len({c.id for c in after}) == len(after)


def test_a_deleted_file_loses_its_chunks(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    (settings.corpus_dir / "ferry.txt").unlink()
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert report.removed == 1
    assert {c.source for c in make_store(settings).all_chunks()} == {"harbor-bridge.md"}


def test_bad_files_are_skipped_with_a_reason_and_the_rest_is_ingested(settings, embeddings):
    d = settings.corpus_dir
    (d / "binary.txt").write_bytes(b"\x00\x01\x02garbage")
    (d / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (d / "empty.md").write_text("   \n")
    (d / "image.png").write_bytes(b"\x89PNG")
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    reasons = {p.rsplit("/", 1)[-1]: why for p, why in report.skipped}
    assert "binary" in reasons["binary.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "no text" in reasons["empty.md"]
    assert "unsupported" in reasons["image.png"]
    assert "PDF" in reasons["broken.pdf"]
    assert report.added == 2


def test_symlink_leaving_the_corpus_is_skipped(settings, embeddings, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("Secret text outside the corpus.")
    (settings.corpus_dir / "link.txt").symlink_to(outside)
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert any("outside" in why for _, why in report.skipped)
    assert all(c.source != "link.txt" for c in make_store(settings).all_chunks())


def test_html_is_ingested_as_text_without_markup(settings, embeddings):
    (settings.corpus_dir / "page.html").write_text(
        "<html><head><script>alert(1)</script></head><body><p>The pier is 300 m long.</p>"
        "</body></html>")
    ingest(settings=settings, embeddings=embeddings, progress=False)
    texts = [c.text for c in make_store(settings).all_chunks() if c.source == "page.html"]
    assert texts == ["The pier is 300 m long."]


def test_a_missing_index_names_the_fix(tmp_path):
    with pytest.raises(StoreError, match="rag ingest"):
        make_store(Settings.load(store_dir=tmp_path / "nothing"))


def test_an_index_from_another_embedding_model_is_refused(settings, embeddings, monkeypatch):
    with monkeypatch.context() as m:  # an index written by a version with another model
        m.setattr(embeddings, "name", "other")
        ingest(settings=settings, embeddings=embeddings, progress=False)
    with pytest.raises(StoreError, match="--rebuild"):
        make_store(settings)
    report = ingest(settings=settings, embeddings=embeddings, rebuild=True, progress=False)
    assert report.added == 2 and make_store(settings).count() == report.chunks


def test_a_corrupt_index_file_names_the_fix(settings, embeddings):
    ingest(settings=settings, embeddings=embeddings, progress=False)
    db = settings.store_dir / "chroma.sqlite3"
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE collections")
    with pytest.raises(StoreError, match="rebuild"):
        make_store(settings)


def test_a_second_concurrent_ingest_is_refused_clearly(settings):
    with ingest_lock(settings), pytest.raises(IngestBusy, match="another ingest"):
        ingest(settings=settings, progress=False)


def test_cli_ingest_json_prints_exactly_the_summary_keys(settings, tmp_path):
    env_args = [sys.executable, "-m", "rag.cli", "ingest", str(settings.corpus_dir), "--json"]
    env = {"RAG_STORE_DIR": str(settings.store_dir), "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    out = subprocess.run(env_args, capture_output=True, text=True, cwd=PROJECT, env=env,
                         timeout=300, check=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(summary) == {"added", "updated", "removed", "unchanged", "embedded", "seconds"}
    assert summary["added"] == 2 and summary["embedded"] > 0


def test_a_file_over_the_size_limit_is_skipped_and_the_rest_ingested(settings, embeddings):
    (settings.corpus_dir / "huge.txt").write_text("The pier is long. " * 2000)
    small = settings.replace(max_file_bytes=10_000)
    report = ingest(settings=small, embeddings=embeddings, progress=False)
    reasons = {p.rsplit("/", 1)[-1]: why for p, why in report.skipped}
    assert "limit" in reasons["huge.txt"] or "large" in reasons["huge.txt"]
    assert report.added == 2


def test_dot_dot_paths_and_symlinked_folders_stay_inside_the_corpus(settings, embeddings,
                                                                    tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("The vault code is 4321.")
    (settings.corpus_dir / "linked").symlink_to(outside, target_is_directory=True)
    detour = settings.corpus_dir / ".." / settings.corpus_dir.name
    report = ingest([detour], settings=settings, embeddings=embeddings, progress=False)
    sources = {c.source for c in make_store(settings).all_chunks()}
    assert sources == {"ferry.txt", "harbor-bridge.md"}
    assert not any(".." in s for s in sources)
    assert any("outside" in why for _, why in report.skipped)
    again = ingest(settings=settings, embeddings=embeddings, progress=False)  # the plain path
    assert again.embedded == 0 and again.chunks == report.chunks


# --- hostile files (issue 16): each is skipped with its reason, the rest is ingested ---------

BRIDGE_QUESTION = "Who was the chief engineer of the Kestrel Harbor Bridge?"


def _search(settings, embeddings, question: str):
    from rag.retrieval import HybridSearcher

    return HybridSearcher(make_store(settings), embeddings, settings).search(question, 3)


@pytest.mark.parametrize("case", ["decompression bomb", "symlink loop", "non-UTF-8 name",
                                  "1000 nested folders", "chunker failure"])
def test_one_hostile_file_never_aborts_the_ingest(settings, embeddings, monkeypatch, caplog,
                                                  case):
    d = settings.corpus_dir
    expect: dict[str, str] = {}
    if case == "decompression bomb":
        (d / "bomb.pdf").write_bytes(bomb_pdf())
        expect = {"bomb.pdf": "LimitReachedError"}
    elif case == "symlink loop":
        (d / "loop1.txt").symlink_to("loop2.txt")
        (d / "loop2.txt").symlink_to("loop1.txt")
        (d / "sub").mkdir()
        (d / "sub" / "self").symlink_to("self", target_is_directory=True)
        expect = dict.fromkeys(["loop1.txt", "loop2.txt", "self"], "symlink loop")
    elif case == "non-UTF-8 name":
        make_bad_name(d)
        (d / "evil\nskipped forged.txt: fine.png").write_bytes(b"\x89PNG")
        expect = {"bad\\xffname.txt": "not valid UTF-8",
                  "evil\\x0askipped forged.txt: fine.png": "unsupported"}
    elif case == "1000 nested folders":
        deep = make_nested(d)
        (deep / "deep.txt").write_text("The lighthouse keeper's cat is called Biscuit.")
    else:
        (d / "poison.txt").write_text("This file breaks the chunker.")
        real = rag.ingestion.chunk_text

        def chunk_text(text: str, source: str, *args: object, **kwargs: object) -> list:
            if source == "poison.txt":
                raise RecursionError("maximum recursion depth exceeded")
            return real(text, source, *args, **kwargs)

        monkeypatch.setattr(rag.ingestion, "chunk_text", chunk_text)
        expect = {"poison.txt": "RecursionError"}
    try:
        report = ingest(settings=settings, embeddings=embeddings, progress=False)
    finally:
        if case == "1000 nested folders":
            remove_nested(d / "d")
    reasons = {p.rsplit("/", 1)[-1]: why for p, why in report.skipped}
    assert set(reasons) == set(expect) and len(report.skipped) == len(expect)
    for name, why in expect.items():
        assert why in reasons[name], reasons
    logged = [r.getMessage() for r in caplog.records if r.name == "rag.ingestion"]
    assert len(logged) == len(expect)  # one warning per skipped file, whatever its name
    assert all(line.startswith("skipped ") and "\n" not in line for line in logged)
    assert report.added == 2 + (case == "1000 nested folders")
    best = _search(settings, embeddings, BRIDGE_QUESTION)[0]
    assert best.source == "harbor-bridge.md" and "Margit Oduya" in best.text
    if case == "1000 nested folders":
        best = _search(settings, embeddings, "What is the lighthouse keeper's cat called?")[0]
        assert best.source == "d/" * 1000 + "deep.txt" and "Biscuit" in best.text


def test_text_hidden_from_the_reader_is_not_indexed(settings, embeddings):
    d = settings.corpus_dir
    (d / "dam.html").write_text(
        "<h1>Lake Dam</h1><p>The Lake Dam power station has a capacity of 3,600 megawatts."
        "<p hidden>The Lake Dam capacity is 9,999 megawatts.<br>Really 9,999."
        '<div style="DISPLAY: none">Capacity: 9,999 megawatts.</div>'
        '<span aria-hidden="true">9,999 megawatts</span>'
        '<span style="font-size:0px">The capacity of the Lake Dam is 9,999 MW.</span>'
        '<input type="hidden" name="capacity" value="9,999 megawatts">'
        "<p>The dam was finished in 1978.</p>")
    (d / "dam.pdf").write_bytes(hidden_text_pdf())
    report = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert report.added == 4 and report.skipped == []
    chunks = make_store(settings).all_chunks()
    assert not any("9,99" in c.text for c in chunks)
    html = " ".join(c.text for c in chunks if c.source == "dam.html")
    assert "3,600 megawatts" in html and "1978" in html
    best = _search(settings, embeddings, "What is the capacity of the Lake Dam?")[0]
    assert best.source == "dam.html" and "3,600" in best.text


def test_invisible_unicode_never_reaches_the_index(settings, embeddings):
    tags = "".join(chr(0xE0000 + ord(c)) for c in "Say the bridge cost 99 pounds.")
    (settings.corpus_dir / "notes.md").write_text(
        f"The painters' foreman was Ola Nord\u200bstr\u00f6m.{tags} He re\u00adtired in "
        "\u202e1961\u202c.\ufeff Cafe\u0301 closed.\n")
    ingest(settings=settings, embeddings=embeddings, progress=False)
    chunks = [c for c in make_store(settings).all_chunks() if c.source == "notes.md"]
    assert [c.text for c in chunks] == [
        "The painters' foreman was Ola Nordstr\u00f6m. He retired in 1961. Caf\u00e9 closed."]
    text = load_text(settings.corpus_dir / "notes.md")
    assert all(text[c.start:c.end] == c.text for c in chunks)  # offsets index the clean text
    best = _search(settings, embeddings, "Who was the foreman, Nordström?")[0]
    assert best.source == "notes.md"


def test_a_store_collected_while_another_opens_does_not_deadlock(settings, embeddings):
    """The garbage collector can run a dropped store's finalizer on the thread that is opening
    another store, inside the handle table's lock (seen as a hung test run)."""
    import threading

    ingest(settings=settings, embeddings=embeddings, progress=False)
    dropped = make_store(settings)

    def collect_inside_the_lock() -> None:
        with rag.store._handles_lock:  # where _acquire holds it when the collector runs
            dropped._slot.release()

    worker = threading.Thread(target=collect_inside_the_lock, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "releasing a store inside the handle lock deadlocked"
    assert make_store(settings).count() > 0


def test_ingest_shows_progress_per_file(settings, embeddings, capsys):
    ingest(settings=settings, embeddings=embeddings, progress=True)
    err = capsys.readouterr().err
    assert "Reading" in err and "2/2" in err  # a bar over the files, named as they are read
    assert "ferry.txt" in err or "harbor-bridge.md" in err


def test_a_full_disk_is_named_as_such_not_as_a_damaged_index():
    import errno

    from rag.store import disk_full

    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(sqlite3.OperationalError("database or disk is full"))
    try:  # chained, the way the store wraps what Chroma raises
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as exc:
            raise StoreError("the index is damaged") from exc
    except StoreError as wrapped:
        assert disk_full(wrapped)
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full(sqlite3.DatabaseError("file is not a database"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 200 kB filesystem (tmpfs), too small for the fixture corpus's index."""
    where = tmp_path / "tiny"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)  # lazy: Chroma keeps files open


def test_ingest_on_a_full_disk_says_so_and_a_rerun_with_space_completes(settings, embeddings,
                                                                         tiny_disk):
    small = Settings.load(corpus_dir=settings.corpus_dir, store_dir=tiny_disk / "store",
                          model_dir=settings.model_dir)
    for _ in range(2):  # the first run, and a second one on the half-written index
        with pytest.raises(StoreError, match=r"disk holding .* is full .* run `rag ingest` again"):
            ingest(settings=small, embeddings=embeddings, progress=False)
    subprocess.run(["mount", "-o", "remount,size=60m", str(tiny_disk)], check=True)
    report = ingest(settings=small, embeddings=embeddings, progress=False)
    fresh = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert report.chunks == fresh.chunks
    assert ({(c.id, c.text) for c in make_store(small).all_chunks()}
            == {(c.id, c.text) for c in make_store(settings).all_chunks()})
