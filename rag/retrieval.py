"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused by reciprocal rank."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from .embeddings import Embedder
from .ingestion import IngestBusy, ingest_lock
from .lexical import LexicalIndex
from .settings import Settings
from .store import VectorStore
from .types import Chunk, Passage


def rrf(rankings: list[list[str]], weights: list[float], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (k + rank)
    return fused


class HybridSearcher:
    """Holds the store, the embedder and the on-disk lexical index that mirrors the store."""

    def __init__(self, store: VectorStore, embeddings: Embedder,
                 settings: Settings) -> None:
        self.store = store
        self.embeddings = embeddings
        self.settings = settings
        self._lexical = LexicalIndex(store.lexical_path)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lexical")

    def lexical(self) -> LexicalIndex:
        """The lexical index, first resynchronised from the store if it is out of step (an
        interrupted ingest) and no ingest is running (a running one will write it)."""
        state = self.store.state
        with self._lock:
            if self._lexical.state != state:
                try:
                    with ingest_lock(self.settings):
                        state = self.store.state
                        if self._lexical.state != state:
                            self._lexical.rebuild(self.store.all_chunks(), state)
                except IngestBusy:
                    pass
            return self._lexical

    def _lexical_search(self, query: str, k: int) -> tuple[list[tuple[Chunk, float]], float]:
        t0 = time.perf_counter()
        hits = self.lexical().search(query, k)
        return hits, time.perf_counter() - t0

    def search(self, query: str, k: int | None = None, query_vector: np.ndarray | None = None,
               timings: dict[str, float] | None = None) -> list[Passage]:
        """Top ``k`` passages by reciprocal-rank fusion; stage times (s) go to ``timings``."""
        s = self.settings
        k = k or s.k
        t = timings if timings is not None else {}
        t0 = time.perf_counter()
        # The lexical side (a generation check, then one FTS5 query) needs no query vector:
        # it runs in its own thread while the query is embedded and Chroma is asked; both
        # sides wait on I/O or native code that releases the GIL.
        lexical_job = self._pool.submit(self._lexical_search, query, s.k_lexical)
        vec = self.embeddings.encode_query(query) if query_vector is None else query_vector
        t1 = time.perf_counter()
        dense = self.store.query(vec, s.k_dense)
        t2 = time.perf_counter()
        lexical, t["lexical"] = lexical_job.result()
        t3 = time.perf_counter()
        if query_vector is None:
            t["embed_query"] = t1 - t0
        t["dense"] = t2 - t1
        by_id: dict[str, Passage] = {p.chunk_id: p for p in dense}
        for chunk, score in lexical:
            p = by_id.get(chunk.id)
            if p is None:
                p = by_id[chunk.id] = Passage(chunk.id, chunk.source, chunk.start, chunk.end,
                                              chunk.text)
            p.lexical_score = score
        fused = rrf([[p.chunk_id for p in dense], [c.id for c, _ in lexical]],
                    [s.dense_weight, s.lexical_weight], s.rrf_k)
        ranked = sorted(by_id.values(), key=lambda p: -fused[p.chunk_id])[:k]
        for i, p in enumerate(ranked, start=1):
            p.score, p.rank = fused[p.chunk_id], i
        t["fusion"] = time.perf_counter() - t3
        return ranked


class HybridRetriever(BaseRetriever):
    """The hybrid searcher as a LangChain retriever, for users composing their own chains.

    ``k`` (a field, or a keyword of ``invoke``/``ainvoke``: ``retriever.invoke(q, k=1)``) is
    the number of documents returned, at most: fewer if the index holds fewer matches. Each
    ``Document`` has ``id`` = the chunk id and the ``Passage`` fields (source, offsets, fused,
    dense and BM25 scores, rank) as metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: HybridSearcher
    k: int = Field(default=4, ge=1)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, **kwargs: Any) -> list[Document]:
        k = self._k(k, kwargs)
        return [to_document(p) for p in self.searcher.search(query, k)]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, **kwargs: Any) -> list[Document]:
        k = self._k(k, kwargs)
        passages = await run_in_executor(None, self.searcher.search, query, k)
        return [to_document(p) for p in passages]

    def _k(self, k: int | None, kwargs: dict[str, Any]) -> int:
        kwargs.pop("verbose", None)  # BaseRetriever.invoke reads it and passes it on
        if kwargs:
            raise TypeError(f"HybridRetriever takes k and no other search keyword: got "
                            f"{', '.join(sorted(kwargs))}")
        if k is None:
            return self.k
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, not {k!r}")
        return k


def to_document(p: Passage) -> Document:
    """A passage as a LangChain document: its text, its id, its other fields as metadata."""
    meta = p.to_dict()
    text = meta.pop("text")
    return Document(page_content=text, metadata=meta, id=p.chunk_id)
