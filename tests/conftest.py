"""Shared fixtures: a small fixture corpus, a private index per test, the real embedder."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import Assistant, Settings
from rag.embeddings import LocalEmbeddings, default_embeddings
from tests.support import free_port, running_server

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"
PROJECT = Path(__file__).resolve().parent.parent
ARTICLE = PROJECT / "corpus" / "us-policy-in-tajikistan.txt"
OUTPUT = PROJECT / "test-output"


MIN_FREE_MB = 2000  # a full run writes about 1.2 GB of indexes and logs under the temp folder


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once, with one clear line, on a disk too full for the run: otherwise hundreds of
    tests fail at set-up with errors that look like damaged indexes."""
    for where in {Path(tempfile.gettempdir()), PROJECT}:
        free = shutil.disk_usage(where).free // 2**20
        if free < MIN_FREE_MB:
            pytest.exit(f"only {free} MB free on the disk of {where}; the tests need about "
                        f"{MIN_FREE_MB} MB: free some space and run them again", returncode=1)


@pytest.fixture(scope="session")
def embeddings() -> LocalEmbeddings:
    return default_embeddings()


@pytest.fixture(scope="module")
def article_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A private copy of the default article with its own (empty) index, per test module."""
    root = tmp_path_factory.mktemp("article")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(ARTICLE, corpus / ARTICLE.name)
    return Settings.load(corpus_dir=corpus, store_dir=root / "store",
                         model_dir=PROJECT / ".rag" / "models")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A writable copy of the fixture corpus."""
    dest = tmp_path / "corpus"
    shutil.copytree(FIXTURES, dest)
    return dest


@pytest.fixture
def settings(tmp_path: Path, corpus: Path) -> Settings:
    return Settings.load(corpus_dir=corpus, store_dir=tmp_path / "store",
                         model_dir=PROJECT / ".rag" / "models")


class FakeLLM:
    """Replays scripted model outputs and records the prompts it was given."""

    name = "fake"

    def __init__(self, *outputs: str) -> None:
        self.outputs = list(outputs)
        self.calls: list[list[dict[str, str]]] = []

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        self.calls.append(messages)
        text = self.outputs.pop(0) if self.outputs else ""
        for i in range(0, len(text), 7):
            yield text[i:i + 7]


@pytest.fixture
def fake_llm() -> type[FakeLLM]:
    return FakeLLM


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``chroma run`` server on loopback, for the client/server mode."""
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    cmd = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(path),
           "--host", "127.0.0.1", "--port", str(port)]
    with running_server(cmd, f"http://127.0.0.1:{port}/api/v2/heartbeat",
                        OUTPUT / "servers" / "chroma.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def make(settings, embeddings, fake_llm):
    """An Assistant over the fixture corpus with a scripted model: ``make(*outputs, **settings
    changes)`` -> (assistant, llm), ingested."""
    def build(*outputs, **changes):
        llm = fake_llm(*outputs)
        assistant = Assistant(settings.replace(**changes), llm=llm, embeddings=embeddings)
        assistant.ingest(progress=False)
        return assistant, llm
    return build
