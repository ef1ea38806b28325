"""Retrieval at scale: 1k, 10k and 100k chunks, embedded Chroma vs a ``chroma run`` server.

The corpus is real English prose available offline: the docstrings (over 200 characters) of
the Python standard library and of the packages installed in ``.venv``, chunked by the
project's own chunker and embedded by the project's own model. Chunk texts and vectors are
cached under ``benchmark-output/scale/`` (embedding 100k chunks takes ~15-20 min on 2 cores;
later runs reuse them).
"""

from __future__ import annotations

import ast
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rag import Settings
from rag.chunking import chunk_text
from rag.embeddings import default_embeddings
from rag.lexical import LexicalIndex
from rag.retrieval import HybridSearcher
from rag.store import VectorStore, make_store
from rag.types import Chunk
from tests.support import free_port, rss_mb, running_server

CACHE = Path("benchmark-output/scale")


def docstring_chunks(limit: int, cache_dir: Path = CACHE) -> list[Chunk]:
    """Up to ``limit`` chunks of docstrings, stdlib first; cached as JSON lines."""
    cache = cache_dir / f"chunks-{limit}.jsonl"
    if cache.exists():
        return [Chunk(**json.loads(line)) for line in cache.open()]
    roots = [Path(sys.base_prefix) / "lib" / f"python{sys.version_info.major}."
             f"{sys.version_info.minor}", Path(sys.prefix) / "lib" /
             f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"]
    chunks: list[Chunk] = []
    seen: set[str] = set()
    ids: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef |
                                  ast.AsyncFunctionDef):
                    continue
                doc = ast.get_docstring(node)
                if not doc or len(doc) < 200 or doc in seen:
                    continue
                seen.add(doc)
                name = getattr(node, "name", "")
                source = f"{path.relative_to(root).as_posix()}#{name}"
                for c in chunk_text(doc, source, 96, 48):
                    if c.id not in ids:  # the same text twice under one name: one chunk
                        ids.add(c.id)
                        chunks.append(c)
                if len(chunks) >= limit:
                    return _save(cache, chunks[:limit])
    return _save(cache, chunks)


def _save(cache: Path, chunks: list[Chunk]) -> list[Chunk]:
    cache.parent.mkdir(parents=True, exist_ok=True)
    with cache.open("w") as fh:
        for c in chunks:
            fh.write(json.dumps(c.__dict__) + "\n")
    return chunks


def vectors_for(chunks: list[Chunk], cache_dir: Path = CACHE, part: int = 5000) -> np.ndarray:
    """The chunks' embeddings, computed ``part`` at a time and cached per part (resumable)."""
    parts = []
    for i in range(0, len(chunks), part):
        cache = cache_dir / f"vectors-{i}-{min(i + part, len(chunks))}.npy"
        if not cache.exists():
            print(f"embedding scale corpus chunks {i:,}-{i + part:,} of {len(chunks):,}",
                  file=sys.stderr)
            np.save(cache, default_embeddings().encode([c.text for c in chunks[i:i + part]],
                                                       progress=True))
        parts.append(np.load(cache))
    return np.concatenate(parts)


def _load(settings: Settings, chunks: list[Chunk], vecs: np.ndarray) -> VectorStore:
    """Fill a fresh collection and its lexical index (what ``ingest`` would write)."""
    store = make_store(settings, reset=True)
    by_source: dict[str, list[int]] = {}
    for i, c in enumerate(chunks):
        by_source.setdefault(c.source, []).append(i)
    batch: list[int] = []
    for idx in by_source.values():
        batch += idx
        if len(batch) >= 2000:
            _add(store, chunks, vecs, batch)
            batch = []
    if batch:
        _add(store, chunks, vecs, batch)
    store.bump_generation()
    LexicalIndex(store.lexical_path).rebuild(chunks, store.state)
    return store


def _add(store: VectorStore, chunks: list[Chunk], vecs: np.ndarray, idx: list[int]) -> None:
    store.add([chunks[i] for i in idx], vecs[idx], "bench", "sha", 1)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))]


def measure(store: VectorStore, settings: Settings, queries: list[str], repeats: int = 3
            ) -> dict[str, float]:
    """p50/p95 in ms of a Chroma top-10 query, a lexical top-10 query and the full hybrid
    search (query embedding + both + fusion)."""
    emb = default_embeddings()
    searcher = HybridSearcher(store, emb, settings)
    lexical = searcher.lexical()
    qvecs = emb.encode(queries)
    for q, v in zip(queries[:5], qvecs[:5], strict=True):  # warm caches
        searcher.search(q, query_vector=v)
    dense, lex, hybrid = [], [], []
    for _ in range(repeats):
        for q, v in zip(queries, qvecs, strict=True):
            t0 = time.perf_counter()
            store.query(v, settings.k_dense)
            t1 = time.perf_counter()
            lexical.search(q, settings.k_lexical)
            t2 = time.perf_counter()
            searcher.search(q)
            t3 = time.perf_counter()
            dense.append(t1 - t0)
            lex.append(t2 - t1)
            hybrid.append(t3 - t2)
    ms = 1000.0
    return {"chroma_p50_ms": round(statistics.median(dense) * ms, 1),
            "chroma_p95_ms": round(_pct(dense, 0.95) * ms, 1),
            "lexical_p50_ms": round(statistics.median(lex) * ms, 1),
            "lexical_p95_ms": round(_pct(lex, 0.95) * ms, 1),
            "hybrid_p50_ms": round(statistics.median(hybrid) * ms, 1),
            "hybrid_p95_ms": round(_pct(hybrid, 0.95) * ms, 1)}


def run(sizes: list[int], queries: list[str], out: Path) -> list[dict]:
    chunks = docstring_chunks(max(sizes), out / "scale")
    print(f"scale corpus: {len(chunks):,} docstring chunks from the stdlib and .venv packages",
          file=sys.stderr)
    vecs = vectors_for(chunks, out / "scale")
    first = {c.id: i for i, c in reversed(list(enumerate(chunks)))}  # caches made before the
    keep = sorted(first.values())  # de-duplication above may hold a few repeated ids
    chunks, vecs = [chunks[i] for i in keep], vecs[keep]
    sizes = [min(n, len(chunks)) for n in sizes]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        server_dir = Path(tmp) / "server"
        cmd = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(server_dir),
               "--host", "127.0.0.1", "--port", str(port)]
        with running_server(cmd, f"http://127.0.0.1:{port}/api/v2/heartbeat",
                            out / "chroma-server.log") as server:
            for n in sizes:
                for mode in ("embedded", "server"):
                    settings = Settings.load(store_dir=Path(tmp) / f"store-{mode}",
                                             collection=f"scale{n}",
                                             chroma_url=f"http://127.0.0.1:{port}"
                                             if mode == "server" else "")
                    t0 = time.perf_counter()
                    store = _load(settings, chunks[:n], vecs[:n])
                    load_s = time.perf_counter() - t0
                    row = {"chunks": n, "mode": mode, "load_s": round(load_s, 1),
                           **measure(store, settings, queries),
                           "client_rss_mb": round(rss_mb(_pid())),
                           "server_rss_mb": round(rss_mb(server.pid)) if mode == "server"
                           else None}
                    print(json.dumps(row), file=sys.stderr)
                    rows.append(row)
                    store.clear()
    return rows


def _pid() -> int:
    import os

    return os.getpid()
