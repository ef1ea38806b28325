"""Client/server mode: the same pipeline against a real ``chroma run`` server and a real
OpenAI-compatible LLM server (llama-cpp-python's, with the small model), both on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from rag import Assistant, ModelError, Settings, StoreError
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


# -- your own models: a GGUF by path, embeddings from a /v1/embeddings server -----------------
@pytest.mark.e2e
def test_a_gguf_given_by_path_answers_with_its_own_chat_template(article_settings, tmp_path,
                                                                  embeddings):
    own = tmp_path / "my-model.gguf"  # any GGUF file: here the small one under another name
    own.symlink_to(model_file("0.5b", article_settings.model_dir))
    settings = article_settings.replace(model_path=str(own), entailment=False)
    assistant = Assistant(settings, embeddings=embeddings)
    assistant.ingest(progress=False)
    answer = assistant.ask("What minerals does Tajikistan hold significant deposits of?")
    assert assistant.llm.name == "llama.cpp:my-model.gguf"
    assert not answer.abstained and not answer.fallback, answer.raw
    assert any("lithium, tantalum" in c.quote for c in answer.citations)

    listed = subprocess.run([sys.executable, "-m", "rag", "models"], capture_output=True,
                            text=True, env={**os.environ, "RAG_MODEL_PATH": str(own),
                                            "RAG_MODEL_DIR": str(settings.model_dir)})
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == f"my-model.gguf: {own.resolve()}"


@pytest.mark.parametrize("content", [b"", b"not a model at all", None])
def test_a_model_path_that_is_no_gguf_file_names_the_fix(tmp_path, content):
    path = tmp_path / "model.gguf"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "rag", "models"], capture_output=True,
                          text=True, env={**os.environ, "RAG_MODEL_PATH": str(path)})
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert ("not a GGUF file" if content is not None else "cannot read model_path") in proc.stderr


@pytest.fixture(scope="module")
def embedding_server(article_settings: Settings) -> Iterator[str]:
    """llama-cpp-python's server with ``--embedding``: a real OpenAI-compatible
    ``/v1/embeddings`` (the small chat model, pooled per text by the client)."""
    port = free_port()
    path = model_file("0.5b", article_settings.model_dir)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host",
           "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "2",
           "--embedding", "True", "--model_alias", "embedder", "--verbose", "False"]
    with running_server(cmd, f"http://127.0.0.1:{port}/v1/models",
                        OUTPUT / "servers" / "embedding-server.log"):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.mark.e2e
def test_ingest_and_retrieve_through_a_v1_embeddings_server(settings, embedding_server):
    remote = settings.replace(embedding_url=embedding_server, embedding_model="embedder")
    report = ingest(settings=remote, progress=False)
    assert report.embedded == report.chunks > 0
    assistant = Assistant(remote)
    assert assistant.embeddings.name == "openai:embedder"
    assert assistant.embeddings.dimension == 896  # the server's vectors, not MiniLM's 384
    passages = assistant.retrieve("Who was the chief engineer of the bridge?")
    assert any("Margit Oduya" in p.text for p in passages)

    # the packaged embedder refuses that index and names the fix, which works
    with pytest.raises(StoreError, match=r"openai:embedder.*rag ingest --rebuild"):
        Assistant(settings).retrieve("bridge")
    rebuilt = ingest(settings=settings, rebuild=True, progress=False)
    assert rebuilt.embedded == rebuilt.chunks == report.chunks
    local = Assistant(settings).retrieve("Who was the chief engineer of the bridge?")
    assert any("Margit Oduya" in p.text for p in local)


def test_an_unreachable_embedding_server_names_the_fix_and_writes_nothing(settings):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelError, match="cannot reach the embedding server"):
        ingest(settings=settings.replace(embedding_url=url), progress=False)
    with pytest.raises(StoreError, match="no index found"):
        make_store(settings)
