"""The vector store: what the pipeline needs of one (``VectorStore``), the Chroma collection that
provides it (``ChunkStore``), and ``make_store`` to open one from the settings.

To use another vector database, write a class with the ``VectorStore`` methods and add a branch
to ``make_store``; nothing outside this module touches Chroma objects.

Where the index lives (``Location``). A first ingest writes Chroma's files into ``store_dir``
itself; ``rag ingest --rebuild`` never opens the current index: ``build_aside`` starts an empty
one beside it (a folder ``store_dir/index-<collection>-<stamp>``, or with a Chroma server a
collection ``<collection>.r<stamp>``), and ``ChunkStore.publish`` makes it current only once it
is complete, by atomically replacing a pointer (the file ``store_dir/current-<collection>``, or
the metadata of the server collection ``<collection>.current``), then deletes the old one. Until
then, and after a kill, the old index answers. Readers follow the pointer on every
``state`` read. The lexical index keeps one path, ``store_dir/lexical-<collection>.sqlite3``.

Chroma's embedded client keeps a copy of the HNSW index in memory that does not see another
process's writes: a process that answers questions while another ingests would return ids that
were deleted since (with no document) and miss new ones. ``ChunkStore`` therefore reopens its
client (a new Chroma "system") once the generation has changed and no ingest is running, and
drops, whatever happens, results whose chunk is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import signal
import sqlite3
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import numpy as np
from filelock import FileLock, Timeout

from .embeddings import DIMENSION, MODEL_NAME
from .settings import Settings
from .types import Chunk, Passage

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore as LangChainVectorStore

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SCHEMA_VERSION = 1
_BATCH = 1000
REBUILD = "run `rag ingest --rebuild`"


class StoreError(Exception):
    """The vector store cannot be used as it is; the message names the fix."""


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full (an OSError
    ENOSPC, or sqlite's "database or disk is full", which Chroma passes on as text)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return True
        if re.search(r"disk is full|no space left on device", str(seen), re.IGNORECASE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def disk_space_errors(where: Path) -> Iterator[None]:
    """Turn a full disk met while writing under ``where`` into a StoreError that says so
    (rather than calling the index damaged, or a traceback)."""
    try:
        yield
    except Exception as exc:
        if not disk_full(exc):
            raise
        existing = next((p for p in (where, *where.parents) if p.exists()), Path("/"))
        free = shutil.disk_usage(existing).free / 2**20
        raise StoreError(f"the disk holding {where} is full ({free:.0f} MB free): free some "
                         "space, then run `rag ingest` again (it picks up where this run "
                         "stopped)") from exc


@dataclass(frozen=True)
class StoredFile:
    root: str
    source: str
    sha: str
    n_chunks: int
    ids: frozenset[str]
    indexed_at: str | None = None  # ISO time of the ingest that wrote it (None: older index)

    @property
    def complete(self) -> bool:
        """All chunks of one version of the file are there (an interrupted ingest is not)."""
        return len(self.ids) == self.n_chunks


class VectorStore(Protocol):
    """What the pipeline needs of a store of embedded chunks. Chunks are embedded outside it;
    each stored chunk keeps its file's root, hash and chunk count (``StoredFile``), so ingestion
    can tell unchanged, changed, half-written and deleted files apart."""

    @property
    def state(self) -> tuple[str, int]:
        """(store identity, generation): the on-disk lexical index mirrors exactly this."""
        ...

    @property
    def lexical_path(self) -> Path:
        """Where the lexical (BM25) mirror of this store lives."""
        ...

    def count(self) -> int: ...

    def files(self) -> dict[tuple[str, str], StoredFile]: ...

    def all_chunks(self) -> list[Chunk]: ...

    def query(self, vector: np.ndarray, k: int) -> list[Passage]:
        """The ``k`` nearest chunks with ``dense_score`` (cosine) set."""
        ...

    def embeddings_of(self, ids: list[str]) -> dict[str, np.ndarray]: ...

    def add(self, chunks: list[Chunk], vectors: np.ndarray, root: str, sha: str,
            n_chunks: int, indexed_at: str | None = None) -> None: ...

    def relabel(self, chunks: list[Chunk], root: str, sha: str, n_chunks: int,
                indexed_at: str | None = None) -> None: ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def bump_generation(self) -> None: ...

    def clear(self) -> None:
        """Remove everything, in place (an injected store's ``rag ingest --rebuild``)."""
        ...

    def as_langchain(self, embeddings: Embeddings) -> LangChainVectorStore:
        """The same chunks as a LangChain ``VectorStore`` (for chains built with LangChain)."""
        ...


def make_store(settings: Settings, create: bool = False, reset: bool = False,
               embedder: tuple[str, int] | None = None) -> VectorStore:
    """Open the store the settings name. ``create``: make it if it does not exist; ``reset``:
    empty it first (whatever it holds, even an index of another embedding model).
    ``embedder``: (name, dimension) of the embedding model whose vectors it holds (default:
    the local model); an index written with another is refused."""
    return ChunkStore(settings, create=create or reset, reset=reset, embedder=embedder)


def build_aside(settings: Settings, embedder: tuple[str, int] | None = None) -> ChunkStore:
    """A new, empty store beside the current one, which it replaces on ``publish()``; the
    current one is not opened (it may be damaged) and answers until then."""
    stamp = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    if settings.chroma_url:
        location = Location(f"{settings.collection}.r{stamp}", None)
    else:
        location = Location(settings.collection,
                            settings.store_dir / f"index-{settings.collection}-{stamp}")
    return ChunkStore(settings, create=True, location=location, embedder=embedder)


# -- where the index is --------------------------------------------------------------------
@dataclass(frozen=True)
class Location:
    """A Chroma collection, and the folder of its files (None: on the Chroma server)."""

    collection: str
    path: Path | None


def _pointer_file(settings: Settings) -> Path:
    return settings.store_dir / f"current-{settings.collection}"


def _pointer_collection(settings: Settings) -> str:
    return f"{settings.collection}.current"


def _aside_dir_pattern(settings: Settings) -> re.Pattern[str]:
    return re.compile(rf"index-{re.escape(settings.collection)}-\d{{8}}T\d{{6}}-[0-9a-f]{{6}}")


def _aside_collection_pattern(settings: Settings) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(settings.collection)}\.r\d{{8}}T\d{{6}}-[0-9a-f]{{6}}")


def current_location(settings: Settings, server: Any = None) -> Location:
    """Where the current index is: what the pointer names, else the first ingest's place."""
    if settings.chroma_url:
        server = server or _http_client(settings)
        try:
            meta = server.get_collection(_pointer_collection(settings),
                                         embedding_function=None).metadata or {}
        except Exception as exc:  # noqa: BLE001 - no pointer yet, or the server is gone
            if not _missing(exc):
                raise _server_error(settings, exc) from exc
            meta = {}
        return Location(str(meta.get("target") or settings.collection), None)
    pointer = _pointer_file(settings)
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return Location(settings.collection, settings.store_dir)
    except OSError as exc:
        raise StoreError(f"cannot read the index pointer {pointer} ({exc})") from exc
    if not _aside_dir_pattern(settings).fullmatch(name):
        raise StoreError(f"the index pointer {pointer} is damaged ({name[:60]!r}): {REBUILD}")
    return Location(settings.collection, settings.store_dir / name)


def list_collections(settings: Settings) -> list[str]:
    """The names of the collections that have an index in this store (folder or server)."""
    from .settings import COLLECTION_NAME

    names: set[str] = set()
    if settings.chroma_url:
        try:
            found = _http_client(settings).list_collections()
        except Exception as exc:  # noqa: BLE001 - the server is gone
            raise _server_error(settings, exc) from exc
        for col in found:
            name = col if isinstance(col, str) else col.name
            names.add(name.removesuffix(".current"))
    else:
        for pointer in settings.store_dir.glob("current-*"):
            names.add(pointer.name.removeprefix("current-"))
        db = settings.store_dir / "chroma.sqlite3"
        if db.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                        timeout=1)) as con:
                    names.update(r[0] for r in con.execute("SELECT name FROM collections"))
            except sqlite3.Error as exc:
                raise StoreError(f"the index at {settings.store_dir} is damaged "
                                 f"({_short(exc)}): {REBUILD}") from exc
    return sorted(n for n in names if COLLECTION_NAME.fullmatch(n))


def _write_pointer(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically and durably (a kill leaves old or new)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ingest_running(settings: Settings) -> bool:
    """Whether some process holds the ingest lock on this store (probed, never waited for)."""
    lock = settings.store_dir / "ingest.lock"
    if not lock.exists():
        return False
    probe = FileLock(lock)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def remove_leftovers(settings: Settings, dry_run: bool = False) -> list[str]:
    """Delete what interrupted rebuilds left (an unfinished store built aside, an old store
    that was replaced); call it holding the ingest lock. Returns what was (or, with
    ``dry_run``, would be) removed."""
    found: list[str] = []
    current = current_location(settings)
    if settings.chroma_url:
        server = _http_client(settings)
        pattern = _aside_collection_pattern(settings)
        for col in server.list_collections():
            name = col if isinstance(col, str) else col.name
            stale = pattern.fullmatch(name) or name == settings.collection
            if stale and name != current.collection:
                found.append(f"collection {name}")
                if not dry_run:
                    with contextlib.suppress(Exception):
                        server.delete_collection(name)
        for path in settings.store_dir.glob(f"lexical-{settings.collection}.r*.sqlite3*"):
            found.append(str(path))
            if not dry_run:
                path.unlink(missing_ok=True)
        return found
    if not settings.store_dir.is_dir():
        return found
    pattern = _aside_dir_pattern(settings)
    for path in sorted(settings.store_dir.iterdir()):
        if path.is_dir() and pattern.fullmatch(path.name) and path != current.path:
            found.append(str(path))
            if not dry_run:
                _forget(path)
                shutil.rmtree(path, ignore_errors=True)
    tmp = _pointer_file(settings).with_name(_pointer_file(settings).name + ".tmp")
    if tmp.exists():
        found.append(str(tmp))
        if not dry_run:
            tmp.unlink()
    if current.path != settings.store_dir and (settings.store_dir / "chroma.sqlite3").exists():
        found += _remove_root_index(settings, dry_run)
    return found


def _remove_root_index(settings: Settings, dry_run: bool = False) -> list[str]:
    """Delete the first ingest's Chroma files in ``store_dir`` once a rebuilt index replaced
    them, unless other collections still live there (then they stay, unreferenced)."""
    root = settings.store_dir
    db = root / "chroma.sqlite3"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=1)) as con:
            names = {r[0] for r in con.execute("SELECT name FROM collections")}
    except sqlite3.Error:
        names = set()  # unreadable: nothing in it can be saved
    if names - {settings.collection}:
        return []
    if not dry_run:
        _forget(root)
    removed = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("chroma.sqlite3") or (path.is_dir() and _is_uuid(path.name)):
            removed.append(str(path))
            if dry_run:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    return removed


def _is_uuid(name: str) -> bool:
    try:
        return str(uuid.UUID(name)) == name
    except ValueError:
        return False


_WRITES = [0]  # chunks this process has written (for the fault-injection point below)


def _written(n: int) -> None:
    """Fault injection for the crash tests: with ``RAG_FAULT_STOP_AFTER_WRITES=N`` the process
    stops itself (SIGSTOP) once it has written N chunks, so that a test's ``kill -9`` lands
    mid-write on any machine, however loaded, instead of racing the writer."""
    _WRITES[0] += n
    limit = os.environ.get("RAG_FAULT_STOP_AFTER_WRITES")
    if limit and _WRITES[0] >= int(limit) and hasattr(signal, "SIGSTOP"):
        os.kill(os.getpid(), signal.SIGSTOP)


# -- Chroma clients on a folder, each with its own in-memory index -------------------------
class _Handle:
    """One embedded Chroma client on one folder. ``generation``: the store generation its
    in-memory index is known to match (-1: unknown, opened while an ingest was writing)."""

    def __init__(self, path: Path) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        key = str(path)
        try:  # a client of its own: Chroma shares one per folder, with a stale index
            from chromadb.api.shared_system_client import SharedSystemClient

            SharedSystemClient._identifier_to_system.pop(key, None)
            SharedSystemClient._identifier_to_refcount.pop(key, None)
        except (ImportError, AttributeError):
            SharedSystemClient = None  # noqa: N806 - another chromadb: share its client
        self.path = path
        self.client = chromadb.PersistentClient(
            path=key, settings=ChromaSettings(anonymized_telemetry=False))
        self._system = (SharedSystemClient._identifier_to_system.get(key)
                        if SharedSystemClient is not None else None)
        self.generation = -1
        self.users = 0
        self.retired = False

    def stop(self) -> None:
        if self._system is not None:
            with contextlib.suppress(Exception):
                self._system.stop()


_handles: dict[Path, _Handle] = {}
# Re-entrant: a store's finalizer (``_Slot.release``) can run from the garbage collector in
# the middle of ``_acquire`` on the same thread; a plain lock deadlocked there.
_handles_lock = threading.RLock()


def _acquire(path: Path, fresh: bool = False) -> tuple[_Handle, bool]:
    """The newest client on ``path`` (a new one if ``fresh``), and whether it is new."""
    with _handles_lock:
        handle = _handles.get(path)
        new = handle is None or fresh
        if new:
            if handle is not None:
                handle.retired = True
                if handle.users == 0:
                    handle.stop()
            handle = _handles[path] = _Handle(path)
        assert handle is not None
        handle.users += 1
        return handle, new


def _release(handle: _Handle) -> None:
    with _handles_lock:
        handle.users -= 1
        if handle.users <= 0 and handle.retired:
            handle.stop()


def _forget(path: Path) -> None:
    """No new user gets a client on ``path`` (its files are about to go)."""
    with _handles_lock:
        handle = _handles.pop(path, None)
        if handle is not None:
            handle.retired = True
            if handle.users == 0:
                handle.stop()


class _Slot:
    """The handle a store holds, released when the store is garbage-collected."""

    def __init__(self) -> None:
        self.handle: _Handle | None = None

    def set(self, handle: _Handle | None) -> None:
        old, self.handle = self.handle, handle
        if old is not None:
            _release(old)

    def release(self) -> None:
        self.set(None)


# -- the store -----------------------------------------------------------------------------
class ChunkStore:
    """Chunks in a Chroma collection, embedded outside Chroma (Chroma never embeds anything)."""

    def __init__(self, settings: Settings, create: bool = False, reset: bool = False,
                 location: Location | None = None,
                 embedder: tuple[str, int] | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or (MODEL_NAME, DIMENSION)  # (name, dimension)
        self.aside = location is not None  # built aside: not current until published
        self._server = _http_client(settings) if settings.chroma_url else None
        self._slot = _Slot()
        weakref.finalize(self, self._slot.release)
        self._lock = threading.RLock()
        self.location = location or current_location(settings, self._server)
        self.collection: Any = None
        self._open(self.location, create, reset)

    # -- opening ---------------------------------------------------------------------------
    def _open(self, location: Location, create: bool = False, reset: bool = False) -> None:
        """Open ``location``'s collection (``create``: as the writer, holding the ingest lock)
        with a client whose in-memory index is in step with the files."""
        settings = self.settings
        where = _where(settings, location)
        handle = None
        try:
            if location.path is not None:
                if not create and not (location.path / "chroma.sqlite3").exists():
                    raise StoreError(f"no index found at {where}: run `rag ingest` first")
                check_segments(location, settings)
                location.path.mkdir(parents=True, exist_ok=True)
                try:
                    handle, new = _acquire(location.path)
                except Exception as exc:  # noqa: BLE001 - corrupt sqlite, wrong version
                    raise StoreError(f"the index at {where} is damaged ({_short(exc)}): "
                                     f"{REBUILD}") from exc
            try:
                collection = self._get(handle, location, create, reset)
                generation = self._generation(collection)
                if handle is not None:
                    writing = not create and ingest_running(settings)
                    if not new and handle.generation != generation and not writing:
                        # its index missed another process's ingest: a fresh client
                        _release(handle)
                        handle = None
                        handle, new = _acquire(location.path, fresh=True)
                        collection = self._get(handle, location, False, False)
                    if new:
                        handle.generation = -1 if writing else generation
            except StoreError:
                raise
            except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
                if _missing(exc):
                    raise StoreError(f"no index found ({where}): run `rag ingest` first"
                                     ) from exc
                raise self._error(exc, location) from exc
            _check_compatible(collection, self.embedder)
            self._probe(collection, location)
        except BaseException:
            if handle is not None:
                _release(handle)
            raise
        with self._lock:
            self.location, self.collection = location, collection
            self._slot.set(handle)

    def _get(self, handle: _Handle | None, location: Location, create: bool,
             reset: bool) -> Any:
        client = handle.client if handle is not None else self._server
        if reset:
            with contextlib.suppress(Exception):  # absent already
                client.delete_collection(location.collection)
        if create:
            return client.get_or_create_collection(
                location.collection, embedding_function=None,
                metadata={"embedding_model": self.embedder[0], "dimension": self.embedder[1],
                          "schema": SCHEMA_VERSION, "generation": 0},
                configuration={"hnsw": {"space": "cosine"}})
        return client.get_collection(location.collection, embedding_function=None)

    def _probe(self, collection: Any, location: Location) -> None:
        """Read the vector index once, so that a damaged one fails here, clearly."""
        try:
            if collection.count():
                collection.query(query_embeddings=[[1.0] + [0.0] * (self.embedder[1] - 1)],
                                 n_results=1, include=[])
        except Exception as exc:  # noqa: BLE001 - chromadb's InternalError and others
            raise self._error(exc, location) from exc

    def _error(self, exc: BaseException, location: Location | None = None) -> StoreError:
        where = _where(self.settings, location or self.location)
        if self._server is not None:
            return StoreError(f"the index at {where} cannot be read ({_short(exc)}); check "
                              f"the Chroma server, or {REBUILD}")
        return StoreError(f"the index at {where} is damaged ({_short(exc)}): {REBUILD}")

    @property
    def client(self) -> Any:
        """The Chroma client of the current collection."""
        handle = self._slot.handle
        return handle.client if handle is not None else self._server

    # -- following other processes ----------------------------------------------------------
    def _sync(self) -> int:
        """The generation, read afresh. First follows a rebuild that replaced this index
        (reopening at the new place); reopens a client whose in-memory index missed another
        process's ingest, once that ingest is over."""
        if not self.aside and self._server is None:
            location = current_location(self.settings)
            if location != self.location:
                with self._lock:
                    old = self.location.path
                    if location != self.location:
                        self._open(location)
                        if old is not None:
                            _forget(old)  # replaced: its files are deleted or going
        try:
            with self._held() as (handle, collection, location):
                fresh = (handle.client if handle else self._server).get_collection(
                    location.collection, embedding_function=None)
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - dropped by a rebuild elsewhere
            if self.aside or not _missing(exc):
                raise self._error(exc) from exc
            moved = current_location(self.settings, self._server)
            if moved == location:
                raise StoreError(f"the index at {_where(self.settings, location)} was "
                                 "deleted: run `rag ingest`") from exc
            with self._lock:
                if self.location == location:
                    self._open(moved)
            return self._sync()
        if fresh.id != collection.id:  # emptied and recreated in place
            with self._lock:
                if self.collection is collection:
                    self._open(location)
            return self._sync()
        generation = self._generation(fresh)
        if (handle is not None and handle.generation != generation
                and not ingest_running(self.settings)):
            with self._lock:
                if self._slot.handle is handle:
                    self._open(location)
        return generation

    @staticmethod
    def _generation(collection: Any) -> int:
        return int((collection.metadata or {}).get("generation", 0))

    @contextlib.contextmanager
    def _held(self) -> Iterator[tuple[_Handle | None, Any, Location]]:
        """The current client, collection and location, the client kept open until the
        caller is done (another thread may reopen the store meanwhile)."""
        with self._lock:
            handle, collection, location = self._slot.handle, self.collection, self.location
            if handle is not None:
                with _handles_lock:
                    handle.users += 1
        try:
            yield handle, collection, location
        finally:
            if handle is not None:
                _release(handle)

    @contextlib.contextmanager
    def _use(self) -> Iterator[Any]:
        """The collection, for one Chroma call; Chroma's errors become a ``StoreError`` that
        names the fix."""
        with self._held() as (_, collection, location):
            try:
                yield collection
            except (StoreError, TypeError, KeyError):
                raise
            except Exception as exc:  # noqa: BLE001 - chromadb's errors, by version
                raise self._error(exc, location) from exc

    def _read(self, read: Callable[[Any], Any]) -> Any:
        """``read(collection)``; if the collection was replaced meanwhile (rebuilt, or reset in
        place, by another process or store), once more on the new one."""
        try:
            with self._use() as collection:
                return read(collection)
        except StoreError as exc:
            if self.aside or exc.__cause__ is None or not _missing(exc.__cause__):
                raise
            before = self.collection
            self._sync()
            if self.collection is before:
                raise
            with self._use() as collection:
                return read(collection)

    # -- reading ---------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Bumped by every ingest that changes something; caches key on it. Read afresh, since
        another process (an ingest, another app) may have changed it."""
        return self._sync()

    @property
    def state(self) -> tuple[str, int]:
        """(collection id, generation): what the lexical index must match."""
        generation = self._sync()
        return str(self.collection.id), generation

    @property
    def lexical_path(self) -> Path:
        if self.aside:
            if self.location.path is not None:
                return self.location.path / f"lexical-{self.settings.collection}.sqlite3"
            return self.settings.store_dir / f"lexical-{self.location.collection}.sqlite3"
        return self.settings.store_dir / f"lexical-{self.settings.collection}.sqlite3"

    def count(self) -> int:
        return self._read(lambda collection: collection.count())

    def ids(self) -> set[str]:
        return {cid for ids, in self._scan(include=[]) for cid in ids}

    def files(self) -> dict[tuple[str, str], StoredFile]:
        """What is stored, per (root, source)."""
        acc: dict[tuple[str, str], dict] = {}
        for ids, metas in self._scan(include=["metadatas"]):
            for cid, m in zip(ids, metas, strict=True):
                if m is None:
                    continue
                key = (m["root"], m["source"])
                entry = acc.setdefault(key, {"shas": set(), "n": m["n_chunks"], "ids": set(),
                                             "at": None})
                entry["shas"].add(m["file_sha"])
                entry["ids"].add(cid)
                at = m.get("indexed_at")
                if at and (entry["at"] is None or at > entry["at"]):
                    entry["at"] = str(at)
        out = {}
        for (root, source), e in acc.items():
            sha = next(iter(e["shas"])) if len(e["shas"]) == 1 else ""  # mixed: half-written
            out[(root, source)] = StoredFile(root, source, sha, e["n"], frozenset(e["ids"]),
                                             e["at"])
        return out

    def all_chunks(self) -> list[Chunk]:
        chunks = []
        for ids, metas, docs in self._scan(include=["metadatas", "documents"]):
            for cid, m, doc in zip(ids, metas, docs, strict=True):
                if m is not None and doc is not None:
                    chunks.append(Chunk(cid, m["source"], int(m["start"]), int(m["end"]), doc))
        return chunks

    def _scan(self, include: list[str]) -> Iterable[tuple]:
        offset = 0
        while True:
            got = self._read(lambda collection, offset=offset: collection.get(
                include=include, limit=_BATCH, offset=offset))
            if not got["ids"]:
                return
            yield (got["ids"], *(got[k] for k in include))
            offset += len(got["ids"])

    def query(self, vector: np.ndarray, k: int) -> list[Passage]:
        """The ``k`` nearest chunks (fewer if the store holds fewer: Chroma caps ``n_results``
        itself, so no count round trip is spent here). Chunks deleted by another process since
        this one read the index are never returned: the index is reread, or they are dropped."""
        if not self.aside and self._server is None and \
                current_location(self.settings) != self.location:
            self._sync()  # rebuilt by another process: this index's files are going
        try:
            out, vanished = self._query(vector, k)
        except StoreError:
            location = self.location
            if self.aside:
                raise
            self._sync()  # the collection may have been replaced meanwhile
            if self.location == location:
                raise
            out, vanished = self._query(vector, k)
        if vanished and not self.aside:
            self._sync()
            out, _ = self._query(vector, k)
        return out

    def _query(self, vector: np.ndarray, k: int) -> tuple[list[Passage], int]:
        res = self._read(lambda collection: collection.query(
            query_embeddings=[np.asarray(vector).tolist()], n_results=k,
            include=["documents", "metadatas", "distances"]))
        out = []
        for cid, doc, m, d in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                  res["distances"][0], strict=True):
            if doc is None or m is None:
                continue
            out.append(Passage(cid, m["source"], int(m["start"]), int(m["end"]), doc,
                               dense_score=1.0 - float(d)))
        return out, len(res["ids"][0]) - len(out)

    def embeddings_of(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self._read(lambda collection: collection.get(ids=ids, include=["embeddings"]))
        return {cid: np.asarray(e, dtype=np.float32)
                for cid, e in zip(got["ids"], got["embeddings"], strict=True) if e is not None}

    def as_langchain(self, embeddings: Embeddings) -> LangChainVectorStore:
        from langchain_chroma import Chroma

        return Chroma(client=self.client, collection_name=self.location.collection,
                      embedding_function=embeddings)

    # -- writing ---------------------------------------------------------------------------
    def add(self, chunks: list[Chunk], vectors: np.ndarray, root: str, sha: str,
            n_chunks: int, indexed_at: str | None = None) -> None:
        at = indexed_at or now_iso()
        for i in range(0, len(chunks), _BATCH):
            part = chunks[i:i + _BATCH]
            with self._use() as collection:
                collection.upsert(
                    ids=[c.id for c in part], embeddings=vectors[i:i + _BATCH].tolist(),
                    documents=[c.text for c in part],
                    metadatas=[_meta(c, root, sha, n_chunks, at) for c in part])
            _written(len(part))

    def relabel(self, chunks: list[Chunk], root: str, sha: str, n_chunks: int,
                indexed_at: str | None = None) -> None:
        """Update offsets and file hash of chunks whose text (and embedding) did not change."""
        at = indexed_at or now_iso()
        for i in range(0, len(chunks), _BATCH):
            part = chunks[i:i + _BATCH]
            with self._use() as collection:
                collection.update(ids=[c.id for c in part],
                                  metadatas=[_meta(c, root, sha, n_chunks, at) for c in part])

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), _BATCH):
            with self._use() as collection:
                collection.delete(ids=ids[i:i + _BATCH])

    def bump_generation(self) -> None:
        with self._lock:
            generation = self._sync() + 1
            with self._use() as collection:
                meta = dict(collection.metadata or {})
                meta["generation"] = generation
                collection.modify(metadata=meta)
            handle = self._slot.handle
            if handle is not None:  # this client made the change: its index is in step
                handle.generation = generation

    def clear(self) -> None:
        """Delete the collection and start an empty one, in place."""
        with self._lock:
            location = self.location
            self._slot.release()
            self._open(location, create=True, reset=True)

    def publish(self) -> None:
        """Make this store, built aside, the current one (hold the ingest lock): the pointer
        is replaced atomically, then the lexical index is copied to its stable path, then the
        old index is deleted."""
        from .lexical import LexicalIndex

        if not self.aside:
            return
        settings = self.settings
        old = current_location(settings, self._server)
        aside_lexical = self.lexical_path
        if self._server is not None:
            pointer = self._server.get_or_create_collection(_pointer_collection(settings),
                                                            embedding_function=None)
            pointer.modify(metadata={"target": self.location.collection})
        else:
            assert self.location.path is not None
            _fsync_dir(self.location.path)
            _write_pointer(_pointer_file(settings), self.location.path.name)
        self.aside = False
        state = self.state
        lexical = LexicalIndex(self.lexical_path)
        try:
            if not lexical.copy_from(aside_lexical, state):
                lexical.rebuild(self.all_chunks(), state)
        finally:
            lexical.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{aside_lexical}{suffix}").unlink(missing_ok=True)
        if old != self.location:
            if self._server is not None:
                with contextlib.suppress(Exception):
                    self._server.delete_collection(old.collection)
            elif old.path == settings.store_dir:
                _remove_root_index(settings)
            elif old.path is not None:
                _forget(old.path)
                shutil.rmtree(old.path, ignore_errors=True)


def _check_compatible(collection: Any, embedder: tuple[str, int]) -> None:
    meta = collection.metadata or {}
    name, dimension = embedder
    if meta.get("embedding_model") != name or int(meta.get("dimension", 0)) != dimension:
        raise StoreError(
            f"the index was built with embedding model {meta.get('embedding_model')!r} "
            f"({meta.get('dimension')} dims), this one uses {name!r} "
            f"({dimension} dims): rebuild it with `rag ingest --rebuild`")
    if int(meta.get("schema", 0)) != SCHEMA_VERSION:
        raise StoreError(f"the index has schema {meta.get('schema')}, this version needs "
                         f"{SCHEMA_VERSION}: rebuild it with `rag ingest --rebuild`")


# -- checking Chroma's files before Chroma reads them --------------------------------------
# hnswlib's header.bin (chroma-core/hnswlib, PERSISTENCE_VERSION 1): int version; size_t
# offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset,
# offsetData; int maxlevel; uint enterpoint_node; size_t maxM, maxM0, M; double mult;
# size_t ef_construction.
_HNSW_HEADER = struct.Struct("<i6qiI3qdq")


def check_segments(location: Location, settings: Settings, tries: int = 5) -> None:
    """Raise a ``StoreError`` naming the fix if Chroma's files at ``location`` are damaged:
    an unreadable ``chroma.sqlite3``, or an HNSW segment whose files disagree with its header
    (Chroma would fail with an internal error, or crash the process). A writer in another
    process may be half-way through saving a segment: a failed check is retried."""
    for attempt in range(tries):
        problem = segment_problem(location, settings)
        if problem is None:
            return
        if attempt + 1 < tries:
            time.sleep(0.1)
    raise StoreError(f"the index at {_where(settings, location)} is damaged ({problem}): "
                     f"{REBUILD}")


def segment_problem(location: Location, settings: Settings) -> str | None:
    """What is wrong with the files of ``location``'s collection, or None."""
    if location.path is None:
        return None
    db = location.path / "chroma.sqlite3"
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=2)) as con:
            rows = con.execute(
                "SELECT s.id FROM segments s JOIN collections c ON s.collection = c.id "
                "WHERE c.name = ? AND s.scope = 'VECTOR'", (location.collection,)).fetchall()
    except sqlite3.OperationalError:
        return None  # locked by a writer, or an old schema: Chroma itself will tell
    except sqlite3.DatabaseError as exc:
        return f"chroma.sqlite3: {exc}"
    for (segment,) in rows:
        problem = hnsw_problem(location.path / segment)
        if problem:
            return f"HNSW segment {segment}: {problem}"
    return None


def hnsw_problem(folder: Path) -> str | None:
    """What is inconsistent in one saved HNSW index, or None (also when it was never saved)."""
    header = folder / "header.bin"
    if not header.exists():
        return None
    data = header.read_bytes()
    if len(data) != _HNSW_HEADER.size:
        return f"header.bin has {len(data)} bytes, not {_HNSW_HEADER.size}"
    (version, _, max_elements, count, per_element, label_offset, offset_data, max_level,
     entry, max_m, _max_m0, _m, _mult, _ef) = _HNSW_HEADER.unpack(data)
    if (version != 1 or count > max_elements or per_element <= 0 or max_m <= 0
            or label_offset + 8 != per_element or not 0 < offset_data < per_element
            or (count and not (0 <= max_level and entry < count))):
        return "header.bin is not a valid header"

    def size(name: str) -> int:
        try:
            return (folder / name).stat().st_size
        except FileNotFoundError:
            return -1

    if size("data_level0.bin") < count * per_element:
        return (f"data_level0.bin has {size('data_level0.bin')} bytes, {count} elements need "
                f"{count * per_element}")
    if size("length.bin") < count * 4:
        return f"length.bin has {size('length.bin')} bytes, {count} elements need {count * 4}"
    try:
        links = (folder / "link_lists.bin").read_bytes()
    except FileNotFoundError:
        return "link_lists.bin is missing"
    per_level = max_m * 4 + 4
    at = 0
    for _ in range(count):
        if at + 4 > len(links):
            return f"link_lists.bin is truncated at {len(links)} bytes"
        (n,) = struct.unpack_from("<I", links, at)
        if n % per_level or n // per_level > max_level:
            return f"link_lists.bin is not valid at byte {at}"
        at += 4 + n
    if at > len(links):
        return f"link_lists.bin is truncated at {len(links)} bytes"
    return None


# -- helpers -------------------------------------------------------------------------------
def _meta(c: Chunk, root: str, sha: str, n_chunks: int, indexed_at: str) -> dict:
    return {"source": c.source, "root": root, "start": c.start, "end": c.end,
            "file_sha": sha, "n_chunks": n_chunks, "indexed_at": indexed_at}


def now_iso() -> str:
    """The current time as ISO 8601 in UTC, to the second (what ``indexed_at`` holds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _where(settings: Settings, location: Location | None = None) -> str:
    if settings.chroma_url:
        name = location.collection if location else settings.collection
        return f"{settings.chroma_url} (collection {name})"
    return str(location.path if location and location.path else settings.store_dir)


def _missing(exc: BaseException) -> bool:
    text = str(exc).lower()
    return type(exc).__name__ == "NotFoundError" or "does not exist" in text or \
        "not found" in text


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "…"


def _server_error(settings: Settings, exc: BaseException) -> StoreError:
    url = urlparse(settings.chroma_url)
    return StoreError(f"cannot reach the Chroma server at {settings.chroma_url} "
                      f"({_short(exc)}); start it with `chroma run --path DIR --port "
                      f"{url.port or 8000}`")


def _http_client(settings: Settings) -> Any:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    url = urlparse(settings.chroma_url)
    try:
        return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                   ssl=url.scheme == "https",
                                   settings=ChromaSettings(anonymized_telemetry=False))
    except Exception as exc:  # noqa: BLE001 - connection refused, bad answer
        raise _server_error(settings, exc) from exc
