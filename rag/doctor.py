"""``rag doctor``: check the index against the sources on disk, and repair what is derivable.

Each check prints one line, ``OK``, ``REPAIRED``, ``STALE`` (the index is behind the sources:
``rag ingest`` brings it up to date) or ``DAMAGED`` (with the command that fixes it). The
lexical index is derived from the vector store, so it is rebuilt here; the vector store holds
embeddings, which only ``rag ingest --rebuild`` can make again (from the sources).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .chunking import chunk_text
from .ingestion import ingest_lock
from .lexical import LexicalIndex
from .loaders import discover, load_text, relative_source
from .settings import Settings
from .store import (
    REBUILD,
    StoreError,
    current_location,
    make_store,
    remove_leftovers,
    segment_problem,
)
from .text import content_words

OK, REPAIRED, STALE, DAMAGED = "OK", "REPAIRED", "STALE", "DAMAGED"


@dataclass
class Check:
    name: str
    status: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.status:<8} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Diagnosis:
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Nothing is damaged (after the repairs): answers come from a sound index."""
        return all(c.status != DAMAGED for c in self.checks)

    def add(self, name: str, status: str, detail: str = "") -> Check:
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    def report(self) -> str:
        lines = [c.line() for c in self.checks]
        if self.healthy:
            stale = any(c.status == STALE for c in self.checks)
            lines.append("The index is sound" + (" but behind the sources: run `rag ingest`."
                                                 if stale else "."))
        else:
            lines.append("The index is damaged: see the DAMAGED lines for the fix.")
        return "\n".join(lines)


def diagnose(settings: Settings, paths: list[Path] | None = None,
             repair: bool = True) -> Diagnosis:
    """Check the store ``settings`` name against ``paths`` (default: the corpus folder),
    holding the ingest lock; ``repair``: fix what is derivable (leftovers, the lexical index)."""
    paths = [Path(p) for p in (paths or [settings.corpus_dir])]
    d = Diagnosis()
    with ingest_lock(settings, patience=0.5):
        _leftovers(d, settings, repair)
        store = _vector_store(d, settings)
        if store is None:
            return d
        try:
            stored = store.files()
            _stored_chunks(d, store, stored)
            _sources(d, settings, paths, stored)
            usable = _lexical(d, store, repair)
            _query(d, store, usable)
        except StoreError as exc:
            d.add("vector store", DAMAGED, str(exc))
    return d


def _leftovers(d: Diagnosis, settings: Settings, repair: bool) -> None:
    try:
        found = remove_leftovers(settings, dry_run=not repair)
    except (StoreError, OSError) as exc:
        d.add("leftovers of interrupted rebuilds", DAMAGED, str(exc))
        return
    if not found:
        d.add("leftovers of interrupted rebuilds", OK, "none")
    elif repair:
        d.add("leftovers of interrupted rebuilds", REPAIRED, "removed " + ", ".join(found))
    else:
        d.add("leftovers of interrupted rebuilds", STALE,
              ", ".join(found) + " (`rag doctor` removes them)")


def _vector_store(d: Diagnosis, settings: Settings):  # noqa: ANN202 - ChunkStore | None
    try:
        location = current_location(settings)
        problem = segment_problem(location, settings)
        if problem:
            d.add("vector store files", DAMAGED, f"{problem}: {REBUILD}")
            return None
        store = make_store(settings)
    except StoreError as exc:
        d.add("vector store", DAMAGED, str(exc))
        return None
    where = location.path or f"{settings.chroma_url} collection {location.collection}"
    d.add("vector store", OK, f"{store.count()} chunks at {where}")
    return store


def _stored_chunks(d: Diagnosis, store, stored: dict) -> None:  # noqa: ANN001 - ChunkStore
    half = sorted(f.source for f in stored.values() if not f.complete or not f.sha)
    total = sum(len(f.ids) for f in stored.values())
    count = store.count()
    if half:
        d.add("stored files", DAMAGED, f"{len(half)} half-written by an interrupted ingest "
              f"({', '.join(half[:5])}): run `rag ingest`")
    elif total != count:
        d.add("stored files", DAMAGED, f"{count} chunks stored, {total} belong to files: "
              f"{REBUILD}")
    else:
        d.add("stored files", OK, f"{len(stored)} files, {count} chunks, each file complete")


def _sources(d: Diagnosis, settings: Settings, paths: list[Path], stored: dict) -> None:
    found, _ = discover(paths, settings.max_file_bytes)
    folders = {str(p.resolve()) for p in paths if p.is_dir()}
    new, changed, rechunk, seen = [], [], [], set()
    for root, file in found:
        try:
            source = relative_source(root, file)
            text = load_text(file, settings.max_file_bytes)
        except Exception:  # noqa: BLE001 - skipped by ingest too
            continue
        key = (str(root), source)
        seen.add(key)
        old = stored.get(key)
        if old is None:
            new.append(source)
        elif old.sha != hashlib.sha256(text.encode()).hexdigest():
            changed.append(source)
        else:
            chunks = chunk_text(text, source, settings.chunk_tokens, settings.chunk_overlap)
            if len(chunks) != old.n_chunks or {c.id for c in chunks} != set(old.ids):
                rechunk.append(source)
    gone = sorted(src for (root, src) in stored if (root, src) not in seen and root in folders)
    problems = [f"{len(v)} {what} ({', '.join(sorted(v)[:3])})"
                for v, what in ((new, "new"), (changed, "changed"), (gone, "deleted"))
                if v]
    if rechunk:
        d.add("sources", STALE, f"{len(rechunk)} files stored with other chunks than the "
              f"current settings make ({', '.join(rechunk[:3])}): {REBUILD}")
    if problems:
        d.add("sources", STALE, "; ".join(problems) + " since the last ingest: run "
              "`rag ingest`")
    elif not rechunk:
        d.add("sources", OK, f"{len(seen)} files on disk match the index (hash and chunks)")


def _lexical(d: Diagnosis, store, repair: bool) -> bool:  # noqa: ANN001 - ChunkStore
    """Check the lexical index (and rebuild it if ``repair``); whether it is usable now."""
    path = store.lexical_path
    problem = _lexical_problem(path, store)
    if problem is None:
        d.add("lexical index", OK, f"in step with the vector store ({path.name})")
        return True
    if not repair:
        d.add("lexical index", DAMAGED, f"{problem}: run `rag doctor` to rebuild it")
        return False
    lexical = LexicalIndex(path)
    try:
        if lexical.problem():
            lexical.recreate()
        lexical.rebuild(store.all_chunks(), store.state)
    finally:
        lexical.close()
    after = _lexical_problem(path, store)
    if after:
        d.add("lexical index", DAMAGED, f"{problem}; rebuilding did not help ({after}): "
              f"delete {path} and run `rag ingest`")
        return False
    d.add("lexical index", REPAIRED, f"{problem}; rebuilt from the vector store")
    return True


def _lexical_problem(path: Path, store) -> str | None:  # noqa: ANN001 - ChunkStore
    if not path.exists():
        return "missing"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as con:
            check = "; ".join(r[0] for r in con.execute("PRAGMA integrity_check"))
            if check != "ok":
                return f"corrupt ({check[:200]})"
            meta = dict(con.execute("SELECT key, value FROM meta"))
            ids = {r[0] for r in con.execute("SELECT id FROM chunks")}
    except sqlite3.DatabaseError as exc:
        return f"unreadable ({exc})"
    state = store.state
    if (meta.get("collection"), int(meta.get("generation", -1))) != state:
        return "out of step with the vector store (an interrupted ingest or rebuild)"
    vector_ids = store.ids()
    if ids != vector_ids:
        return (f"{len(vector_ids - ids)} chunks of the vector store missing, "
                f"{len(ids - vector_ids)} chunks not in it")
    return None


def _query(d: Diagnosis, store, lexical_usable: bool) -> None:  # noqa: ANN001 - ChunkStore
    """One dense query with a stored chunk's own embedding (it must come first) and one BM25
    query with its words (if the lexical index is usable)."""
    if store.count() == 0:
        d.add("query", OK, "the index is empty")
        return
    try:
        probe = store.all_chunks()[0]
        vector = store.embeddings_of([probe.id]).get(probe.id)
        if vector is None:
            d.add("query", DAMAGED, f"chunk {probe.id} has no embedding: {REBUILD}")
            return
        hits = store.query(vector, 5)
    except StoreError as exc:
        d.add("query", DAMAGED, str(exc))
        return
    if not hits or (hits[0].chunk_id != probe.id and (hits[0].dense_score or 0) < 0.999):
        d.add("query", DAMAGED, f"the nearest chunk to chunk {probe.id}'s own embedding is "
              f"{hits[0].chunk_id if hits else 'none'}: {REBUILD}")
        return
    if not lexical_usable:
        d.add("query", OK, f"dense search finds {probe.source} (chars {probe.start}-"
              f"{probe.end}) by its own embedding; BM25 not tried")
        return
    lexical = LexicalIndex(store.lexical_path)
    try:
        words = " ".join(content_words(probe.text)[:12])
        found = not words or any(c.id == probe.id or c.text == probe.text  # or a copy
                                 for c, _ in lexical.search(words, 50))
    finally:
        lexical.close()
    if not found:
        d.add("query", DAMAGED, f"BM25 does not find chunk {probe.id} by its words: run "
              "`rag doctor`")
        return
    d.add("query", OK, f"dense and BM25 search find {probe.source} "
          f"(chars {probe.start}-{probe.end}) by its own embedding and words")
