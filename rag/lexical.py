"""The lexical index: BM25 over content words in SQLite FTS5, on disk and updated in place.

It lives beside the vector store (``<store_dir>/lexical-<collection>.sqlite3``) and is keyed on
the Chroma collection's id and generation: ingestion updates both, and a reader that finds the
two out of step (an ingest killed half-way, a store rebuilt by another machine) rebuilds this
index from Chroma. Questions never load the chunks into memory: a search is one FTS5 query.

It is derived data: a file that SQLite cannot read (overwritten, truncated, not a database) is
deleted and created anew, empty and out of step, so that it is rebuilt from the vector store.
"""

from __future__ import annotations

import contextlib
import os
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
        self._lock = threading.Lock()
        self.recreated = False  # the file was unreadable and was replaced by an empty one
        self._broken = False  # a read failed: out of step until rebuilt in a new file
        with self._lock:
            try:
                self._connect()
            except sqlite3.DatabaseError:
                self._recreate()

    def _connect(self) -> None:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("SELECT key, value FROM meta").fetchall()
            inode = os.stat(self.path).st_ino
        except BaseException:
            db.close()
            raise
        self._db, self._inode, self._broken = db, inode, False

    def recreate(self) -> None:
        """Replace the file by an empty index (out of step with any store)."""
        with self._lock:
            self._recreate()

    def _recreate(self) -> None:
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self._db.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        self._connect()
        self.recreated = True

    def _follow(self) -> None:
        """Reconnect if another process replaced the file (it found it unreadable)."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            inode = -1
        if inode != self._inode:
            with self._lock:
                try:
                    self._connect()  # the old connection closes when no reader holds it
                except sqlite3.DatabaseError:
                    self._recreate()

    def close(self) -> None:
        self._db.close()

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> tuple[str, int]:
        """(collection id, generation) of the vector store this index mirrors; ("", -1) if
        the file cannot be read (so that it is rebuilt)."""
        self._follow()
        if self._broken:
            return "", -1
        try:
            rows = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            self._broken = True
            return "", -1
        return rows.get("collection", ""), int(rows.get("generation", -1))

    def problem(self) -> str | None:
        """What SQLite's integrity check finds wrong with the file, or None."""
        try:
            rows = self._db.execute("PRAGMA integrity_check").fetchall()
            self._db.execute("INSERT INTO terms (terms) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as exc:
            return str(exc)
        result = "; ".join(str(r[0]) for r in rows)
        return None if result == "ok" else result

    def count(self) -> int:
        rows = self._rows("SELECT count(*) FROM chunks")
        return rows[0][0] if rows else 0

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        """The rows of a read; none if the file cannot be read (it is then out of step, and
        rebuilt in a new file on the next check against the store)."""
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError:
            self._broken = True
            return []

    # -- writing: each call is one transaction, so a crash leaves the old state or the new ----
    def apply(self, add: Iterable[Chunk], delete: Iterable[str],
              state: tuple[str, int]) -> None:
        """Add and delete chunks. If the file turns out unreadable, it is created anew, empty
        and out of step: the next reader rebuilds it from the store."""
        try:
            with self._transaction():
                self._delete(delete)
                self._add(add)
                self._set_state(state)
        except sqlite3.DatabaseError:
            with self._lock:
                self._recreate()

    def rebuild(self, chunks: Iterable[Chunk], state: tuple[str, int]) -> None:
        """Replace everything by ``chunks``, in a new file if this one cannot be read."""
        chunks = list(chunks)
        if self._broken:
            with self._lock:
                self._recreate()
        try:
            self._rebuild(chunks, state)
        except sqlite3.DatabaseError:
            with self._lock:
                self._recreate()
            self._rebuild(chunks, state)

    def _rebuild(self, chunks: list[Chunk], state: tuple[str, int]) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM chunks")
            self._db.execute("DELETE FROM terms")
            self._add(chunks)
            self._set_state(state)

    def copy_from(self, path: Path, state: tuple[str, int]) -> bool:
        """Replace everything by the content of the index at ``path`` (built aside), in one
        transaction, if that index mirrors ``state``; False if it cannot be used."""
        try:
            with contextlib.closing(sqlite3.connect(path)) as src:
                meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
            if (meta.get("collection"), int(meta.get("generation", -1))) != tuple(state):
                return False
        except (sqlite3.Error, ValueError):
            return False
        for attempt in range(2):
            try:
                self._copy(path)
                return True
            except sqlite3.DatabaseError:
                if attempt:
                    raise
                with self._lock:
                    self._recreate()
        return False

    def _copy(self, path: Path) -> None:
        with self._lock:
            self._db.execute("ATTACH DATABASE ? AS src", (str(path),))
        try:
            with self._transaction():
                self._db.execute("DELETE FROM chunks")
                self._db.execute("DELETE FROM terms")
                self._db.execute('INSERT INTO chunks (rowid, id, source, start, "end", text) '
                                 'SELECT rowid, id, source, start, "end", text FROM src.chunks')
                self._db.execute("INSERT INTO terms (rowid, words) "
                                 "SELECT rowid, words FROM src.terms")
                self._db.execute("DELETE FROM meta")
                self._db.execute("INSERT INTO meta SELECT key, value FROM src.meta")
        finally:
            with self._lock:
                self._db.execute("DETACH DATABASE src")

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
        rows = self._rows(
            'SELECT c.id, c.source, c.start, c."end", c.text, -bm25(terms) AS score '
            "FROM terms JOIN chunks c ON c.rowid = terms.rowid "
            "WHERE terms MATCH ? ORDER BY bm25(terms) LIMIT ?", (match, k))
        return [(Chunk(*row[:5]), float(row[5])) for row in rows]

    def doc_freq(self, word: str) -> int:
        rows = self._rows("SELECT doc FROM vocab WHERE term = ?", (_term(word),))
        return rows[0][0] if rows else 0

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
        rows = self._rows('SELECT id, source, start, "end", text FROM chunks '
                          "WHERE source = ? ORDER BY start LIMIT 1", (source,))
        return Chunk(*rows[0]) if rows else None

    def chunks(self) -> Iterable[Chunk]:
        for row in self._rows('SELECT id, source, start, "end", text FROM chunks'):
            yield Chunk(*row)

    def ids(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT id FROM chunks")}


class _Vocabulary:
    """The index's terms seen as a set, with a prefix scan for ``known_word``."""

    def __init__(self, index: LexicalIndex) -> None:
        self._index = index

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and self._index.doc_freq(word) > 0

    def starting_with(self, prefix: str) -> list[str]:
        rows = self._index._rows(
            "SELECT term FROM vocab WHERE term >= ? AND term < ? LIMIT 200",
            (prefix, prefix + "\U0010ffff"))
        return [r[0] for r in rows]
