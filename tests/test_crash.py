"""Ingestion survives ``kill -9`` at any point, and answering goes on while an ingest runs.

A real ``rag ingest`` subprocess over a corpus of 40 files (~840 chunks, several seconds) is
killed at several points of its run; re-running the ingest must leave a store equal to a fresh
build: same chunks, same offsets, no duplicates, no orphans, the lexical index in step.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag import Assistant, IngestBusy, Settings
from rag.ingestion import ingest
from rag.lexical import LexicalIndex
from rag.store import make_store

from .conftest import ARTICLE, PROJECT
from .support import rotated_corpus

N_FILES = 40


def _big_corpus(dest: Path) -> Path:
    """40 distinct files made from the article's paragraphs, rotated."""
    paragraphs = [p for p in ARTICLE.read_text().split("\n\n") if p.strip()]
    return rotated_corpus(dest, paragraphs, N_FILES)


def _snapshot(settings: Settings) -> dict:
    """Everything that must equal a fresh build's, as comparable values."""
    store = make_store(settings)
    file_of = {cid: f for f in store.files().values() for cid in f.ids}
    rows = sorted((c.id, c.source, c.start, c.end, file_of[c.id].sha, file_of[c.id].n_chunks)
                  for c in store.all_chunks())
    lexical = LexicalIndex(store.lexical_path)
    return {"rows": rows, "count": store.count(), "unique": len({r[0] for r in rows}),
            "lexical": sorted((c.id, c.source, c.start, c.end) for c in lexical.chunks()),
            "in_step": lexical.state == store.state}


def _ingest_cmd(settings: Settings) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "RAG_STORE_DIR": str(settings.store_dir),
           "RAG_CORPUS_DIR": str(settings.corpus_dir), "HF_HUB_OFFLINE": "1"}
    return [sys.executable, "-m", "rag.cli", "ingest"], env


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict, float]:
    """The corpus, its fresh-build snapshot, and how long a full subprocess ingest took."""
    root = tmp_path_factory.mktemp("big")
    settings = Settings.load(corpus_dir=_big_corpus(root / "corpus"), store_dir=root / "fresh")
    cmd, env = _ingest_cmd(settings)
    t0 = time.monotonic()
    done = subprocess.run(cmd, env=env, cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return settings, _snapshot(settings), time.monotonic() - t0


def _stopped(pid: int) -> bool:
    """Whether the process has stopped itself (state T in /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


class Progress:
    """What an ingest subprocess has printed on stderr so far (its tqdm progress), read by a
    thread so that the kill points are events of the run, not guesses from a clock."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.text = ""
        self.proc = proc
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        while chunk := os.read(fd, 4096):
            self.text += chunk.decode(errors="replace")

    def embedded_share(self) -> float | None:
        """How far the 'Embedding' bar has got (0..1), None before it appears."""
        if "Embedding" not in self.text:
            return None
        done = re.findall(r"Embedding:\s*(\d+)%", self.text)
        return int(done[-1]) / 100 if done else 0.0


# (when, share): once the embedding bar shows `share` done (the load and embed phase), or once
# `share` of the chunks have been written to Chroma (the write phase, a second or two long: the
# ingest stops itself there, RAG_FAULT_STOP_AFTER_WRITES, so a loaded machine cannot let it
# finish before the kill lands).
KILL_POINTS = [("embedded", 0.0), ("embedded", 0.5), ("written", 0.1), ("written", 0.5),
               ("written", 0.9)]


@pytest.mark.parametrize(("when", "share"), KILL_POINTS)
def test_kill_9_mid_ingest_then_rerun_equals_a_fresh_build(big, tmp_path, embeddings, when,
                                                           share):
    fresh_settings, fresh, _ = big
    settings = fresh_settings.replace(store_dir=tmp_path / "store")
    cmd, env = _ingest_cmd(settings)
    if when == "written":
        env["RAG_FAULT_STOP_AFTER_WRITES"] = str(max(1, int(share * fresh["count"])))
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    progress = Progress(proc)
    while proc.poll() is None:
        if when == "embedded":
            done = progress.embedded_share()
            if done is not None and done >= share:
                break
        elif _stopped(proc.pid):
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    stored = make_store(settings, create=True).count()  # opens after the kill: not corrupt
    print(f"killed ({when} {share:.0%}): {stored} of {fresh['count']} chunks stored")
    assert proc.returncode == -signal.SIGKILL, progress.text[-500:]  # killed, not finished
    if when == "written":
        assert 0 < stored < fresh["count"]  # really mid-write
    else:
        assert stored == 0  # still embedding: nothing written yet

    report = ingest(settings=settings, embeddings=embeddings, progress=False)  # the re-run
    after = _snapshot(settings)
    assert after == fresh, f"killed ({when} {share:.0%})"
    assert report.chunks == fresh["count"] == after["unique"]
    again = ingest(settings=settings, embeddings=embeddings, progress=False)
    assert again.embedded == 0 and again.unchanged == N_FILES


def test_answers_keep_working_while_another_process_ingests(big, tmp_path, embeddings,
                                                            fake_llm):
    fresh_settings, fresh, _ = big
    settings = fresh_settings.replace(store_dir=tmp_path / "store")
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "seed-article.txt").write_text(ARTICLE.read_text())
    seeded = ingest([seed], settings=settings, embeddings=embeddings, progress=False).chunks

    llm = fake_llm(*["Boeing signed a $3.2 billion deal [1]."] * 1000)
    assistant = Assistant(settings, llm=llm, embeddings=embeddings)
    cmd, env = _ingest_cmd(settings)
    proc = subprocess.Popen(cmd, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = ""
    while "Embedding" not in seen and proc.poll() is None:  # it holds the lock by now
        seen += proc.stderr.read(1)
    answered, refused = 0, 0
    try:
        while proc.poll() is None:
            answer = assistant.ask("How much is the Boeing deal worth?")
            assert not answer.abstained and "3.2 billion" in answer.citations[0].quote
            answered += 1
            try:
                ingest([seed], settings=settings, embeddings=embeddings, progress=False)
            except IngestBusy as exc:
                assert "another ingest is running" in str(exc)
                refused += 1
            time.sleep(0.2)
    finally:
        rest = proc.stderr.read()
        proc.wait(600)
    assert proc.returncode == 0, seen + rest
    assert answered >= 3 and refused >= 1
    # once it finished, the new files are searchable (dense and lexical) in this process
    hits = assistant.retrieve("Field report number 37")
    assert any(p.source == "report-37.txt" for p in hits)
    assert _snapshot(settings)["count"] == fresh["count"] + seeded
