"""The chat UI in a real headless Chromium with a scripted model: a real OpenAI-compatible
server on loopback whose replies are fixed, so that what the 1.5B model does only sometimes is
seen every time — a sentence the checker removes, the no-answer marker split across stream
chunks, a long answer to stop. Screenshots go to test-output/ui/."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator

import pytest

from rag import Settings
from tests.support import running_app

from .conftest import ARTICLE, PROJECT
from .test_ui import CHROMIUM, SHOTS, ask, bot_messages, wait_for_answers

pytestmark = pytest.mark.ui

# what the scripted model streams, by a word of the question (pieces as the server sends them)
REPLIES = {
    "boeing": ["The Boeing deal", " is worth $3.2", " billion [1]. The", " moon is made",
               " of green cheese [1]."],
    "capital": ["NOT", "_IN_", "DOC", "UMENTS"],
    "slow": [f" word{i}" for i in range(200)],
}
PAUSE = {"slow": 0.2}  # seconds between pieces


class ScriptedModel(http.server.BaseHTTPRequestHandler):
    """``POST /v1/chat/completions`` (streamed or not) with the reply the question selects;
    records when each streamed reply ended and whether the client went away first."""

    finished: list[tuple[str, float, bool]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._json({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        question = body["messages"][-1]["content"].rsplit("Question:", 1)[-1].lower()
        key = next((k for k in REPLIES if k in question), "capital")
        pieces = REPLIES[key]
        if not body.get("stream"):
            self._json({"choices": [{"message": {"role": "assistant",
                                                 "content": "".join(pieces)}}]})
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        left = False
        for piece in pieces:
            chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
            try:
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
            except OSError:
                left = True
                break
            time.sleep(PAUSE.get(key, 0.01))
        if not left:
            self.wfile.write(b"data: [DONE]\n\n")
        self.finished.append((key, time.monotonic(), left))

    def _json(self, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ScriptedModel)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, model_url: str):
    playwright = pytest.importorskip("playwright.sync_api")
    root = tmp_path_factory.mktemp("scripted-ui")
    (root / "corpus").mkdir()
    shutil.copy(ARTICLE, root / "corpus" / ARTICLE.name)
    settings = Settings.load(corpus_dir=root / "corpus", store_dir=root / "store",
                             model_dir=PROJECT / ".rag" / "models")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with running_app(settings, root / "app.log", RAG_BACKEND="openai",
                     RAG_OPENAI_BASE_URL=model_url, RAG_OPENAI_MODEL="scripted",
                     RAG_ENTAILMENT="0") as app, playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        # every text the chat shows, as it changes (streaming included)
        page.evaluate("() => { window.__seen = []; new MutationObserver(() => __seen.push("
                      "document.querySelector('#chat').innerText)).observe("
                      "document.querySelector('#chat'), {subtree: true, childList: true,"
                      " characterData: true}); }")
        yield page
        browser.close()


def test_a_removed_sentence_is_shown_on_demand_with_why(page):
    before = len(bot_messages(page))
    ask(page, "How much is the Boeing deal worth?")
    wait_for_answers(page, before + 1)
    answer = page.locator("#chat .bot").last
    assert "$3.2 billion" in answer.inner_text() and "cheese" not in answer.inner_text()
    flagged = answer.locator("details.flagged")
    flagged.locator("summary").click()
    removed = flagged.locator("li").all_inner_texts()
    assert len(removed) == 1 and "moon is made of green cheese" in removed[0]
    assert "(" in removed[0]  # with the reason it was removed
    page.screenshot(path=str(SHOTS / "18-removed-sentence.png"))


def test_the_no_answer_marker_never_shows_while_streaming(page):
    before = len(bot_messages(page))
    page.evaluate("() => { window.__seen = []; }")
    ask(page, "What is the capital of Tajikistan?")
    wait_for_answers(page, before + 1)
    assert "don't say" in bot_messages(page)[-1]
    assert any(k == "capital" for k, _, _ in ScriptedModel.finished)  # the model was asked
    seen = page.evaluate("() => __seen")
    assert seen and not [t for t in seen if re.search(r"NOT[ _]IN|NOT_?$|\bNOT\b", t)]


def test_stop_ends_the_answer_within_a_second(page):
    before = len(bot_messages(page))
    ask(page, "Summarize the article slowly.")
    page.wait_for_function("() => /word3/.test(document.querySelector('#chat').innerText)",
                           timeout=60_000)
    t0 = time.monotonic()
    page.locator("#stop").click()
    page.wait_for_function("() => /Stopped\\./.test(document.querySelector('#chat').innerText)",
                           timeout=10_000)
    shown = time.monotonic() - t0
    deadline = time.monotonic() + 5
    while not any(k == "slow" for k, _, _ in ScriptedModel.finished):
        assert time.monotonic() < deadline, "the model server never saw the answer end"
        time.sleep(0.05)
    _, ended, left = next(f for f in ScriptedModel.finished if f[0] == "slow")
    print(f"\nStop -> 'Stopped.' shown {shown:.2f} s, model stream closed {ended - t0:.2f} s")
    assert left  # the client went away: the model did not write its 200 words to the end
    # the bar: the answer ends within 1 s of Stop (the server notices the closed
    # connection only at its next writes, 0.2 s apart, hence its own allowance)
    assert shown < 1.0 and ended - t0 < 1.5
    wait_for_answers(page, before + 1)
    assert "Stopped." in bot_messages(page)[-1]
