"""A model backend that fails: a clear error from the backend, and the assistant falls back to
verbatim quotes of the best passages, labelled as such. The failing backends are real HTTP
servers on loopback that misbehave in one way each, and the real embedded model's worker
process killed with a real signal (SIGKILL, SIGSEGV) in the middle of an answer."""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from rag import Assistant, BackendError
from rag.assistant import FALLBACK_LABEL
from rag.generation import (
    LlamaCppLLM,
    ModelWorker,
    OpenAICompatibleLLM,
    build_messages,
    smoke_test,
)
from rag.ingestion import ingest
from rag.loaders import load_text
from rag.models import MODELS, GGUFModel, ModelError, model_file
from tests.support import free_port

from .conftest import PROJECT

BODIES = {
    "malformed": b"data: {this is not json\n\n",
    "empty": b"data: [DONE]\n\n",
    "no-choices": b'data: {"choices": []}\n\ndata: [DONE]\n\n',
}


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "ok"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "http500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"internal error")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(BODIES.get(self.mode, b""))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def broken_server() -> Iterator[tuple[str, type[_Handler]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1", _Handler
    server.shutdown()



CASES = [("slow", "did not answer within 1 s"), ("http500", "HTTP 500"),
         ("malformed", "malformed response"), ("empty", "empty answer"),
         ("no-choices", "malformed response")]


@pytest.mark.parametrize(("mode", "message"), CASES)
def test_a_misbehaving_server_raises_a_clear_backend_error(settings, broken_server, mode,
                                                           message):
    url, handler = broken_server
    handler.mode = mode
    llm = OpenAICompatibleLLM(settings.replace(backend="openai", openai_base_url=url,
                                               timeout=1.0))
    with pytest.raises(BackendError, match=message):
        list(llm.stream(build_messages("question?", []), 8))


def test_a_server_that_is_down_raises_a_clear_backend_error(settings):
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatibleLLM(settings.replace(backend="openai", openai_base_url=url))
    with pytest.raises(BackendError, match="cannot reach the LLM server"):
        list(llm.stream(build_messages("question?", []), 8))


@pytest.mark.parametrize("mode", ["slow", "malformed", "down"])
def test_without_a_model_the_answer_is_labelled_verbatim_quotes(settings, embeddings,
                                                                broken_server, mode):
    url, handler = broken_server
    handler.mode = mode
    if mode == "down":
        url = f"http://127.0.0.1:{free_port()}/v1"
    settings = settings.replace(backend="openai", openai_base_url=url, timeout=1.0)
    ingest(settings=settings, embeddings=embeddings, progress=False)
    answer = Assistant(settings, embeddings=embeddings).ask("Who was the chief engineer?")
    assert answer.fallback and not answer.abstained
    assert answer.text.startswith(FALLBACK_LABEL)
    assert answer.reason.startswith("backend: ")
    assert answer.citations and "[1]" in answer.text
    assert any("Margit Oduya" in c.quote for c in answer.citations)
    for c in answer.citations:  # verbatim: each quote is the source text at its offsets
        assert load_text(settings.corpus_dir / c.source)[c.start:c.end] == c.quote
        assert f"\u201c{c.quote.rstrip('.')}\u201d" in answer.text


def test_a_corrupt_model_file_gives_a_clear_error(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 4096)
    with pytest.raises(BackendError, match="cannot load the model file"):
        ModelWorker(str(bad), 512, 1)


def test_concurrent_first_callers_load_the_model_once(settings):
    # the UI warms the model in the background while the first question may already ask for
    # it; an unlocked cache would load it twice (double memory). A context size no other test
    # uses makes this a fresh cache key.
    llm = LlamaCppLLM(settings.replace(model_size="0.5b", n_ctx=640,
                                       model_dir=PROJECT / ".rag" / "models"))
    start = threading.Barrier(2)
    got: list[object] = []

    def first_use() -> None:
        start.wait()
        got.append(llm.worker())

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] is got[1]
    got[0].stop()


# -- the embedded model behind a process boundary --------------------------------------------
QUESTION = [{"role": "user", "content": "Count from one to forty in words, comma-separated."}]


@pytest.fixture
def small_llm(settings) -> LlamaCppLLM:
    """The real 0.5B model in its own worker (a context size no other test uses)."""
    llm = LlamaCppLLM(settings.replace(model_size="0.5b", n_ctx=768))
    yield llm
    llm.worker().stop()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_a_worker_that_dies_mid_answer_is_a_backend_error_and_the_next_call_restarts_it(
        small_llm, sig):
    tokens = small_llm.stream(QUESTION, max_tokens=120)
    assert next(tokens)
    pid = small_llm.worker().pid
    os.kill(pid, sig)  # a real process death, as a native crash would cause
    with pytest.raises(BackendError, match=f"died \\({sig.name}\\).*restarts it"):
        list(tokens)
    again = "".join(small_llm.stream(QUESTION, max_tokens=8))
    assert again.strip() and small_llm.worker().pid != pid


def test_a_segfault_names_the_build_as_the_likely_cause(small_llm):
    tokens = small_llm.stream(QUESTION, max_tokens=120)
    next(tokens)
    os.kill(small_llm.worker().pid, signal.SIGSEGV)
    with pytest.raises(BackendError, match="make setup"):
        list(tokens)


def test_an_answer_abandoned_midway_stops_generating_and_keeps_the_worker(small_llm):
    tokens = small_llm.stream(QUESTION, max_tokens=120)
    next(tokens)
    pid = small_llm.worker().pid
    tokens.close()  # the reader stopped (a Stop button, a closed page)
    assert "".join(small_llm.stream(QUESTION, max_tokens=8)).strip()
    assert small_llm.worker().pid == pid  # cancelled, not killed and reloaded


def test_killing_the_worker_mid_answer_gives_a_labelled_fallback_then_normal_answers(
        settings, embeddings):
    settings = settings.replace(model_size="0.5b", n_ctx=768)
    ingest(settings=settings, embeddings=embeddings, progress=False)
    assistant = Assistant(settings, embeddings=embeddings)
    assistant.warm_up()
    killed: list[int] = []

    def kill_on_first_token(_piece: str) -> None:
        if not killed:
            killed.append(assistant.llm.worker().pid)
            os.kill(killed[0], signal.SIGKILL)

    answer = assistant.ask("Who was the chief engineer?", on_token=kill_on_first_token)
    assert killed and answer.fallback and answer.text.startswith(FALLBACK_LABEL)
    assert "SIGKILL" in answer.reason
    assert any("Margit Oduya" in c.quote for c in answer.citations)
    answer = assistant.ask("Who was the chief engineer?")
    assert not answer.fallback and "Oduya" in answer.text
    assert assistant.llm.worker().pid != killed[0]
    assistant.llm.worker().stop()


def test_the_smoke_test_generates_with_the_installed_build(settings):
    assert smoke_test(settings.replace(model_size="0.5b")).strip()


MISSING = GGUFModel("missing", "missing.gguf", "no_such_model_part{i}", 2, 10, "0" * 64)


def test_a_model_whose_parts_are_not_installed_names_the_fix(tmp_path):
    with pytest.raises(ModelError, match="no_such_model_part1 is not installed.*make setup"):
        MISSING.part_paths()


def test_without_its_model_file_the_embedded_backend_falls_back_to_quotes(
        settings, embeddings, tmp_path, monkeypatch):
    monkeypatch.setitem(MODELS, "0.5b", MISSING)
    settings = settings.replace(model_size="0.5b", model_dir=tmp_path / "models")
    ingest(settings=settings, embeddings=embeddings, progress=False)
    answer = Assistant(settings, embeddings=embeddings).ask("Who was the chief engineer?")
    assert answer.fallback and "not installed" in answer.reason
    assert any("Margit Oduya" in c.quote for c in answer.citations)


def test_a_tampered_model_file_is_detected_and_reassembled(tmp_path):
    good = model_file("0.5b", PROJECT / ".rag" / "models")
    copy = tmp_path / good.name
    copy.write_bytes(b"GGUF" + b"\0" * 1000)  # wrong size and hash
    assert model_file("0.5b", tmp_path) == copy
    assert copy.stat().st_size == good.stat().st_size
