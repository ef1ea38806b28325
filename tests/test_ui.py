"""The chat UI: rendering helpers, then the real app in a real headless Chromium (Playwright)
and through gradio_client from this second process. Screenshots go to test-output/ui/."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from rag.types import Answer, Citation, Passage
from rag.ui import answer_html, contextualize, sources_html
from tests.support import running_app

from .conftest import OUTPUT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = OUTPUT / "ui"


def test_document_html_is_escaped_in_the_sources_panel():
    evil = "<script>alert('x')</script> The pier is <b>300 m</b> long."
    p = Passage("c1", "evil<img src=x>.html", 0, len(evil), evil, rank=1)
    start = evil.index("The pier")
    answer = Answer("The pier is 300 m long [1].", False,
                    [Citation(1, p.source, "c1", start, len(evil), evil[start:])], [p])
    out = sources_html(answer, details=True)
    assert "<script>" not in out and "<img" not in out and "<b>" not in out
    assert "&lt;script&gt;" in out and "<mark>" in out


def test_footnotes_link_to_their_source_cards_and_abstentions_look_different():
    assert 'href="#cite-1"' in answer_html(Answer("It is red [1].", False))
    assert 'class="abstain"' in answer_html(Answer("The documents don't say.", True))
    assert "&lt;b&gt;" in answer_html(Answer("<b>bold</b> [1].", False))
    fallback = answer_html(Answer("The language model is unavailable … “x” [1].", False,
                                  fallback=True))
    assert 'class="fallback"' in fallback and 'href="#cite-1"' in fallback


def test_follow_ups_are_rewritten_with_the_previous_question():
    history = [{"role": "user", "content": "What is Tajikistan's main security concern?"},
               {"role": "assistant", "content": "..."}]
    assert contextualize("And who said that?", history).startswith("What is Tajikistan")
    assert contextualize("How much is the Boeing deal worth?", history) == \
        "How much is the Boeing deal worth?"


@pytest.fixture(scope="module")
def app(article_settings):
    t0 = time.perf_counter()
    with running_app(article_settings, article_settings.store_dir.parent / "app.log") as app:
        print(f"\nUI ready in {time.perf_counter() - t0:.1f} s")
        yield app


@pytest.fixture(scope="module")
def app_url(app):
    return app.url


@pytest.fixture(scope="module")
def page(app_url):
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (apt-get install chromium)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        page.wait_for_selector("#question textarea", timeout=60_000)
        yield page
        browser.close()


def ask(page, question: str) -> None:
    box = page.locator("#question textarea")
    box.fill(question)
    box.press("Enter")


@pytest.mark.ui
def test_answer_streams_with_a_clickable_footnote_that_highlights_the_quote(page):
    page.screenshot(path=str(SHOTS / "0-empty.png"))
    t0 = time.perf_counter()
    ask(page, "How much is the Boeing deal worth?")
    footnote = page.locator("#chat sup.fn a").first
    footnote.wait_for(timeout=180_000)
    print(f"\nanswer with footnote after {time.perf_counter() - t0:.1f} s")
    page.screenshot(path=str(SHOTS / "1-answer.png"))
    footnote.click()
    mark = page.locator("#sources #cite-1 mark")
    mark.wait_for(state="visible", timeout=10_000)
    assert "$3.2 billion" in mark.inner_text()
    assert page.evaluate("location.hash") == "#cite-1"
    page.screenshot(path=str(SHOTS / "2-footnote-clicked.png"))


@pytest.mark.ui
def test_unanswerable_question_shows_the_abstention_style(page):
    ask(page, "What is the capital of Tajikistan?")
    page.locator("#chat .abstain").last.wait_for(timeout=180_000)
    assert "don't say" in page.locator("#chat .abstain").last.inner_text()
    page.screenshot(path=str(SHOTS / "3-abstention.png"))


@pytest.mark.ui
def test_uploaded_file_can_be_asked_about(page, tmp_path):
    doc = tmp_path / "festival-notes.txt"
    doc.write_text("The Zorblat lantern festival takes place every March in the town of "
                   "Kulob. It was first held in 1987.\n")
    page.get_by_text("Add documents").click()
    page.locator("#upload input[type=file]").set_input_files(str(doc))
    page.locator("#index-button").click()
    status = page.locator("#upload-status textarea")
    page.wait_for_function(
        "() => document.querySelector('#upload-status textarea').value.includes('Indexed')",
        timeout=120_000)
    assert "1 added" in status.input_value()
    page.screenshot(path=str(SHOTS / "4-upload.png"))
    ask(page, "When was the Zorblat lantern festival first held?")
    page.wait_for_function(
        "() => document.querySelector('#sources').innerText.includes('festival-notes.txt')",
        timeout=180_000)
    sources = page.locator("#sources").inner_text()
    assert "festival-notes.txt" in sources and "1987" in sources
    page.screenshot(path=str(SHOTS / "5-upload-answer.png"))


@pytest.mark.ui
def test_gradio_client_from_a_second_process(app_url):
    from gradio_client import Client

    client = Client(app_url, verbose=False)
    history, sources = client.predict("Who is Emily Harding?", [], "1.5b", 4, False,
                                      api_name="/ask")
    text = str(history[-1]["content"])
    assert "cite-1" in text
    assert "Atlantic Council" in sources


def model_workers(parent: int) -> list[int]:
    """Pids of the embedded model's worker processes started by ``parent``."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"rag.llm_worker" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.ui
def test_killing_the_model_worker_mid_answer_gives_a_fallback_and_the_app_stays_up(app):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    job = client.submit("Who is Almas Miriev?", [], "1.5b", 4, False, api_name="/ask")
    deadline = time.monotonic() + 180
    while not any("checking citations" in str(out[0][-1]["content"]) for out in job.outputs()):
        assert time.monotonic() < deadline and not job.done(), "no streamed tokens seen"
        time.sleep(0.05)
    workers = model_workers(app.pid)  # the answering model (and the entailment check's)
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)  # mid-answer, as a native crash would end it
    history, sources = job.result(timeout=180)
    text = str(history[-1]["content"])
    assert 'class="fallback"' in text and "SIGKILL" in text and "cite-1" in text
    assert "Georgetown" in sources
    history, _ = client.predict("Who is Almas Miriev?", [], "1.5b", 4, False, api_name="/ask")
    text = str(history[-1]["content"])
    assert "fallback" not in text and "cite-1" in text and "Georgetown" in text
    assert model_workers(app.pid) and not set(model_workers(app.pid)) & set(workers)
