"""Load -> chunk -> embed -> store, incrementally: only new or changed text is embedded."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from .chunking import chunk_text
from .embeddings import Embedder, embeddings_for
from .lexical import LexicalIndex
from .loaders import LoadError, discover, escape_name, load_text, relative_source
from .settings import Settings
from .store import (
    ChunkStore,
    VectorStore,
    build_aside,
    disk_space_errors,
    make_store,
    now_iso,
    remove_leftovers,
)
from .types import Chunk

log = logging.getLogger(__name__)


class IngestBusy(Exception):
    """Another ingest holds the lock on this store."""


@dataclass
class IngestReport:
    added: int = 0  # files new to the store
    updated: int = 0  # files whose text changed
    removed: int = 0  # files gone from an ingested folder
    unchanged: int = 0
    embedded: int = 0  # chunks embedded (0 when nothing changed)
    seconds: float = 0.0
    chunks: int = 0  # chunks in the store afterwards
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in ("added", "updated", "removed", "unchanged", "embedded",
                                  "seconds")}

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.removed} removed, "
                f"{self.unchanged} unchanged; {self.embedded} chunks embedded, "
                f"{self.chunks} in the index; {len(self.skipped)} skipped; "
                f"{self.seconds:.1f} s")


@contextlib.contextmanager
def ingest_lock(settings: Settings, wait: bool = False,
                patience: float = 0.0) -> Iterator[None]:
    """One ingest at a time per store; readers never take it. ``patience``: seconds to retry
    before refusing (readers probe the lock for an instant: ``store.ingest_running``)."""
    settings.store_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(settings.store_dir / "ingest.lock")
    try:
        lock.acquire(timeout=-1 if wait else patience, poll_interval=0.02)
    except Timeout as exc:
        raise IngestBusy("another ingest is running on this index; wait for it to finish and "
                         "try again") from exc
    try:
        yield
    finally:
        lock.release()


def ingest(paths: list[Path] | None = None, settings: Settings | None = None,
           embeddings: Embedder | None = None, rebuild: bool = False,
           progress: bool = True, store: VectorStore | None = None) -> IngestReport:
    """Bring the index in line with ``paths`` (default: the corpus folder), in ``store``
    (default: ``make_store(settings)``, created if needed).

    Files under an ingested folder that are gone are removed from the index; unchanged files
    cost one hash each; changed files have only their new chunks embedded. ``rebuild``: embed
    everything into a new index beside the current one, which replaces it once complete (an
    injected ``store`` is emptied in place instead).
    """
    settings = settings or Settings.load()
    embeddings = embeddings or embeddings_for(settings)
    embedder = (embeddings.name, embeddings.dimension)
    paths = [Path(p) for p in (paths or [settings.corpus_dir])]
    t0 = time.perf_counter()
    report = IngestReport()
    with disk_space_errors(settings.store_dir), ingest_lock(settings, patience=0.5):
        aside: ChunkStore | None = None
        if store is None:
            remove_leftovers(settings)  # of an interrupted rebuild
            # a rebuild never opens the current index (it may be damaged): it builds a new
            # one beside it, which replaces it only when complete (aside.publish() below)
            if rebuild:
                store = aside = build_aside(settings, embedder)
            else:
                store = make_store(settings, create=True, embedder=embedder)
        elif rebuild:
            store.clear()
        found, skipped = discover(paths, settings.max_file_bytes)
        report.skipped = [(escape_name(str(p)), escape_name(why)) for p, why in skipped]
        stored = store.files()
        folders = {str(p.resolve()) for p in paths if p.is_dir()}
        seen: set[tuple[str, str]] = set()
        todo: list[tuple[str, str, list[Chunk], set[str]]] = []  # root, sha, chunks, old ids
        reading = tqdm(found, desc="Reading", unit="file", disable=not progress)
        for root, file in reading:
            reading.set_postfix_str(escape_name(file.name)[:60], refresh=False)
            try:  # one broken or hostile file is skipped with its reason, never fatal
                source = relative_source(root, file)
                key = (str(root), source)
                text = load_text(file, settings.max_file_bytes)
                sha = hashlib.sha256(text.encode()).hexdigest()
                old = stored.get(key)
                if old and old.sha == sha and old.complete:
                    seen.add(key)
                    report.unchanged += 1
                    continue
                chunks = chunk_text(text, source, settings.chunk_tokens, settings.chunk_overlap)
            except Exception as exc:  # noqa: BLE001 - the last resort, reported per file
                report.skipped.append((escape_name(str(file)), escape_name(_why(exc))))
                continue
            seen.add(key)
            todo.append((str(root), sha, chunks, set(old.ids) if old else set()))
            if old:
                report.updated += 1
            else:
                report.added += 1
        gone = [f for key, f in stored.items() if key not in seen and key[0] in folders]
        report.removed = len(gone)

        new = [c for _, _, chunks, old in todo for c in chunks if c.id not in old]
        vectors = embeddings.encode([c.text for c in new], progress=progress and len(new) > 0)
        vec_of = {c.id: v for c, v in zip(new, vectors, strict=True)}
        report.embedded = len(new)
        lexical = LexicalIndex(store.lexical_path)
        in_step = lexical.state == store.state
        if todo or gone:
            # Bump first: until the lexical index is written with the new generation, readers
            # (and the next ingest) see the two out of step and resynchronise.
            store.bump_generation()
        added: list[Chunk] = []
        deleted: set[str] = set()
        at = now_iso()  # one time for the whole ingest: the files' `indexed_at`
        for root, sha, chunks, old in todo:
            fresh = [c for c in chunks if c.id not in old]
            kept = [c for c in chunks if c.id in old]
            if fresh:
                store.add(fresh, _stack([vec_of[c.id] for c in fresh], embeddings.dimension),
                          root, sha, len(chunks), indexed_at=at)
            if kept:
                store.relabel(kept, root, sha, len(chunks), indexed_at=at)
            stale = old - {c.id for c in chunks}
            store.delete(stale)
            added += chunks
            deleted |= stale
        for f in gone:
            store.delete(f.ids)
            deleted |= f.ids
        if in_step:
            lexical.apply(added, deleted, store.state)
        else:  # first ingest, or an earlier one was interrupted: copy what the store holds
            lexical.rebuild(store.all_chunks(), store.state)
        lexical.close()
        report.chunks = store.count()
        if aside is not None:
            aside.publish()
    report.seconds = round(time.perf_counter() - t0, 2)
    for file, why in report.skipped:
        log.warning("skipped %s: %s", file, why)
    return report


def _why(exc: Exception) -> str:
    """The reason a file was skipped, from the exception that stopped it."""
    if isinstance(exc, (LoadError, OSError)):
        return str(exc)
    why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"could not be processed ({why[:200]})"


def _stack(vectors: list, dimension: int):  # noqa: ANN202 - np.ndarray
    import numpy as np

    return np.stack(vectors) if vectors else np.zeros((0, dimension))
