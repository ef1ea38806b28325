"""Client/server mode: the same pipeline against a real ``chroma run`` server and a real
OpenAI-compatible LLM server (llama-cpp-python's, with the small model), both on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from rag import Assistant, Settings, StoreError
from rag.ingestion import ingest
from rag.models import model_file
from rag.store import make_store
from tests.support import free_port, running_server

from .conftest import OUTPUT


@pytest.fixture
def server_settings(settings: Settings, chroma_server: str, request) -> Settings:
    # one collection per test on the shared server
    return settings.replace(chroma_url=chroma_server, collection=f"t{abs(hash(request.node.name))}")


def test_ingest_and_answer_through_a_chroma_server(server_settings, settings, embeddings,
                                                   fake_llm):
    first = ingest(settings=server_settings, embeddings=embeddings, progress=False)
    again = ingest(settings=server_settings, embeddings=embeddings, progress=False)
    assert first.embedded == first.chunks > 0
    assert again.embedded == 0 and again.unchanged == 2

    assert make_store(server_settings).count() == first.chunks  # a fresh client of the server

    # the embedded store gives the same ranking: only the client differs
    ingest(settings=settings, embeddings=embeddings, progress=False)
    question = "Who was the chief engineer of the bridge?"
    via_server = Assistant(server_settings, embeddings=embeddings).retrieve(question)
    local = Assistant(settings, embeddings=embeddings).retrieve(question)
    assert [p.chunk_id for p in via_server] == [p.chunk_id for p in local]

    llm = fake_llm("Margit Oduya was the chief engineer [1].")
    answer = Assistant(server_settings, llm=llm, embeddings=embeddings).ask(question)
    assert not answer.abstained
    assert "Margit Oduya" in answer.citations[0].quote


def test_a_file_removed_from_the_corpus_leaves_the_server_collection(server_settings,
                                                                    embeddings):
    ingest(settings=server_settings, embeddings=embeddings, progress=False)
    (server_settings.corpus_dir / "ferry.txt").unlink()
    report = ingest(settings=server_settings, embeddings=embeddings, progress=False)
    assert report.removed == 1
    sources = {c.source for c in make_store(server_settings).all_chunks()}
    assert sources == {"harbor-bridge.md"}


def test_an_unreachable_chroma_server_names_the_fix(settings, embeddings):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match="cannot reach the Chroma server.*chroma run"):
        ingest(settings=settings.replace(chroma_url=url), embeddings=embeddings, progress=False)


@pytest.fixture(scope="module")
def llm_server(article_settings: Settings) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server with the 0.5B model."""
    port = free_port()
    path = model_file("0.5b", article_settings.model_dir)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
           "--model_alias", "small", "--verbose", "False"]
    with running_server(cmd, f"http://127.0.0.1:{port}/v1/models",
                        OUTPUT / "servers" / "llama-server.log"):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.mark.e2e
def test_answers_through_an_openai_compatible_server(article_settings, embeddings, llm_server):
    settings = article_settings.replace(backend="openai", openai_base_url=llm_server,
                                        openai_model="small")
    assistant = Assistant(settings, embeddings=embeddings)
    assistant.ingest(progress=False)
    answer = assistant.ask("What minerals does Tajikistan hold significant deposits of?")
    assert assistant.llm.name.startswith("openai:small@")
    assert not answer.abstained and not answer.fallback, answer.raw
    assert "lithium" in answer.text
    assert any("lithium, tantalum" in c.quote for c in answer.citations)
    assert "first_token" in answer.timings
