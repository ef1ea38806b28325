"""LangChain conformance, proven by LangChain's own standard suites (``langchain-tests``) where
one applies, and by LangChain's callbacks, streaming and fake models elsewhere. The index, the
embedder and the checker are real; the answering model is scripted."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from uuid import UUID

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests

from rag import Answer, Assistant, BackendError, QuestionError, Settings, StoreError
from rag.embeddings import LangChainEmbeddings, LocalEmbeddings, default_embeddings
from rag.generation import ChatModelLLM, LLMChatModel
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


# -- the whole chain as a Runnable -------------------------------------------------------
class Recorder(BaseCallbackHandler):
    """Every callback event with its run's name, id and parent id; tokens too."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, UUID, UUID | None]] = []
        self.tokens: list[str] = []

    def _add(self, event: str, run_id: UUID, parent_run_id: UUID | None, name: str = ""
             ) -> None:
        self.events.append((event, name, run_id, parent_run_id))

    def on_chain_start(self, serialized, inputs, *, run_id, parent_run_id=None, **kw):
        self._add("chain_start", run_id, parent_run_id, kw.get("name") or "")

    def on_chain_end(self, outputs, *, run_id, parent_run_id=None, **kw):
        self._add("chain_end", run_id, parent_run_id)
        self.output = outputs

    def on_retriever_start(self, serialized, query, *, run_id, parent_run_id=None, **kw):
        self._add("retriever_start", run_id, parent_run_id, kw.get("name") or "")
        self.query = query

    def on_retriever_end(self, documents, *, run_id, parent_run_id=None, **kw):
        self._add("retriever_end", run_id, parent_run_id)
        self.documents = documents

    def on_chat_model_start(self, serialized, messages, *, run_id, parent_run_id=None, **kw):
        self._add("chat_model_start", run_id, parent_run_id,
                  kw.get("name") or serialized.get("id", [""])[-1])
        self.prompt = messages[0]

    def on_llm_new_token(self, token, *, run_id, parent_run_id=None, **kw):
        if token:
            self.tokens.append(token)

    def on_llm_end(self, response, *, run_id, parent_run_id=None, **kw):
        self._add("llm_end", run_id, parent_run_id)

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]

    def check_tree(self, chat_model: str) -> None:
        """One chain run; the retriever and the chat model runs are its children."""
        (chain,) = [e for e in self.events if e[0] == "chain_start"]
        assert chain[1] == "cited_answer" and chain[3] is None
        (retriever,) = [e for e in self.events if e[0] == "retriever_start"]
        (model,) = [e for e in self.events if e[0] == "chat_model_start"]
        assert retriever[1] == "HybridRetriever" and model[1] == chat_model
        assert retriever[3] == chain[2] and model[3] == chain[2]
        assert self.kinds() == ["chain_start", "retriever_start", "retriever_end",
                                "chat_model_start", "llm_end", "chain_end"]


@pytest.fixture
def make(settings, embeddings):
    def build(*outputs: str, llm=None) -> tuple[Assistant, FakeLLM]:
        llm = llm or FakeLLM(*outputs)
        assistant = Assistant(settings, llm=llm, embeddings=embeddings)
        assistant.ingest(progress=False)
        return assistant, llm
    return build


BRIDGE = "The bridge opened in 1932 [1]."


def test_runnable_invoke_takes_a_string_or_a_question_dict(make):
    assistant, llm = make(BRIDGE, BRIDGE)
    chain = assistant.as_runnable()
    for value in ("When did the bridge open?", {"question": "When did the bridge open?"}):
        answer = chain.invoke(value)
        assert isinstance(answer, Answer) and answer.text == BRIDGE and answer.citations
        assert "1932" in answer.citations[0].quote
    assert len(llm.calls) == 2


@pytest.mark.parametrize("history", [
    [HumanMessage("How much did the bridge cost?"), AIMessage("6.25 million pounds [1].")],
    [("human", "How much did the bridge cost?"), ("ai", "6.25 million pounds [1].")],
    [{"role": "user", "content": "How much did the bridge cost?"},
     {"role": "assistant", "content": "6.25 million pounds [1]."}],
])
def test_runnable_reads_a_follow_up_with_the_chat_historys_questions(make, history):
    said = 'Dr. Felix Amundsen notes that "the overrun nearly bankrupted the harbor authority" [1].'
    assistant, llm = make(said)
    answer = assistant.as_runnable().invoke(
        {"question": "And who said that?", "chat_history": history})
    assert answer.read_as == "How much did the bridge cost? And who said that?"
    assert "Question: How much did the bridge cost? And who said that?" in \
        llm.calls[0][1]["content"]
    assert "6.25 million pounds [1]." not in llm.calls[0][1]["content"]  # answers are not read


def test_runnable_refuses_other_inputs_clearly(make):
    chain = make()[0].as_runnable()
    with pytest.raises(ValueError, match="question"):
        chain.invoke({"query": "When did the bridge open?"})
    with pytest.raises(TypeError, match="question"):
        chain.invoke(42)
    with pytest.raises(QuestionError):
        chain.invoke({"question": "   "})


def test_runnable_streams_the_models_text_then_the_checked_answer(make):
    assistant, _ = make(BRIDGE)
    chunks = list(assistant.as_runnable().stream("When did the bridge open?"))
    *text, answer = chunks
    assert len(text) > 1 and all(isinstance(c, str) for c in text)  # FakeLLM: 7 characters
    assert "".join(text) == BRIDGE
    assert isinstance(answer, Answer) and answer.citations and answer.text == BRIDGE


def test_runnable_stream_yields_each_token_as_soon_as_the_model_gives_it(make):
    release = threading.Event()

    class SlowLLM(FakeLLM):
        def stream(self, messages, max_tokens):
            yield "The bridge opened "
            assert release.wait(30), "the first token was not delivered before the second"
            yield "in 1932 [1]."

    assistant, _ = make(llm=SlowLLM())
    chunks = assistant.as_runnable().stream("When did the bridge open?")
    assert next(chunks) == "The bridge opened "  # while the model is still generating
    release.set()
    *rest, answer = list(chunks)
    assert rest == ["in 1932 [1]."] and answer.citations


def test_an_abstention_streams_the_answer_alone(make):
    assistant, llm = make("never used")
    chunks = list(assistant.as_runnable().stream("What is a good recipe for chocolate cake?"))
    assert len(chunks) == 1 and chunks[0].abstained and llm.calls == []


@pytest.mark.parametrize("mode", ["invoke", "stream"])
def test_retrieval_and_generation_are_child_runs_seen_by_callbacks(make, mode):
    assistant, _ = make(BRIDGE)
    recorder = Recorder()
    chain = assistant.as_runnable()
    config = {"callbacks": [recorder]}
    if mode == "invoke":
        answer = chain.invoke("When did the bridge open?", config)
    else:
        *_, answer = chain.stream("When did the bridge open?", config)
    recorder.check_tree(chat_model="LLMChatModel")
    assert recorder.query == "When did the bridge open?"
    assert [d.id for d in recorder.documents] == [p.chunk_id for p in answer.passages[:4]]
    assert recorder.prompt[0].type == "system" and recorder.prompt[1].type == "human"
    assert "".join(recorder.tokens) == BRIDGE
    assert recorder.output == answer


def test_ask_outside_a_langchain_run_makes_no_runs(make):
    assistant, _ = make(BRIDGE)
    with pytest.MonkeyPatch.context() as m:  # plain ask: no callback machinery at all
        m.setattr("langchain_core.callbacks.manager.CallbackManager.configure",
                  lambda *a, **k: pytest.fail("a callback manager was made"))
        assert assistant.ask("When did the bridge open?").citations


async def test_astream_events_shows_retrieval_tokens_and_the_answer(make):
    assistant, _ = make(BRIDGE)
    events = [e async for e in assistant.as_runnable().astream_events(
        "When did the bridge open?", version="v2")]
    kinds = [e["event"] for e in events]
    for kind in ("on_chain_start", "on_retriever_end", "on_chat_model_start",
                 "on_chat_model_stream", "on_chat_model_end", "on_chain_end"):
        assert kind in kinds, kind
    tokens = [e["data"]["chunk"].content for e in events if e["event"] == "on_chat_model_stream"]
    assert "".join(tokens) == BRIDGE
    streamed = [e["data"]["chunk"] for e in events if e["event"] == "on_chain_stream"]
    assert "".join(streamed[:-1]) == BRIDGE and streamed[-1].citations
    assert events[-1]["data"]["output"].citations


async def test_astream_and_ainvoke(make):
    assistant, _ = make(BRIDGE, BRIDGE)
    chunks = [c async for c in assistant.as_runnable().astream("When did the bridge open?")]
    assert "".join(chunks[:-1]) == BRIDGE and chunks[-1].citations
    answer = await assistant.as_runnable().ainvoke({"question": "When did the bridge open?"})
    assert answer.citations


def test_the_runnable_composes_with_other_runnables(make):
    assistant, _ = make(BRIDGE, BRIDGE)
    chain = assistant.as_runnable() | RunnableLambda(lambda answer: answer.text)
    assert chain.invoke("When did the bridge open?") == BRIDGE
    assert list(chain.stream("When did the bridge open?")) == [BRIDGE]
    schema = assistant.as_runnable().input_schema.model_json_schema()
    assert "QuestionInput" in json.dumps(schema)


# -- any LangChain chat model and embeddings ---------------------------------------------
def test_any_langchain_chat_model_answers_with_citations(make):
    model = GenericFakeChatModel(messages=iter([BRIDGE, BRIDGE]))
    assistant, _ = make(llm=model)
    assert isinstance(assistant.llm, ChatModelLLM) and assistant.llm.model is model
    answer = assistant.ask("When did the bridge open?")
    assert answer.text == BRIDGE and "1932" in answer.citations[0].quote
    recorder = Recorder()
    *text, answer = assistant.as_runnable().stream("When did the bridge open?",
                                                   {"callbacks": [recorder]})
    assert "".join(text) == BRIDGE and len(text) > 1 and answer.citations  # model's tokens
    recorder.check_tree(chat_model="GenericFakeChatModel")  # its own run, no wrapper run


def test_a_failing_chat_model_falls_back_to_labelled_quotes(make):
    model = FakeListChatModel(responses=[BRIDGE], error_on_chunk_number=0)
    assistant, _ = make(llm=model)
    answer = assistant.ask("When did the bridge open?")
    assert answer.fallback and answer.reason.startswith("backend: the chat model")
    assert "FakeListChatModelError" in answer.reason and answer.citations


def test_max_tokens_reaches_a_chat_model_that_has_the_setting_unset(make):
    seen: list[dict] = []

    class Capped(GenericFakeChatModel):
        max_tokens: int | None = None

        def _stream(self, messages, stop=None, run_manager=None, **kwargs):
            seen.append(kwargs)
            yield from super()._stream(messages, stop, run_manager, **kwargs)

    assistant, _ = make(llm=Capped(messages=iter([BRIDGE, BRIDGE])))
    assistant.ask("When did the bridge open?")
    assert seen[-1]["max_tokens"] == assistant.settings.max_tokens
    assistant.llm.model.max_tokens = 9
    assistant.ask("When did the bridge open?")
    assert "max_tokens" not in seen[-1]  # the model's own setting wins


class MiniLM(Embeddings):
    """A LangChain Embeddings of a user's own (here the same local model, unnormalised)."""

    def __init__(self) -> None:
        self.model = default_embeddings()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return (self.model.encode(texts) * 3.0).tolist()

    def embed_query(self, text: str) -> list[float]:
        return (self.model.encode([text])[0] * 3.0).tolist()


def test_any_langchain_embeddings_ingest_retrieve_and_check(settings):
    assistant = Assistant(settings, llm=FakeLLM(BRIDGE), embeddings=MiniLM())
    assert isinstance(assistant.embeddings, LangChainEmbeddings)
    assert assistant.embeddings.name == "langchain:tests.test_langchain.MiniLM"
    assert assistant.embeddings.dimension == 384
    report = assistant.ingest(progress=False)
    assert report.added == 2 and report.embedded == report.chunks
    vectors = assistant.embeddings.encode(["a bridge", "a ferry"])
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    top = assistant.retrieve("How many passengers did the ferry carry?")[0]
    assert "47,000" in top.text and top.dense_score > 0.3
    answer = assistant.ask("When did the bridge open?")
    assert answer.text == BRIDGE and "1932" in answer.citations[0].quote
    with pytest.raises(StoreError, match="MiniLM.*--rebuild"):  # the index knows its model
        Assistant(settings, embeddings=default_embeddings()).retrieve("bridge")


def test_langchains_fake_embeddings_get_an_index_of_their_own_dimension(settings):
    fake = DeterministicFakeEmbedding(size=16)
    assistant = Assistant(settings.replace(store_dir=settings.store_dir.parent / "fake"),
                          llm=FakeLLM(), embeddings=fake)
    assert assistant.ingest(progress=False).added == 2
    passages = assistant.retrieve("47,000 passengers")  # BM25 finds the figure
    assert "47,000" in passages[0].text and passages[0].dense_score is not None
    assert len(assistant.store.embeddings_of([passages[0].chunk_id])[passages[0].chunk_id]) == 16
    docs = assistant.retriever().invoke("47,000 passengers", k=1)
    assert len(docs) == 1 and "47,000" in docs[0].page_content


def test_other_objects_are_refused_as_embeddings(settings):
    with pytest.raises(TypeError, match="Embeddings"):
        Assistant(settings, embeddings=object())


class TestLocalEmbeddingsStandard(EmbeddingsIntegrationTests):
    """``langchain_tests``' embeddings suite on the project's local model."""

    @property
    def embeddings_class(self) -> type[LocalEmbeddings]:
        return LocalEmbeddings


class _AdapterUnderTest:
    """The adapter over a deterministic fake model, for both of ``langchain_tests``' suites."""

    @property
    def embeddings_class(self) -> type[LangChainEmbeddings]:
        return LangChainEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"embeddings": DeterministicFakeEmbedding(size=16)}


class TestLangChainEmbeddingsStandard(_AdapterUnderTest, EmbeddingsIntegrationTests):
    """``langchain_tests``' embeddings suite on the adapter (it is an ``Embeddings`` too)."""


class TestLangChainEmbeddingsUnitStandard(_AdapterUnderTest, EmbeddingsUnitTests):
    pass


# -- the project's LLM as a LangChain chat model (how generation shows in callbacks) ------
class Echo:
    """A scripted LLM that greets and repeats the last message, a few characters at a time."""

    name = "echo"

    def warm_up(self) -> None:
        pass

    def stream(self, messages: list[dict[str, str]], max_tokens: int) -> Iterator[str]:
        text = f"Hello! You said: {messages[-1]['content'][:200]}"
        for i in range(0, len(text), 5):
            yield text[i:i + 5]


class _ChatModelUnderTest:
    """``LLMChatModel`` over the scripted ``Echo``, for both of ``langchain_tests``' suites."""

    @property
    def chat_model_class(self) -> type[LLMChatModel]:
        return LLMChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"llm": Echo()}


class TestLLMChatModelUnitStandard(_ChatModelUnderTest, ChatModelUnitTests):
    """``langchain_tests``' chat model unit suite on ``LLMChatModel``."""


class TestLLMChatModelStandard(_ChatModelUnderTest, ChatModelIntegrationTests):
    """``langchain_tests``' chat model suite on ``LLMChatModel`` over a scripted LLM: text in,
    streamed text out (no tools, structured output, usage metadata or per-call model)."""

    @property
    def returns_usage_metadata(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False


def test_llm_chat_model_stops_at_a_stop_sequence_even_across_tokens():
    model = LLMChatModel(llm=Echo())
    assert model.invoke("one two three", stop=["two"]).content == "Hello! You said: one "
    chunks = [c.content for c in model.stream("one two three", stop=["d: o"])]
    assert "".join(chunks) == "Hello! You sai"
    assert model.invoke("x", stop=["nothing"]).content == "Hello! You said: x"


def test_closing_the_runnables_stream_stops_the_model(make):
    stopped = threading.Event()

    class Endless(FakeLLM):
        def stream(self, messages, max_tokens):
            try:
                while True:
                    yield "The bridge "
                    time.sleep(0.01)
            finally:
                stopped.set()

    assistant, _ = make(llm=Endless())
    chunks = assistant.as_runnable().stream("When did the bridge open?")
    assert next(chunks) == "The bridge "
    chunks.close()
    assert stopped.wait(10)


@pytest.mark.e2e
def test_the_embedded_model_streams_through_the_runnable_as_a_chat_model_run(settings,
                                                                            embeddings):
    assistant = Assistant(settings, embeddings=embeddings)  # the real 1.5B GGUF model
    assistant.ingest(progress=False)
    recorder = Recorder()
    *text, answer = assistant.as_runnable().stream(
        {"question": "When did the Kestrel Harbor Bridge open?"}, {"callbacks": [recorder]})
    assert len(text) > 3 and all(isinstance(t, str) for t in text)  # token by token
    assert "".join(recorder.tokens) == "".join(text)
    recorder.check_tree(chat_model="LLMChatModel")
    assert not answer.abstained and "1932" in answer.text
    assert any("1932" in c.quote for c in answer.citations)


def test_ask_inside_a_users_own_runnable_reports_the_same_child_runs(make):
    assistant, _ = make(BRIDGE)
    recorder = Recorder()
    mine = RunnableLambda(lambda q: assistant.ask(q).text, name="cited_answer")
    assert mine.invoke("When did the bridge open?", {"callbacks": [recorder]}) == BRIDGE
    recorder.check_tree(chat_model="LLMChatModel")


def test_a_failing_model_inside_a_langchain_run_still_falls_back(make):
    class Broken(FakeLLM):
        def stream(self, messages, max_tokens):
            yield "The bridge"
            raise BackendError("the model process died")

    assistant, _ = make(llm=Broken())
    recorder = Recorder()
    answer = assistant.as_runnable().invoke("When did the bridge open?", {"callbacks": [recorder]})
    assert answer.fallback and "died" in answer.reason and answer.citations
    assert "chain_end" in recorder.kinds() and "llm_end" not in recorder.kinds()
