"""Hybrid retrieval: dense (Chroma) + lexical (BM25), fused by reciprocal rank."""

from __future__ import annotations

import threading

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict
from rank_bm25 import BM25Okapi

from .embeddings import LocalEmbeddings
from .settings import Settings
from .store import ChunkStore
from .text import content_words
from .types import Chunk, Passage


class LexicalIndex:
    """BM25 (Okapi) over content words; numbers such as '3.2' and '1992' are kept as terms."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        docs = [content_words(c.text) for c in chunks]
        self.vocabulary = {w for d in docs for w in d}
        self.doc_freq: dict[str, int] = {}
        for d in docs:
            for w in set(d):
                self.doc_freq[w] = self.doc_freq.get(w, 0) + 1
        self._bm25 = BM25Okapi(docs) if chunks else None

    def rare_terms(self, query: str, max_share: float = 0.2) -> list[str]:
        """Query words that occur in the corpus, but in few chunks: names, figures, topics."""
        limit = max(1, int(max_share * len(self.chunks)))
        return [w for w in dict.fromkeys(content_words(query))
                if 0 < self.doc_freq.get(w, 0) <= limit]

    def search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        terms = [t for t in content_words(query) if t in self.vocabulary]
        if not terms or self._bm25 is None:
            return []
        scores = self._bm25.get_scores(terms)
        order = np.argsort(-scores)[:k]
        return [(self.chunks[i], float(scores[i])) for i in order if scores[i] > 0]


def rrf(rankings: list[list[str]], weights: list[float], k: int = 60) -> dict[str, float]:
    """Reciprocal-rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1."""
    fused: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, doc_id in enumerate(ranking, start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + w / (k + rank)
    return fused


class HybridSearcher:
    """Holds the store, the embedder and a BM25 index rebuilt when the store changes."""

    def __init__(self, store: ChunkStore, embeddings: LocalEmbeddings, settings: Settings) -> None:
        self.store = store
        self.embeddings = embeddings
        self.settings = settings
        self._lexical: LexicalIndex | None = None
        self._generation = -1
        self._lock = threading.Lock()

    def lexical(self) -> LexicalIndex:
        gen = self.store.generation
        with self._lock:
            if self._lexical is None or gen != self._generation:
                self._lexical = LexicalIndex(self.store.all_chunks())
                self._generation = gen
            return self._lexical

    def search(self, query: str, k: int | None = None,
               query_vector: np.ndarray | None = None) -> list[Passage]:
        s = self.settings
        k = k or s.k
        vec = self.embeddings.encode([query])[0] if query_vector is None else query_vector
        dense = self.store.query(vec, s.k_dense)
        lexical = self.lexical().search(query, s.k_lexical)
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
        return ranked


class HybridRetriever(BaseRetriever):
    """The hybrid searcher as a LangChain retriever, for users composing their own chains."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    searcher: HybridSearcher
    k: int = 4

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(p) for p in self.searcher.search(query, self.k)]


def to_document(p: Passage) -> Document:
    meta = p.to_dict()
    text = meta.pop("text")
    return Document(page_content=text, metadata=meta, id=p.chunk_id)
