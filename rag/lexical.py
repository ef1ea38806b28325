"""The lexical index: BM25 over content words in SQLite FTS5, on disk and updated in place.

It lives beside the vector store (``<store_dir>/lexical-<collection>.sqlite3``) and is keyed on
the Chroma collection's id and generation: ingestion updates both, and a reader that finds the
two out of step (an ingest killed half-way, a store rebuilt by another machine) rebuilds this
index from Chroma. Questions never load the chunks into memory: a search is one FTS5 query.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from .text import content_words, known_word
from .types import Chunk

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, source TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (source, start);
CREATE VIRTUAL TABLE IF NOT EXISTS terms USING fts5 (
    words, tokenize = "unicode61 remove_diacritics 0 tokenchars '.'");
CREATE VIRTUAL TABLE IF NOT EXISTS vocab USING fts5vocab (terms, 'row');
"""


def _term(word: str) -> str:
    """A content word as one FTS5 token ('u.s.' and '3.2' stay whole; apostrophes go)."""
    return word.replace("'", "")


class LexicalIndex:
    """BM25 (FTS5's Okapi, k1=1.2, b=0.75) over ``content_words``; numbers stay terms."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> tuple[str, int]:
        """(collection id, generation) of the vector store this index mirrors."""
        rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        return rows.get("collection", ""), int(rows.get("generation", -1))

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    # -- writing: each call is one transaction, so a crash leaves the old state or the new ----
    def apply(self, add: Iterable[Chunk], delete: Iterable[str],
              state: tuple[str, int]) -> None:
        with self._transaction():
            self._delete(delete)
            self._add(add)
            self._set_state(state)

    def rebuild(self, chunks: Iterable[Chunk], state: tuple[str, int]) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM chunks")
            self._db.execute("DELETE FROM terms")
            self._add(chunks)
            self._set_state(state)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _add(self, chunks: Iterable[Chunk]) -> None:
        for c in chunks:
            old = self._db.execute("SELECT rowid FROM chunks WHERE id = ?", (c.id,)).fetchone()
            if old:  # same text re-labelled with new offsets
                self._db.execute('UPDATE chunks SET source=?, start=?, "end"=? WHERE rowid=?',
                                 (c.source, c.start, c.end, old[0]))
                continue
            cur = self._db.execute(
                'INSERT INTO chunks (id, source, start, "end", text) VALUES (?, ?, ?, ?, ?)',
                (c.id, c.source, c.start, c.end, c.text))
            self._db.execute("INSERT INTO terms (rowid, words) VALUES (?, ?)",
                             (cur.lastrowid, " ".join(_term(w) for w in content_words(c.text))))

    def _delete(self, ids: Iterable[str]) -> None:
        for cid in ids:
            row = self._db.execute("SELECT rowid FROM chunks WHERE id = ?", (cid,)).fetchone()
            if row:
                self._db.execute("DELETE FROM terms WHERE rowid = ?", row)
                self._db.execute("DELETE FROM chunks WHERE rowid = ?", row)

    def _set_state(self, state: tuple[str, int]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             [("collection", state[0]), ("generation", str(state[1]))])

    # -- reading ---------------------------------------------------------------------------
    def search(self, query: str, k: int) -> list[tuple[Chunk, float]]:
        terms = list(dict.fromkeys(_term(w) for w in content_words(query)))
        if not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        rows = self._db.execute(
            'SELECT c.id, c.source, c.start, c."end", c.text, -bm25(terms) AS score '
            "FROM terms JOIN chunks c ON c.rowid = terms.rowid "
            "WHERE terms MATCH ? ORDER BY bm25(terms) LIMIT ?", (match, k)).fetchall()
        return [(Chunk(*row[:5]), float(row[5])) for row in rows]

    def doc_freq(self, word: str) -> int:
        row = self._db.execute("SELECT doc FROM vocab WHERE term = ?", (_term(word),)).fetchone()
        return row[0] if row else 0

    def rare_terms(self, query: str, max_share: float = 0.2) -> list[str]:
        """Query words that occur in the corpus, but in few chunks: names, figures, topics."""
        limit, freqs = self._query_freqs(query, max_share)
        return [w for w, df in freqs if 0 < df <= limit]

    def common_terms(self, query: str, max_share: float = 0.2) -> list[str]:
        """Query words found in more chunks than ``rare_terms`` allows: the corpus's topic
        (its country, its main actors), context rather than a specific claim."""
        limit, freqs = self._query_freqs(query, max_share)
        return [w for w, df in freqs if df > limit]

    def _query_freqs(self, query: str, max_share: float) -> tuple[int, list[tuple[str, int]]]:
        """The chunk count that ``max_share`` allows, and each distinct content word of the
        query with the number of chunks holding it: the one split into rare and common."""
        limit = max(1, int(max_share * self.count()))
        return limit, [(w, self.doc_freq(w)) for w in dict.fromkeys(content_words(query))]

    def knows(self, word: str) -> bool:
        """``known_word`` against the whole corpus vocabulary (prefix-tolerant)."""
        return known_word(word, _Vocabulary(self))

    def first_chunk(self, source: str) -> Chunk | None:
        row = self._db.execute('SELECT id, source, start, "end", text FROM chunks '
                               "WHERE source = ? ORDER BY start LIMIT 1", (source,)).fetchone()
        return Chunk(*row) if row else None

    def chunks(self) -> Iterable[Chunk]:
        for row in self._db.execute('SELECT id, source, start, "end", text FROM chunks'):
            yield Chunk(*row)


class _Vocabulary:
    """The index's terms seen as a set, with a prefix scan for ``known_word``."""

    def __init__(self, index: LexicalIndex) -> None:
        self._index = index

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._index.doc_freq(word) > 0

    def starting_with(self, prefix: str) -> list[str]:
        rows = self._index._db.execute(
            "SELECT term FROM vocab WHERE term >= ? AND term < ? LIMIT 200",
            (prefix, prefix + "\U0010ffff")).fetchall()
        return [r[0] for r in rows]
