"""The HTTP API (rag/api.py) over real servers on loopback.

First with a scripted model in this process (shapes, errors, auth, uploads, turn-taking with
the UI's code path); then the real ones: ``rag serve`` and the chat UI's server, with the real
embedded model, the real ``openai`` SDK, LangChain's ``ChatOpenAI`` and plain HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rag.api import create_app, inert, message_text
from rag.shared import TurnLock
from rag.types import Answer, Citation
from rag.ui import ChatService
from rag.web import allowed_hosts
from tests.support import PROJECT, free_port, running_app, running_server

from .conftest import ARTICLE, OUTPUT, FakeLLM

USER, PASSWORD = "ana", "correct horse battery"
BRIDGE = "The bridge opened in 1932 [1]."


# -- a scripted model, in this process ---------------------------------------------------------
class SlowLLM(FakeLLM):
    """A scripted model that takes its time and records how many answers it wrote at once."""

    def __init__(self, *outputs: str) -> None:
        super().__init__(*outputs)
        self.active = self.peak = 0
        self.spans: list[tuple[float, float]] = []
        self._count = threading.Lock()

    def stream(self, messages, max_tokens):  # noqa: ANN001, ANN201
        with self._count:
            self.active += 1
            self.peak = max(self.peak, self.active)
        t0 = time.monotonic()
        try:
            for piece in super().stream(messages, max_tokens):
                time.sleep(0.03)
                yield piece
        finally:
            with self._count:
                self.active -= 1
            self.spans.append((t0, time.monotonic()))


class Server:
    """``create_app`` under uvicorn in a thread, on a free loopback port."""

    def __init__(self, service: ChatService, credentials=None) -> None:  # noqa: ANN001
        import uvicorn

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        app = create_app(service, allowed_hosts("127.0.0.1", port), credentials)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def scripted(settings, embeddings, tmp_path):
    """A ChatService whose model is scripted, with its index, and the API served over it."""
    llm = SlowLLM(*[BRIDGE] * 8)
    service = ChatService(settings, uploads_dir=tmp_path / "uploads", llm=llm,
                          embeddings=embeddings)
    service.assistant().ingest(progress=False)
    server = Server(service)
    yield server.url, service, llm
    server.close()


def test_openai_sdk_gets_the_checked_answer_with_footnotes_and_citations(scripted, corpus):
    from openai import OpenAI

    url, _, _ = scripted
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    done = client.chat.completions.create(
        model="anything", messages=[{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "When did the bridge open?"}])
    text = done.choices[0].message.content
    assert text.startswith(BRIDGE) and "\n\nSources:\n[1] harbor-bridge.md (chars " in text
    extra = done.model_extra
    assert extra["abstained"] is False and extra["fallback"] is False
    c = extra["citations"][0]
    assert (corpus / c["source"]).read_text()[c["start"]:c["end"]] == c["quote"]
    assert f"\u201c{c['quote']}\u201d" in text
    assert done.model == "rag-1.5b" and done.usage.completion_tokens > 0

    chunks = list(client.chat.completions.create(
        model="rag-1.5b", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "When did the bridge open?"}]))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert streamed == text and len([ch for ch in chunks if ch.choices]) > 3
    last = [ch for ch in chunks if ch.choices][-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] == extra["citations"]
    assert chunks[-1].usage.completion_tokens == done.usage.completion_tokens


def test_follow_ups_are_read_with_the_earlier_user_messages(scripted):
    url, _, llm = scripted
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [
        {"role": "user", "content": "When did the Kestrel Harbor Bridge open?"},
        {"role": "assistant", "content": BRIDGE},
        {"role": "user", "content": [{"type": "text", "text": "And who said that?"}]}]},
        timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["read_as"].startswith("When did the Kestrel Harbor Bridge open?")
    assert "And who said that?" in llm.calls[-1][1]["content"]


def test_ask_returns_the_cli_json_shape(scripted, corpus):
    url, _, _ = scripted
    data = httpx.post(f"{url}/v1/ask", json={"question": "When did the bridge open?", "k": 2},
                      timeout=60).json()
    assert set(data) == {"answer", "abstained", "fallback", "citations", "seconds"}
    assert data["answer"] == BRIDGE and isinstance(data["seconds"], float)
    for c in data["citations"]:
        assert set(c) == {"n", "source", "chunk_id", "start", "end", "quote"}


def test_bad_requests_get_a_clear_400_in_openais_shape(scripted):
    from openai import BadRequestError, OpenAI

    url, _, llm = scripted
    for body in ({"question": "  "}, {"question": "why? " * 1000}, {"question": "x", "k": 0},
                 {"nope": 1}):
        r = httpx.post(f"{url}/v1/ask", json=body)
        assert r.status_code == 400 and r.json()["error"]["message"], (body, r.text)
    r = httpx.post(f"{url}/v1/ask", content=b"{not json", headers={"content-type": "text/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [
        {"role": "system", "content": "Hi"}]})
    assert r.status_code == 400 and "no user message" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/ask", content=b"x" * 1_100_000)
    assert r.status_code == 413
    client = OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(BadRequestError, match="empty"):
        client.chat.completions.create(model="rag", messages=[{"role": "user", "content": ""}],
                                       stream=True)
    assert llm.calls == []


def test_api_and_ui_answers_take_turns_on_the_model(scripted):
    """Two API requests and one UI question at once: all answered, one at a time."""
    url, service, llm = scripted

    def api(path: str, body: dict) -> httpx.Response:
        return httpx.post(f"{url}{path}", json=body, timeout=120)

    def ui() -> str:
        *_, (history, *_) = service.respond("When did the bridge open?", [], "1.5b", 4, False)
        return str(history[-1]["content"])

    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(api, "/v1/ask", {"question": "When did the bridge open?"}),
                pool.submit(api, "/v1/chat/completions",
                            {"messages": [{"role": "user", "content": "When did it open?"}],
                             "stream": True}),
                pool.submit(ui)]
        results = [j.result(timeout=120) for j in jobs]
    assert results[0].json()["answer"] == BRIDGE
    assert "[DONE]" in results[1].text and "Sources:" in results[1].text
    assert 'href="#cite-1-1"' in results[2]
    assert len(llm.spans) == 3 and llm.peak == 1
    spans = sorted(llm.spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))


def test_a_request_whose_client_left_while_waiting_is_not_answered(scripted):
    url, service, llm = scripted

    def until(condition) -> bool:  # noqa: ANN001
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.05)
        return condition()

    with service.generation, ThreadPoolExecutor(1) as pool:  # the model is busy (UI answer)
        for path, body in (("/v1/ask", {"question": "When did the bridge open?"}),
                           ("/v1/chat/completions", {"stream": True, "messages": [
                               {"role": "user", "content": "When did the bridge open?"}]})):
            client = pool.submit(httpx.post, f"{url}{path}", json=body, timeout=3.0)
            assert until(lambda: service.generation.waiting == 1)  # it waits for its turn
            with pytest.raises(httpx.ReadTimeout):
                client.result(timeout=30)  # ... and its client leaves
            assert until(lambda: service.generation.waiting == 0)  # it gave up its place
    time.sleep(0.3)
    assert llm.calls == []  # both requests came and went without a model call
    assert httpx.post(f"{url}/v1/ask", json={"question": "When did the bridge open?"},
                      timeout=60).json()["answer"] == BRIDGE


def test_a_caller_that_stops_while_waiting_leaves_the_queue():
    lock, stop, got = TurnLock(), threading.Event(), []
    lock.acquire()
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(stop)))
    waiter.start()
    second = threading.Thread(target=lambda: got.append(lock.acquire()))
    while lock.waiting < 1:
        time.sleep(0.01)
    second.start()
    while lock.waiting < 2:
        time.sleep(0.01)
    stop.set()
    waiter.join(5)
    assert got == [False] and lock.waiting == 1  # the stopped caller left, the other waits
    lock.release()
    second.join(5)
    assert got == [False, True] and lock.waiting == 0


def test_turns_are_granted_in_order():
    lock, order = TurnLock(), []
    lock.__enter__()
    threads = []
    for i in range(5):
        t = threading.Thread(target=lambda i=i: (lock.__enter__(), order.append(i),
                                                 lock.__exit__()))
        t.start()
        threads.append(t)
        while lock.waiting < i + 1:
            time.sleep(0.001)
    lock.__exit__()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4]


def test_documents_can_be_listed_uploaded_and_removed(scripted, tmp_path):
    url, service, _ = scripted
    listed = httpx.get(f"{url}/v1/documents").json()["documents"]
    assert {d["source"] for d in listed} == {"ferry.txt", "harbor-bridge.md"}
    assert all(d["chunks"] >= 1 and not d["uploaded"] for d in listed)
    note = b"The Zorblat lantern festival was first held in 1987 in Kulob.\n"
    r = httpx.post(f"{url}/v1/documents", files={"file": ("festival notes.txt", note)},
                   timeout=60)
    assert r.status_code == 200, r.text
    assert [{k: d[k] for k in ("source", "chunks", "uploaded", "bytes")}
            for d in r.json()["documents"]] == [{"source": "festival_notes.txt", "chunks": 1,
                                                 "uploaded": True, "bytes": len(note)}]
    assert (service.uploads_dir / "festival_notes.txt").read_bytes() == note
    r = httpx.post(f"{url}/v1/documents", files={"file": ("festival notes.txt", b"Other.\n")})
    assert r.json()["documents"][0]["source"] == "festival_notes-2.txt"  # the UI's rule
    found = service.assistant().retrieve("Zorblat lantern festival")
    assert found[0].source == "festival_notes.txt"

    r = httpx.delete(f"{url}/v1/documents/festival_notes.txt")
    assert r.status_code == 200
    assert r.json() | {"message": ""} == {"source": "festival_notes.txt", "chunks": 1,
                                          "file_deleted": True, "message": ""}
    assert not (service.uploads_dir / "festival_notes.txt").exists()
    sources = {d["source"] for d in httpx.get(f"{url}/v1/documents").json()["documents"]}
    assert sources == {"ferry.txt", "harbor-bridge.md", "festival_notes-2.txt"}
    assert all(p.source != "festival_notes.txt"
               for p in service.assistant().retrieve("Zorblat lantern festival 1987"))
    assert httpx.delete(f"{url}/v1/documents/festival_notes.txt").status_code == 404

    r = httpx.post(f"{url}/v1/documents", files={"file": ("tool.exe", b"MZ")})
    assert r.status_code == 422 and "unsupported type" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/documents",
                   files={"file": ("big.txt", b"The pier is long. " * 350_000)}, timeout=60)
    assert r.status_code == 413 and not (service.uploads_dir / "big.txt").exists()
    assert httpx.post(f"{url}/v1/documents", json={"file": "x"}).status_code == 415


def test_collections_keep_documents_and_answers_apart(scripted):
    from openai import OpenAI

    url, service, _ = scripted
    note = b"The Zorblat lantern festival was first held in 1987 in Kulob.\n"
    r = httpx.post(f"{url}/v1/documents", params={"collection": "fests"},
                   files={"file": ("festival.txt", note)}, timeout=60)
    assert r.status_code == 200, r.text
    assert [d["source"] for d in r.json()["documents"]] == ["festival.txt"]
    assert (service.settings.replace(collection="fests").uploads_dir / "festival.txt").exists()
    listed = httpx.get(f"{url}/v1/collections").json()
    assert {c["name"]: c["documents"] for c in listed["collections"]} == {"corpus": 2, "fests": 1}

    def sources(**params: str) -> set[str]:
        got = httpx.get(f"{url}/v1/documents", params=params)
        assert got.status_code == 200, got.text
        return {d["source"] for d in got.json()["documents"]}

    assert sources(collection="fests") == {"festival.txt"}
    assert sources() == {"ferry.txt", "harbor-bridge.md"}

    # the same scripted answer about the bridge: supported by the corpus, not by the festival
    q = {"question": "When did the bridge open?"}
    assert not httpx.post(f"{url}/v1/ask", json=q, timeout=60).json()["abstained"]
    assert httpx.post(f"{url}/v1/ask", json=q | {"collection": "fests"},
                      timeout=60).json()["abstained"]
    client = OpenAI(base_url=f"{url}/v1", api_key="none")
    reply = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": q["question"]}],
        extra_body={"collection": "fests"})
    assert reply.model_extra["abstained"] is True
    assert httpx.post(f"{url}/v1/ask", json=q | {"collection": "nope"}).status_code == 404
    assert httpx.post(f"{url}/v1/ask", json=q | {"collection": "../x"}).status_code == 400

    r = httpx.delete(f"{url}/v1/documents/festival.txt", params={"collection": "fests"})
    assert r.status_code == 200 and r.json()["file_deleted"], r.text
    assert sources(collection="fests") == set()


def test_without_a_login_foreign_hosts_and_origins_are_refused(scripted):
    """The guard holds when no login is set (a DNS-rebinding page or a sandboxed iframe would
    otherwise read the corpus or upload documents)."""
    url, service, _ = scripted
    port = url.rsplit(":", 1)[1]
    note = {"file": ("planted.txt", b"The harbor bridge was painted pink in 2020.\n")}
    assert httpx.get(f"{url}/v1/documents", headers={"Host": f"attacker.example:{port}"}
                     ).status_code == 403
    for origin in ("http://attacker.example", "null"):
        r = httpx.post(f"{url}/v1/documents", files=note, headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.text)
    assert not service.uploads_dir.exists() or not any(service.uploads_dir.iterdir())
    assert httpx.get(f"{url}/v1/documents", headers={"Origin": url}).status_code == 200


def test_a_hostile_upload_is_refused_with_its_reason_and_the_next_one_is_indexed(scripted):
    from .test_loaders import bomb_pdf

    url, service, _ = scripted
    r = httpx.post(f"{url}/v1/documents", files={"file": ("bomb.pdf", bomb_pdf())}, timeout=120)
    assert r.status_code == 422 and "bomb.pdf" in r.json()["error"]["message"]
    note = b"The Zorblat lantern festival was first held in 1987 in Kulob.\n"
    r = httpx.post(f"{url}/v1/documents", files={"file": ("festival.txt", note)}, timeout=60)
    assert r.status_code == 200, r.text
    assert [d["source"] for d in r.json()["documents"]] == ["festival.txt"]
    assert service.assistant().retrieve("Zorblat lantern festival")[0].source == "festival.txt"


def test_login_bearer_or_basic_and_failures_throttled(settings, embeddings, tmp_path):
    service = ChatService(settings, uploads_dir=tmp_path / "uploads", llm=FakeLLM(),
                          embeddings=embeddings)
    service.assistant().ingest(progress=False)
    server = Server(service, (USER, PASSWORD))
    try:
        url = server.url
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"  # no login needed
        r = httpx.get(f"{url}/v1/models")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        ok = [httpx.get(f"{url}/v1/documents", headers={"Authorization": f"Bearer {PASSWORD}"}),
              httpx.get(f"{url}/v1/documents", auth=(USER, PASSWORD))]
        assert [r.status_code for r in ok] == [200, 200]
        bad = [httpx.get(f"{url}/v1/models", headers={"Authorization": "Bearer guess"}),
               httpx.get(f"{url}/v1/models", auth=("eve", PASSWORD)),
               httpx.get(f"{url}/v1/models", headers={"Authorization": "Basic !!"})]
        assert [r.status_code for r in bad] == [401] * 3
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {PASSWORD}"})
        assert r.status_code == 200  # four failures: not yet throttled
        assert httpx.get(f"{url}/v1/models", auth=(USER, "guess")).status_code == 401
        r = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {PASSWORD}"})
        assert r.status_code == 429  # five: even the right one is refused, for a minute
        port = url.rsplit(":", 1)[1]
        r = httpx.get(f"{url}/v1/models", headers={"Host": f"attacker.example:{port}"})
        assert r.status_code == 403 and "not served here" in r.text
    finally:
        server.close()


def test_message_text_cannot_make_a_markdown_client_fetch_anything():
    evil = "It is ![x](http://127.0.0.1:9/leak.png) <img src=http://127.0.0.1:9/a> 3 < 4 [1]."
    text = message_text(Answer(evil, False, [Citation(1, "a.md", "c", 0, 9, "![y](http://z)")]))
    assert text.count("!\\[") == 2 and "![" not in text.replace("!\\[", "")
    assert "\\<img" in text and "<img" not in text.replace("\\<img", "")
    assert inert("3 < 4 and a<b") == "3 < 4 and a\\<b"
    assert inert(evil).replace("!\\[", "![").replace("\\<", "<") == evil


# -- the real model: `rag serve` and the UI's server -------------------------------------------
def article_env(settings, **more: str) -> dict[str, str]:
    return {"RAG_CORPUS_DIR": str(settings.corpus_dir), "RAG_STORE_DIR": str(settings.store_dir),
            "RAG_MODEL_DIR": str(settings.model_dir), **more}


def verbatim(citations: list[dict]) -> bool:
    text = ARTICLE.read_text()
    return bool(citations) and all(text[c["start"]:c["end"]] == c["quote"] for c in citations)


@pytest.mark.e2e
def test_the_ui_server_serves_the_api_too_and_they_take_turns(article_settings):
    """`rag ui` with a login: the page, the API under the same guard and login, and a UI
    question and an API question at once, both answered."""
    from gradio_client import Client

    t0 = time.perf_counter()
    with running_app(article_settings, OUTPUT / "api" / "ui-app.log", RAG_UI_USER=USER,
                     RAG_UI_PASSWORD=PASSWORD) as app:
        print(f"\nUI ready in {time.perf_counter() - t0:.1f} s")
        url, port = app.url, app.url.rsplit(":", 1)[1]
        bearer = {"Authorization": f"Bearer {PASSWORD}"}
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert httpx.get(f"{url}/v1/models").status_code == 401
        assert httpx.get(f"{url}/v1/models", headers=bearer).json()["data"][0]["id"] == \
            "rag-1.5b"
        r = httpx.get(f"{url}/v1/models", headers={**bearer, "Host": f"evil.example:{port}"})
        assert r.status_code == 403
        client = Client(url, auth=(USER, PASSWORD), verbose=False)

        def ui() -> str:
            history, *_ = client.predict("Who is Emily Harding?", [], "1.5b", 4, False,
                                         api_name="/ask")
            return str(history[-1]["content"])

        def api() -> dict:
            r = httpx.post(f"{url}/v1/ask", json={"question": "How much is the Boeing deal "
                                                              "worth?"},
                           headers=bearer, timeout=300)
            assert r.status_code == 200, r.text
            return r.json()

        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            from_ui, from_api = pool.submit(ui), pool.submit(api)
            ui_text, data = from_ui.result(timeout=400), from_api.result(timeout=400)
        print(f"UI + API answers at once: {time.perf_counter() - t0:.1f} s")
        assert "cite-1" in ui_text
        assert "3.2 billion" in data["answer"] and verbatim(data["citations"])


@pytest.fixture(scope="module")
def served(article_settings):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    with running_server([sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
                        f"{url}/healthz", OUTPUT / "api" / "serve.log", cwd=PROJECT,
                        env=article_env(article_settings, RAG_UI_USER=USER,
                                        RAG_UI_PASSWORD=PASSWORD)):
        print(f"\nrag serve ready in {time.perf_counter() - t0:.1f} s")
        yield url


@pytest.fixture(scope="module")
def openai_client(served):
    from openai import OpenAI

    return OpenAI(base_url=f"{served}/v1", api_key=PASSWORD, timeout=300, max_retries=0)


@pytest.mark.e2e
def test_openai_sdk_against_rag_serve(openai_client):
    t0 = time.perf_counter()
    done = openai_client.chat.completions.create(
        model="rag-1.5b", messages=[{"role": "user",
                                     "content": "How much is the Boeing deal worth?"}])
    print(f"\nnon-streaming answer: {time.perf_counter() - t0:.1f} s")
    text = done.choices[0].message.content
    assert "3.2 billion" in text and "[1]" in text and "\n\nSources:\n[1] " in text
    assert done.model_extra["abstained"] is False and verbatim(done.model_extra["citations"])

    t0 = time.perf_counter()
    stream = openai_client.chat.completions.create(
        model="rag-1.5b", stream=True,
        messages=[{"role": "user", "content": "Who is Emily Harding?"}])
    chunks = list(stream)
    print(f"streamed answer: {time.perf_counter() - t0:.1f} s")
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert "[1]" in text and "Sources:" in text
    final = chunks[-1].model_extra
    assert chunks[-1].choices[0].finish_reason == "stop" and verbatim(final["citations"])
    for c in final["citations"]:
        assert f"\u201c{c['quote']}\u201d" in text


@pytest.mark.e2e
def test_langchain_chat_openai_against_rag_serve(served):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{served}/v1", api_key=PASSWORD, model="rag", timeout=300,
                     max_retries=0)
    t0 = time.perf_counter()
    reply = llm.invoke("Which American aircraft maker has a deal with Tajikistan?")
    print(f"\nLangChain answer: {time.perf_counter() - t0:.1f} s")
    assert "Boeing" in reply.content and "[1]" in reply.content
    assert "Sources:\n[1] us-policy-in-tajikistan.txt (chars " in reply.content


@pytest.mark.e2e
def test_abstentions_and_the_ask_shape_match_the_cli(served, openai_client, article_settings,
                                                     tmp_path):
    question = "What is the recipe for sourdough bread?"  # the gate abstains: no model call
    done = openai_client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": question}])
    assert done.model_extra["abstained"] is True and done.model_extra["citations"] == []
    assert "don't" in done.choices[0].message.content
    api = httpx.post(f"{served}/v1/ask", json={"question": question}, auth=(USER, PASSWORD),
                     timeout=300).json()
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", question, "--json"],
                         capture_output=True, text=True, cwd=PROJECT, timeout=600, check=True,
                         env={**os.environ, **article_env(article_settings)})
    cli = json.loads(out.stdout)
    assert set(api) == set(cli) == {"answer", "abstained", "fallback", "citations", "seconds"}
    assert {k: v for k, v in api.items() if k != "seconds"} == \
        {k: v for k, v in cli.items() if k != "seconds"}


@pytest.mark.e2e
def test_an_uploaded_document_is_answered_from_then_removed(served, tmp_path):
    auth = (USER, PASSWORD)
    note = b"The Zorblat lantern festival was first held in 1987 in the town of Kulob.\n"
    r = httpx.post(f"{served}/v1/documents", files={"file": ("festival-notes.txt", note)},
                   auth=auth, timeout=120)
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{served}/v1/documents", auth=auth).json()["documents"]
    assert {"source": "festival-notes.txt", "chunks": 1, "uploaded": True} in [
        {k: d[k] for k in ("source", "chunks", "uploaded")} for d in listed]
    question = {"question": "When was the Zorblat lantern festival first held?"}
    t0 = time.perf_counter()
    data = httpx.post(f"{served}/v1/ask", json=question, auth=auth, timeout=300).json()
    print(f"\nanswer from the upload: {time.perf_counter() - t0:.1f} s")
    assert "1987" in data["answer"]
    assert [c["source"] for c in data["citations"]] == ["festival-notes.txt"]
    assert httpx.delete(f"{served}/v1/documents/festival-notes.txt", auth=auth
                        ).status_code == 200
    listed = httpx.get(f"{served}/v1/documents", auth=auth).json()["documents"]
    assert [d["source"] for d in listed] == ["us-policy-in-tajikistan.txt"]
    data = httpx.post(f"{served}/v1/ask", json=question, auth=auth, timeout=300).json()
    assert all(c["source"] != "festival-notes.txt" for c in data["citations"])


@pytest.mark.e2e
def test_concurrent_requests_are_both_answered(openai_client):
    questions = ["Which minerals does Tajikistan have?", "Who is Almas Miriev?"]

    def ask(q: str) -> dict:
        done = openai_client.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": q}])
        return {"text": done.choices[0].message.content, **done.model_extra}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(ask, questions))
    print(f"\ntwo concurrent answers: {time.perf_counter() - t0:.1f} s")
    for r in results:
        assert r["abstained"] is False and "[1]" in r["text"] and verbatim(r["citations"])


@pytest.mark.e2e
def test_the_api_needs_the_password_and_its_host_names(served):
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=f"{served}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(AuthenticationError):
        client.models.list()
    assert httpx.get(f"{served}/v1/documents").status_code == 401
    ids = [m.id for m in OpenAI(base_url=f"{served}/v1", api_key=PASSWORD).models.list()]
    assert ids == ["rag-1.5b", "rag-0.5b"]
    port = served.rsplit(":", 1)[1]
    r = httpx.get(f"{served}/v1/models", auth=(USER, PASSWORD),
                  headers={"Host": f"attacker.example:{port}"})
    assert r.status_code == 403
    r = httpx.post(f"{served}/v1/ask", json={"question": "x"}, auth=(USER, PASSWORD),
                   headers={"Origin": "http://attacker.example"})
    assert r.status_code == 403

