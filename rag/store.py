"""The vector store: what the pipeline needs of one (``VectorStore``), the Chroma collection that
provides it (``ChunkStore``), and ``make_store`` to open one from the settings.

To use another vector database, write a class with the ``VectorStore`` methods and add a branch
to ``make_store``; nothing outside this module touches Chroma objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

import numpy as np

from .embeddings import DIMENSION, MODEL_NAME
from .settings import Settings
from .types import Chunk, Passage

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore as LangChainVectorStore

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SCHEMA_VERSION = 1
_BATCH = 1000


class StoreError(Exception):
    """The vector store cannot be used as it is; the message names the fix."""


@dataclass(frozen=True)
class StoredFile:
    root: str
    source: str
    sha: str
    n_chunks: int
    ids: frozenset[str]

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
            n_chunks: int) -> None: ...

    def relabel(self, chunks: list[Chunk], root: str, sha: str, n_chunks: int) -> None: ...

    def delete(self, ids: Iterable[str]) -> None: ...

    def bump_generation(self) -> None: ...

    def clear(self) -> None:
        """Remove everything (``rag ingest --rebuild``)."""
        ...

    def as_langchain(self, embeddings: Embeddings) -> LangChainVectorStore:
        """The same chunks as a LangChain ``VectorStore`` (for chains built with LangChain)."""
        ...


def make_store(settings: Settings, create: bool = False, reset: bool = False) -> VectorStore:
    """Open the store the settings name. ``create``: make it if it does not exist; ``reset``:
    empty it first (whatever it holds, even an index of another embedding model)."""
    return ChunkStore(settings, create=create or reset, reset=reset)


class ChunkStore:
    """Chunks in a Chroma collection, embedded outside Chroma (Chroma never embeds anything)."""

    def __init__(self, settings: Settings, create: bool = False, reset: bool = False) -> None:
        self.settings = settings
        self.client = _client(settings, create)
        name = settings.collection
        try:
            if reset:
                self._delete()
            if create:
                self.collection = self._create()
            else:
                self.collection = self.client.get_collection(name, embedding_function=None)
        except StoreError:
            raise
        except Exception as exc:  # chromadb raises NotFoundError / ValueError by version
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                raise StoreError(f"no index found ({_where(settings)}): run `rag ingest` "
                                 "first") from exc
            raise StoreError(f"cannot open the index at {_where(settings)} ({exc}); "
                             "rebuild it with `rag ingest --rebuild`") from exc
        self._check_compatible()

    def _check_compatible(self) -> None:
        meta = self.collection.metadata or {}
        if meta.get("embedding_model") != MODEL_NAME or int(meta.get("dimension", 0)) != DIMENSION:
            raise StoreError(
                f"the index was built with embedding model {meta.get('embedding_model')!r} "
                f"({meta.get('dimension')} dims), this version uses {MODEL_NAME!r} "
                f"({DIMENSION} dims): rebuild it with `rag ingest --rebuild`")
        if int(meta.get("schema", 0)) != SCHEMA_VERSION:
            raise StoreError(f"the index has schema {meta.get('schema')}, this version needs "
                             f"{SCHEMA_VERSION}: rebuild it with `rag ingest --rebuild`")

    def _create(self):  # noqa: ANN202 - chromadb Collection
        return self.client.get_or_create_collection(
            self.settings.collection, embedding_function=None,
            metadata={"embedding_model": MODEL_NAME, "dimension": DIMENSION,
                      "schema": SCHEMA_VERSION, "generation": 0},
            configuration={"hnsw": {"space": "cosine"}})

    def clear(self) -> None:
        """Delete the collection and start an empty one (for ``--rebuild``)."""
        self._delete()
        self.collection = self._create()

    def _delete(self) -> None:
        try:
            self.client.delete_collection(self.settings.collection)
        except Exception:  # noqa: BLE001 - absent already
            pass

    def as_langchain(self, embeddings: Embeddings) -> LangChainVectorStore:
        from langchain_chroma import Chroma

        return Chroma(client=self.client, collection_name=self.settings.collection,
                      embedding_function=embeddings)

    # -- reading ---------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Bumped by every ingest that changes something; caches key on it. Read afresh, since
        another process (an ingest, another app) may have changed it."""
        try:
            fresh = self.client.get_collection(self.settings.collection, embedding_function=None)
        except Exception as exc:  # noqa: BLE001 - dropped by a rebuild elsewhere
            raise StoreError(f"the index at {_where(self.settings)} changed under this "
                             "process (rebuilt?); restart it") from exc
        if fresh.id != self.collection.id:
            raise StoreError(f"the index at {_where(self.settings)} was rebuilt by another "
                             "process; restart this one")
        return int((fresh.metadata or {}).get("generation", 0))

    @property
    def state(self) -> tuple[str, int]:
        """(collection id, generation): what the lexical index must match."""
        return str(self.collection.id), self.generation

    @property
    def lexical_path(self) -> Path:
        return self.settings.store_dir / f"lexical-{self.settings.collection}.sqlite3"

    def count(self) -> int:
        return self.collection.count()

    def files(self) -> dict[tuple[str, str], StoredFile]:
        """What is stored, per (root, source)."""
        acc: dict[tuple[str, str], dict] = {}
        for ids, metas in self._scan(include=["metadatas"]):
            for cid, m in zip(ids, metas, strict=True):
                key = (m["root"], m["source"])
                entry = acc.setdefault(key, {"shas": set(), "n": m["n_chunks"], "ids": set()})
                entry["shas"].add(m["file_sha"])
                entry["ids"].add(cid)
        out = {}
        for (root, source), e in acc.items():
            sha = next(iter(e["shas"])) if len(e["shas"]) == 1 else ""  # mixed: half-written
            out[(root, source)] = StoredFile(root, source, sha, e["n"], frozenset(e["ids"]))
        return out

    def all_chunks(self) -> list[Chunk]:
        chunks = []
        for ids, metas, docs in self._scan(include=["metadatas", "documents"]):
            for cid, m, doc in zip(ids, metas, docs, strict=True):
                chunks.append(Chunk(cid, m["source"], int(m["start"]), int(m["end"]), doc))
        return chunks

    def _scan(self, include: list[str]) -> Iterable[tuple]:
        offset = 0
        while True:
            got = self.collection.get(include=include, limit=_BATCH, offset=offset)
            if not got["ids"]:
                return
            yield (got["ids"], *(got[k] for k in include))
            offset += len(got["ids"])

    def query(self, vector: np.ndarray, k: int) -> list[Passage]:
        """The ``k`` nearest chunks (fewer if the store holds fewer: Chroma caps ``n_results``
        itself, so no count round trip is spent here)."""
        res = self.collection.query(query_embeddings=[np.asarray(vector).tolist()], n_results=k,
                                    include=["documents", "metadatas", "distances"])
        out = []
        for cid, doc, m, d in zip(res["ids"][0], res["documents"][0], res["metadatas"][0],
                                  res["distances"][0], strict=True):
            out.append(Passage(cid, m["source"], int(m["start"]), int(m["end"]), doc,
                               dense_score=1.0 - float(d)))
        return out

    def embeddings_of(self, ids: list[str]) -> dict[str, np.ndarray]:
        if not ids:
            return {}
        got = self.collection.get(ids=ids, include=["embeddings"])
        return {cid: np.asarray(e, dtype=np.float32)
                for cid, e in zip(got["ids"], got["embeddings"], strict=True)}

    # -- writing ---------------------------------------------------------------------------
    def add(self, chunks: list[Chunk], vectors: np.ndarray, root: str, sha: str,
            n_chunks: int) -> None:
        for i in range(0, len(chunks), _BATCH):
            part = chunks[i:i + _BATCH]
            self.collection.upsert(
                ids=[c.id for c in part], embeddings=vectors[i:i + _BATCH].tolist(),
                documents=[c.text for c in part],
                metadatas=[_meta(c, root, sha, n_chunks) for c in part])

    def relabel(self, chunks: list[Chunk], root: str, sha: str, n_chunks: int) -> None:
        """Update offsets and file hash of chunks whose text (and embedding) did not change."""
        for i in range(0, len(chunks), _BATCH):
            part = chunks[i:i + _BATCH]
            self.collection.update(ids=[c.id for c in part],
                                   metadatas=[_meta(c, root, sha, n_chunks) for c in part])

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), _BATCH):
            self.collection.delete(ids=ids[i:i + _BATCH])

    def bump_generation(self) -> None:
        meta = dict(self.collection.metadata or {})
        meta["generation"] = self.generation + 1
        self.collection.modify(metadata=meta)


def _meta(c: Chunk, root: str, sha: str, n_chunks: int) -> dict:
    return {"source": c.source, "root": root, "start": c.start, "end": c.end,
            "file_sha": sha, "n_chunks": n_chunks}


def _where(settings: Settings) -> str:
    return settings.chroma_url or str(settings.store_dir)


def _client(settings: Settings, create: bool):  # noqa: ANN202 - chromadb ClientAPI
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        try:
            return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                       ssl=url.scheme == "https", settings=chroma_settings)
        except Exception as exc:  # noqa: BLE001 - connection refused, bad answer
            raise StoreError(f"cannot reach the Chroma server at {settings.chroma_url} "
                             f"({exc}); start it with `chroma run --path DIR --port "
                             f"{url.port or 8000}`") from exc
    path = settings.store_dir
    if not create and not (path / "chroma.sqlite3").exists():
        raise StoreError(f"no index found at {path}: run `rag ingest` first")
    path.mkdir(parents=True, exist_ok=True)
    try:
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
    except Exception as exc:  # noqa: BLE001 - corrupt sqlite, wrong version
        raise StoreError(f"cannot open the index at {path} ({exc}); rebuild it with "
                         "`rag ingest --rebuild`") from exc
