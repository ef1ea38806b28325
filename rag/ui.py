"""The Gradio chat UI: streamed answers, footnotes that jump to highlighted quotes, uploads."""

from __future__ import annotations

import html
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from .api import build_api
from .assistant import Assistant, QuestionError, Stopped
from .generation import NOT_FOUND, BackendError
from .ingestion import IngestBusy
from .loaders import SUPPORTED
from .models import ModelError
from .questions import read_follow_up
from .settings import Settings
from .shared import LockedAssistant, TurnLock
from .types import Answer, Passage
from .web import GuardMiddleware, allowed_hosts

EXAMPLES = [
    "How much is the Boeing deal worth?",
    "Who is Emily Harding?",
    "Which minerals does Tajikistan have?",
    "What is the capital of Tajikistan?",
]
MAX_UPLOAD_BYTES = 5_000_000

CSS = """
.abstain {border-left: 4px solid #d97706; background: #fffbeb; padding: 6px 10px;}
.error {border-left: 4px solid #dc2626; background: #fef2f2; padding: 6px 10px;}
.flagged {color: #6b7280; font-size: 0.9em;}
.fallback {border-left: 4px solid #6b7280; background: #f3f4f6; padding: 6px 10px;}
.fn a {text-decoration: none; font-weight: 600;}
.source-card {border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 10px; margin: 8px 0;}
.source-card:target {border-color: #2563eb; box-shadow: 0 0 0 3px #bfdbfe;}
.source-card mark {background: #fde68a; padding: 0 2px;}
.source-meta {color: #6b7280; font-size: 0.85em;}
.scores {font-size: 0.8em; color: #6b7280;}
.disagree {border-left: 4px solid #7c3aed; background: #f5f3ff; padding: 4px 10px; margin-top: 6px;}
.read-as {color: #6b7280; font-size: 0.85em; font-style: italic; margin-bottom: 4px;}
.turn h3 {font-size: 1em; margin: 12px 0 4px;}
.fn a {display: inline-block; min-width: 24px; min-height: 24px; text-align: center;}
"""


class ChatService:
    """What the UI does, without the widgets: testable and reusable."""

    def __init__(self, settings: Settings, uploads_dir: Path | None = None) -> None:
        self.settings = settings
        self.uploads_dir = uploads_dir or settings.store_dir.parent / "uploads"
        self._assistants: dict[str, Assistant] = {}
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}  # per browser session: its Stop button
        self.generation = TurnLock()  # one answer at a time: the UI's and the HTTP API's

    def assistant(self, model_size: str | None = None) -> Assistant:
        size = model_size or self.settings.model_size
        with self._lock:
            if size not in self._assistants:
                base = next(iter(self._assistants.values()), None)
                self._assistants[size] = LockedAssistant(
                    self.generation, self.settings.replace(model_size=size),
                    embeddings=base.embeddings if base else None)
            return self._assistants[size]

    def warm_up(self) -> None:
        self.assistant().warm_up()

    def stop(self, session: str = "") -> None:
        """End the answer being generated for ``session`` (at the model's next token)."""
        if event := self._stops.get(session):
            event.set()

    def respond(self, message: str, history: list[dict], model_size: str, k: int,
                details: bool, panel: list[str] | None = None, session: str = ""
                ) -> Iterator[tuple[list[dict], str, list[str]]]:
        """Yield (chat history, sources panel HTML, panel sections) as the answer progresses.

        Each answer is turn ``n`` (its number among the conversation's questions); its
        footnotes link to ``#cite-n-i`` in its own section of the panel, so older answers keep
        pointing at their own quotes."""
        history = list(history or [])
        panel = list(panel or [])
        question = (message or "").strip()
        earlier = [_plain(m["content"]) for m in history if m.get("role") == "user"]
        turn = len(earlier) + 1
        history.append({"role": "user", "content": safe(question)})
        history.append({"role": "assistant", "content": "Searching the documents…"})
        yield history, "".join(panel), panel
        assistant = self.assistant(model_size)
        if k and k != assistant.settings.k:
            assistant.settings = assistant.settings.replace(k=int(k))
        stop = self._stops[session] = threading.Event()
        raw = ""
        try:
            for event in assistant.stream(question, stop=stop, history=earlier):
                if isinstance(event, Answer):
                    history[-1] = {"role": "assistant", "content": answer_html(event, turn)}
                    panel.insert(0, sources_html(event, details, turn, question))
                    yield history, "".join(panel), panel
                    return
                raw += event
                history[-1] = {"role": "assistant", "content": safe(streamed(raw))
                               + " <em>(checking citations…)</em>"}
                yield history, "".join(panel), panel
        except Stopped:
            history[-1] = {"role": "assistant", "content": _note(
                "Stopped. Nothing of the unfinished answer is shown, because it was not "
                "checked against the documents.", "abstain")}
        except QuestionError as exc:
            history[-1] = {"role": "assistant", "content": _note(str(exc))}
        except (BackendError, ModelError) as exc:
            history[-1] = {"role": "assistant",
                           "content": _note(f"The language model is unavailable: {exc}")}
        except Exception as exc:  # noqa: BLE001 - a chat must never show a stack trace
            history[-1] = {"role": "assistant", "content": _note(f"Something went wrong: {exc}")}
        finally:
            self._stops.pop(session, None)
        yield history, "".join(panel), panel

    def upload(self, files: list[Any] | None, progress: gr.Progress | None = None) -> str:
        """Copy uploads into their own folder (never the corpus) and index only them."""
        if not files:
            return "Choose one or more files first."
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        notes, saved = [], []
        for f in files:
            src = Path(getattr(f, "name", f))
            name = re.sub(r"[^\w.-]", "_", src.name).lstrip(".") or "upload.txt"
            if src.suffix.lower() not in SUPPORTED:
                notes.append(f"{src.name}: unsupported type (use {', '.join(sorted(SUPPORTED))})")
                continue
            if src.stat().st_size > MAX_UPLOAD_BYTES:
                notes.append(f"{src.name}: larger than {MAX_UPLOAD_BYTES // 1_000_000} MB")
                continue
            target = _free_name(self.uploads_dir / name, src)
            if target.exists():
                notes.append(f"{src.name}: already uploaded as {target.name}")
            else:
                shutil.copyfile(src, target)
                if target.name != name:
                    notes.append(f"{src.name}: a different file has that name; saved as "
                                 f"{target.name}")
            saved.append(target)
        if saved:
            if progress is not None:
                progress(0.3, desc="Indexing…")
            try:
                report = self.assistant().ingest(saved, progress=False)
            except IngestBusy as exc:
                return f"{exc}"
            for file, why in report.skipped:
                notes.append(f"{Path(file).name}: skipped ({why})")
            notes.insert(0, f"Indexed: {report.summary()}")
        return "\n".join(notes)


def _free_name(target: Path, src: Path) -> Path:
    """``target``, or ``name-2.ext``, ``name-3.ext``… if a different file already has it (the
    same content keeps the existing name)."""
    n = 1
    candidate = target
    while candidate.exists():
        if candidate.read_bytes() == src.read_bytes():
            return candidate
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    return candidate


# Characters that Markdown (and the chatbot's LaTeX and autolink extensions) give a meaning,
# and HTML's own: as character references they display the same but can never form an image,
# a link or markup. One translation pass, so no reference is escaped twice.
_INERT = str.maketrans({**{c: f"&#{ord(c)};" for c in "!'[]()*_`~$\\|#:@{}\""},
                        "&": "&amp;", "<": "&lt;", ">": "&gt;"})


def safe(text: str) -> str:
    """Text from a document, the model or the user as inert HTML for the chatbot: escaped, and
    with Markdown syntax neutralised, so no image, link or markup can come of it."""
    return re.sub(r"(?i)\bwww\.", "www&#46;", text.translate(_INERT))


def _plain(content: Any) -> str:
    """A chat message's text as the user typed it (the history holds it as ``safe`` HTML)."""
    return html.unescape(re.sub(r"<[^>]+>", "", str(content)))


def streamed(raw: str) -> str:
    """The model's text so far, without the internal no-answer marker (or its beginning)."""
    text = raw.replace(NOT_FOUND, "")
    for n in range(len(NOT_FOUND) - 1, 0, -1):
        if text.endswith(NOT_FOUND[:n]):
            return text[:-n]
    return text


def contextualize(question: str, history: list[dict]) -> str:
    """The question as the assistant reads it after ``history`` (see ``read_follow_up``)."""
    return read_follow_up(question, [_plain(m["content"]) for m in history
                                     if m.get("role") == "user"])


def _note(text: str, kind: str = "error") -> str:
    return f'<div class="{kind}">{safe(text)}</div>'


def answer_html(answer: Answer, turn: int = 1) -> str:
    read = (f'<div class="read-as">Read as: {safe(answer.read_as)}</div>' if answer.read_as
            else "")
    if answer.abstained:
        return read + f'<div class="abstain">{safe(answer.text)}</div>'
    body = re.sub(r"&#91;(\d+)&#93;",
                  rf'<sup class="fn"><a href="#cite-{turn}-\1">[\1]</a></sup>',
                  safe(answer.text))
    for d in answer.disagreements:
        link = '<sup class="fn"><a href="#cite-{t}-{n}">[{n}]</a></sup>'
        body += ('<div class="disagree">The documents disagree here: compare '
                 f"{link.format(t=turn, n=d.said)} with {link.format(t=turn, n=d.other)}.</div>")
    if answer.dropped:
        items = "".join(f"<li>{safe(d)}</li>" for d in answer.dropped)
        body += (f'<details class="flagged"><summary>{len(answer.dropped)} sentence(s) of the '
                 "model removed: not supported by the passages they cite</summary>"
                 f"<ul>{items}</ul></details>")
    return read + (f'<div class="fallback">{body}</div>' if answer.fallback else body)


def _highlight(passage_text: str, start: int, end: int) -> str:
    return (html.escape(passage_text[:start]) + "<mark>" + html.escape(passage_text[start:end])
            + "</mark>" + html.escape(passage_text[end:]))


def _scores(p: Passage) -> str:
    dense = "–" if p.dense_score is None else f"{p.dense_score:.2f}"
    lex = "–" if p.lexical_score is None else f"{p.lexical_score:.2f}"
    return f'<span class="scores">rank {p.rank} · fused {p.score:.4f} · dense {dense} · ' \
           f"BM25 {lex}</span>"


def sources_html(answer: Answer, details: bool = False, turn: int = 1, question: str = ""
                 ) -> str:
    """The sources of answer ``turn``: one card per citation (id ``cite-<turn>-<n>``)."""
    by_id = {p.chunk_id: p for p in answer.passages}
    title = f"Answer {turn}" + (f": {html.escape(question)}" if question else "")
    parts = [f'<section class="turn" id="turn-{turn}"><h3>{title}</h3>']
    if not answer.citations and answer.passages:
        parts.append("<p class='source-meta'>Closest passages; none of them answers the "
                     "question.</p>")
        for p in answer.passages[:2]:
            parts.append(f'<div class="source-card"><div class="source-meta">'
                         f"{html.escape(p.source)} · chars {p.start}–{p.end}</div>"
                         f"{html.escape(p.text)}</div>")
    for c in answer.citations:
        p = by_id.get(c.chunk_id)
        text = (_highlight(p.text, c.start - p.start, c.end - p.start) if p
                else f"<mark>{html.escape(c.quote)}</mark>")
        parts.append(f'<div class="source-card" id="cite-{turn}-{c.n}"><div class="source-meta">'
                     f"[{c.n}] {html.escape(c.source)} · chars {c.start}–{c.end}"
                     f"{' · ' + _scores(p) if p and details else ''}</div>{text}</div>")
    cited = {c.chunk_id for c in answer.citations}
    rest = [p for p in answer.passages if p.chunk_id not in cited]
    if rest and answer.citations:
        inner = "".join(f'<div class="source-card"><div class="source-meta">'
                        f"{html.escape(p.source)} · chars {p.start}–{p.end} · {_scores(p)}</div>"
                        f"{html.escape(p.text)}</div>" for p in rest)
        parts.append(f"<details><summary>{len(rest)} retrieved but not cited</summary>"
                     f"{inner}</details>")
    if details and answer.timings:
        parts.append("<p class='scores'>" + " · ".join(
            f"{k} {v:.2f} s" for k, v in answer.timings.items()) + "</p>")
    return "".join(parts) + "</section>"


def build_app(service: ChatService) -> gr.Blocks:
    with gr.Blocks(title="Ask the documents", analytics_enabled=False) as demo:
        gr.Markdown("## Ask the documents\nAnswers come only from the indexed documents; every "
                    "sentence cites the passage it comes from. Click a footnote to see it.")
        panel = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Chat", height=480, elem_id="chat",
                                  placeholder="Ask a question about the documents.",
                                  feedback_options=None, latex_delimiters=[],
                                  sanitize_html=True, buttons=["copy"])
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question and press Enter",
                                     show_label=False, elem_id="question", max_lines=4, scale=8)
                    send = gr.Button("Send", elem_id="send", variant="primary", scale=1,
                                     min_width=80)
                    stop = gr.Button("Stop", elem_id="stop", scale=1, min_width=80)
                status = gr.Markdown("", elem_id="status")
                gr.Examples(EXAMPLES, inputs=box)
            with gr.Column(scale=2):
                sources = gr.HTML("<p class='source-meta'>Sources of each answer appear "
                                  "here, newest first.</p>", elem_id="sources")
        with gr.Accordion("Add documents", open=False):
            files = gr.File(file_count="multiple", file_types=sorted(SUPPORTED),
                            label=f"Text, Markdown, HTML or PDF, up to "
                                  f"{MAX_UPLOAD_BYTES // 1_000_000} MB each",
                            elem_id="upload")
            add = gr.Button("Index these files", elem_id="index-button")
            upload_status = gr.Textbox(label="Indexing", interactive=False,
                                       elem_id="upload-status")
        with gr.Accordion("Settings", open=False):
            size = gr.Dropdown(["1.5b", "0.5b"], value=service.settings.model_size,
                               label="Model (0.5b is faster, 1.5b is more accurate)")
            k = gr.Slider(2, 8, value=service.settings.k, step=1, label="Passages per answer")
            details = gr.Checkbox(False, label="Show retrieval details")

        busy = ("Answering… A question you type now stays in the box; press Enter to have it "
                "answered next, or Stop.")

        def ask(message, history, size, k, details, panel, request: gr.Request):  # noqa: ANN001, ANN202
            session = getattr(request, "session_hash", "") or ""
            steps = service.respond(message, history, size, k, details, panel, session)
            last = next(steps)
            yield *last, "", busy  # the box is cleared once, when the question is taken
            for last in steps:  # noqa: B007 - what is typed from now on stays in the box
                yield *last, gr.skip(), busy
            yield *last, gr.skip(), ""

        inputs = [box, chat, size, k, details, panel]
        outputs = [chat, sources, panel, box, status]
        # a question sent while one is answered runs next (the last one sent), never dropped
        box.submit(ask, inputs, outputs, api_name="ask", trigger_mode="always_last")
        send.click(ask, inputs, outputs, api_name=False, trigger_mode="always_last")

        def halt(request: gr.Request):  # noqa: ANN202
            service.stop(getattr(request, "session_hash", "") or "")
            return "Stopping…"

        stop.click(halt, None, status, queue=False, api_name=False)

        def index(files, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
            yield "Indexing…"
            yield service.upload(files, progress)

        add.click(index, files, upload_status, api_name="upload")
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


def launch(settings: Settings | None = None, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True) -> gr.Blocks:
    settings = settings or Settings.load()
    service = ChatService(settings)
    t0 = time.perf_counter()
    report = service.assistant().ingest(progress=True)
    print(f"Index: {report.summary()}")
    demo = build_app(service)
    user, password = os.environ.get("RAG_UI_USER"), os.environ.get("RAG_UI_PASSWORD")
    auth = (user, password) if user and password else None
    hosts = allowed_hosts(host, port, os.environ.get("RAG_ALLOWED_HOSTS", "").split(","))
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                auth=auth, css=CSS,
                footer_links=["api"], quiet=True, max_file_size=MAX_UPLOAD_BYTES,
                app_kwargs={"middleware": [Middleware(GuardMiddleware, hosts=hosts)],
                            # the HTTP API (rag/api.py) on the same server, before Gradio's
                            "routes": build_api(service, auth).routes})
    print(f"Ready on http://{host}:{port} in {time.perf_counter() - t0:.1f} s", flush=True)
    # load the LLM now rather than on the first question; started after the print because
    # llama.cpp silences stdout/stderr while it loads
    threading.Thread(target=service.warm_up, daemon=True).start()
    if block:
        demo.block_thread()
    return demo
