"""The indexed documents: list them, and remove one from the index.

One implementation for ``Assistant.documents()`` / ``Assistant.remove()``, ``rag list`` /
``rag remove`` and the UI's documents panel.

Removing a document deletes its chunks from the vector store and from the lexical (BM25) index
in one step, holding the ingest lock and bumping the store's generation as an ingest does, so
no reader (in this process or another) answers from it afterwards. The file itself:

- an upload (a file in ``settings.uploads_dir``, where the UI saves them) is the app's own copy,
  so it is deleted too;
- any other file is the user's and is never touched: if it is still on disk, the next ingest of
  its folder (``rag ingest``, which ``make run`` and the UI run at start for the corpus) adds it
  again, and the message says so.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from .ingestion import ingest_lock
from .lexical import LexicalIndex
from .loaders import escape_name
from .settings import Settings
from .store import StoredFile, StoreError, VectorStore, list_collections, make_store
from .types import CollectionInfo, DocumentInfo


class UnknownDocument(ValueError):
    """No indexed document (or more than one) matches the name given; the message lists
    close matches."""


class Removal(int):
    """The number of chunks removed (an ``int``), with what became of the document:
    ``document`` (as it was listed), ``deleted_copy`` (the uploaded copy that was deleted, or
    None) and ``message`` (one line for people, saying whether it can come back)."""

    document: DocumentInfo
    deleted_copy: Path | None
    message: str

    def __new__(cls, chunks: int, document: DocumentInfo, deleted_copy: Path | None,
                message: str) -> Removal:
        self = super().__new__(cls, chunks)
        self.document, self.deleted_copy, self.message = document, deleted_copy, message
        return self


def info(stored: StoredFile) -> DocumentInfo:
    """What is known of one stored file, with the size of the file on disk now."""
    try:
        size: int | None = (Path(stored.root) / stored.source).stat().st_size
    except OSError:
        size = None
    return DocumentInfo(stored.source, stored.root, len(stored.ids), size, stored.indexed_at)


def list_documents(store: VectorStore) -> list[DocumentInfo]:
    """Every indexed file, by source name (then folder)."""
    return [info(f) for _, f in sorted(store.files().items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def find(name: str | os.PathLike[str], stored: Mapping[tuple[str, str], StoredFile]
         ) -> tuple[str, str]:
    """The (root, source) of the stored file that ``name`` designates: a path to it (absolute,
    or relative to the working directory; it need not exist any more), its source name as
    ``rag list`` shows it, or its file name if that is unambiguous."""
    text = os.fspath(name).strip()
    if not text:
        raise UnknownDocument("give the source name or the path of an indexed document "
                              "(`rag list` shows them)")
    keys = list(stored)
    path = Path(text).expanduser()
    candidates = {Path(os.path.normpath(path.absolute())), path.resolve()}
    matches = [k for k in keys if Path(k[0], k[1]) in candidates]
    if not matches:
        matches = [k for k in keys if k[1] == text]
    if not matches:
        matches = [k for k in keys if PurePosixPath(k[1]).name == text]
    if len(matches) == 1:
        return matches[0]
    if matches:
        listed = ", ".join(escape_name(str(Path(r, s))) for r, s in sorted(matches))
        raise UnknownDocument(f"{escape_name(text)!r} names {len(matches)} indexed documents "
                              f"({listed}): give the path of the one to remove")
    names = sorted({k[1] for k in keys} | {PurePosixPath(k[1]).name for k in keys})
    close = difflib.get_close_matches(text, names, n=5, cutoff=0.5)
    if not close:  # a path to a file of that name elsewhere, a typo in a folder name…
        close = difflib.get_close_matches(PurePosixPath(text).name, names, n=5, cutoff=0.5)
    hint = (f"; close matches: {', '.join(escape_name(c) for c in close)}" if close
            else f"; `rag list` shows the {len(keys)} indexed documents" if keys
            else "; the index is empty")
    raise UnknownDocument(f"no indexed document is called {escape_name(text)!r}{hint}")


def remove(name: str | os.PathLike[str], store: VectorStore, settings: Settings) -> Removal:
    """Remove the document ``name`` designates (see ``find``) from ``store`` and its lexical
    index, holding the ingest lock; delete the file too if it is an upload."""
    with ingest_lock(settings, patience=0.5):
        stored = store.files()
        key = find(name, stored)
        document = info(stored[key])
        shared = set().union(*(f.ids for k, f in stored.items() if k != key))
        ids = set(stored[key].ids) - shared  # a chunk id another file also holds stays
        lexical = LexicalIndex(store.lexical_path)
        try:
            in_step = lexical.state == store.state
            # as an ingest does: readers that see the new generation before the lexical index
            # has it resynchronise, and other processes reopen Chroma's in-memory index
            store.bump_generation()
            store.delete(ids)
            if in_step:
                lexical.apply([], ids, store.state)
            else:
                lexical.rebuild(store.all_chunks(), store.state)
        finally:
            lexical.close()
        deleted = _delete_upload(document, settings)
    return Removal(len(ids), document, deleted, _message(document, len(ids), deleted, settings))


def _delete_upload(document: DocumentInfo, settings: Settings) -> Path | None:
    """Delete the file if it is the UI's uploaded copy (and only then)."""
    uploads = settings.uploads_dir.resolve()
    path = Path(document.path)
    try:
        inside = path.resolve().is_relative_to(uploads) and Path(document.root).resolve() == uploads
    except OSError:
        return None
    if not inside or not path.is_file():
        return None
    path.unlink()
    return path


def _message(document: DocumentInfo, chunks: int, deleted: Path | None,
             settings: Settings) -> str:
    name = escape_name(document.source)
    done = f"Removed {name} from the index ({chunks} chunk{'s' if chunks != 1 else ''})."
    if deleted is not None:
        return f"{done} The uploaded copy was deleted too."
    if not Path(document.path).is_file():
        return f"{done} The file is no longer on disk."
    where = escape_name(document.path)
    if Path(document.root).resolve() == settings.corpus_dir.resolve():
        return (f"{done} The file is still in the corpus ({where}): it will come back at the "
                "next ingest (`rag ingest`, `make run` or the app's start) unless you delete "
                "or move it.")
    return (f"{done} The file is still at {where}: it will come back if its folder is ingested "
            "again, unless you delete or move it.")


def collections(settings: Settings) -> list[CollectionInfo]:
    """Every collection of the store ``settings`` name, with its documents and chunks."""
    from .embeddings import embeddings_for

    embedder = embeddings_for(settings)
    found = []
    for name in list_collections(settings):
        try:
            store = make_store(settings.replace(collection=name),
                               embedder=(embedder.name, embedder.dimension))
            files = store.files()
            found.append(CollectionInfo(name, len(files),
                                        sum(len(f.ids) for f in files.values())))
        except StoreError as exc:
            found.append(CollectionInfo(name, None, None, str(exc)))
    return found
