"""LangChain conformance, proven by LangChain's own standard suites (``langchain-tests``) where
one applies, and by LangChain's callbacks, streaming and fake models elsewhere. The index, the
embedder and the checker are real; the answering model is scripted."""

from __future__ import annotations

import shutil

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from rag import Assistant, Settings
from rag.retrieval import HybridRetriever
from tests.conftest import FIXTURES, PROJECT, FakeLLM


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, embeddings) -> Assistant:
    """One ingested copy of the fixture corpus for the whole module (read-only tests)."""
    root = tmp_path_factory.mktemp("langchain")
    shutil.copytree(FIXTURES, root / "corpus")
    settings = Settings.load(corpus_dir=root / "corpus", store_dir=root / "store",
                             model_dir=PROJECT / ".rag" / "models")
    assistant = Assistant(settings, llm=FakeLLM(), embeddings=embeddings)
    assistant.ingest(progress=False)
    return assistant


class TestHybridRetrieverStandard(RetrieversIntegrationTests):
    """``langchain_tests``' retriever suite on ``Assistant.retriever()``'s class, over a real
    index of the fixture corpus."""

    @pytest.fixture(autouse=True)
    def _searcher(self, indexed: Assistant) -> None:
        self.searcher = indexed.searcher

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"searcher": self.searcher}

    @property
    def retriever_query_example(self) -> str:
        return "When did the Kestrel Harbor Bridge open?"


def test_k_is_a_field_and_an_invoke_keyword_and_wrong_ones_are_refused(indexed):
    retriever = indexed.retriever()
    assert retriever.k == indexed.settings.k
    assert len(retriever.invoke("bridge")) == retriever.k
    docs = retriever.invoke("47,000 passengers", k=1)
    assert len(docs) == 1 and isinstance(docs[0], Document)
    assert "47,000" in docs[0].page_content and docs[0].id == docs[0].metadata["chunk_id"]
    assert len(HybridRetriever(searcher=indexed.searcher, k=2).invoke("bridge")) == 2
    with pytest.raises(ValueError):
        retriever.invoke("bridge", k=0)
    with pytest.raises(TypeError, match="top_k"):
        retriever.invoke("bridge", top_k=2)
    with pytest.raises(ValueError):
        HybridRetriever(searcher=indexed.searcher, k=0)


async def test_ainvoke_honours_k(indexed):
    docs = await indexed.retriever().ainvoke("47,000 passengers", k=2)
    assert len(docs) == 2 and "47,000" in docs[0].page_content
