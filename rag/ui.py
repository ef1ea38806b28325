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

from .assistant import Assistant, QuestionError
from .generation import BackendError
from .ingestion import IngestBusy
from .loaders import SUPPORTED
from .models import ModelError
from .settings import Settings
from .types import Answer, Passage

EXAMPLES = [
    "How much is the Boeing deal worth?",
    "Who is Emily Harding?",
    "Which minerals does Tajikistan have?",
    "What is the capital of Tajikistan?",
]
MAX_UPLOAD_BYTES = 5_000_000
_FOLLOW_UP = re.compile(r"^(and|but|so|also)\b|\b(that|this|it|he|she|they|them|his|her|their|"
                        r"those|these|there)\b", re.I)

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
"""


class ChatService:
    """What the UI does, without the widgets: testable and reusable."""

    def __init__(self, settings: Settings, uploads_dir: Path | None = None) -> None:
        self.settings = settings
        self.uploads_dir = uploads_dir or settings.store_dir.parent / "uploads"
        self._assistants: dict[str, Assistant] = {}
        self._lock = threading.Lock()

    def assistant(self, model_size: str | None = None) -> Assistant:
        size = model_size or self.settings.model_size
        with self._lock:
            if size not in self._assistants:
                base = next(iter(self._assistants.values()), None)
                self._assistants[size] = Assistant(
                    self.settings.replace(model_size=size),
                    embeddings=base.embeddings if base else None)
            return self._assistants[size]

    def warm_up(self) -> None:
        self.assistant().warm_up()

    def respond(self, message: str, history: list[dict], model_size: str, k: int,
                details: bool) -> Iterator[tuple[list[dict], str]]:
        """Yield (chat history, sources panel HTML) as the answer progresses."""
        history = list(history or [])
        question = (message or "").strip()
        history.append({"role": "user", "content": question})
        history.append({"role": "assistant", "content": "Searching the documents…"})
        yield history, ""
        asked = contextualize(question, history[:-2])
        assistant = self.assistant(model_size)
        if k and k != assistant.settings.k:
            assistant.settings = assistant.settings.replace(k=int(k))
        raw = ""
        try:
            for event in assistant.stream(asked):
                if isinstance(event, Answer):
                    history[-1] = {"role": "assistant", "content": answer_html(event)}
                    yield history, sources_html(event, details)
                    return
                raw += event
                history[-1] = {"role": "assistant",
                               "content": html.escape(raw) + " <em>(checking citations…)</em>"}
                yield history, ""
        except QuestionError as exc:
            history[-1] = {"role": "assistant", "content": _error(str(exc))}
        except (BackendError, ModelError) as exc:
            history[-1] = {"role": "assistant",
                           "content": _error(f"The language model is unavailable: {exc}")}
        except Exception as exc:  # noqa: BLE001 - a chat must never show a stack trace
            history[-1] = {"role": "assistant", "content": _error(f"Something went wrong: {exc}")}
        yield history, ""

    def upload(self, files: list[Any] | None, progress: gr.Progress | None = None) -> str:
        """Copy uploads into their own folder (never the corpus) and index them."""
        if not files:
            return "Choose one or more files first."
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        notes, saved = [], 0
        for f in files:
            src = Path(getattr(f, "name", f))
            name = re.sub(r"[^\w.-]", "_", src.name).lstrip(".") or "upload.txt"
            if src.suffix.lower() not in SUPPORTED:
                notes.append(f"{src.name}: unsupported type (use {', '.join(sorted(SUPPORTED))})")
                continue
            if src.stat().st_size > MAX_UPLOAD_BYTES:
                notes.append(f"{src.name}: larger than {MAX_UPLOAD_BYTES // 1_000_000} MB")
                continue
            shutil.copyfile(src, self.uploads_dir / name)
            saved += 1
        if saved:
            if progress is not None:
                progress(0.3, desc="Indexing…")
            try:
                report = self.assistant().ingest([self.uploads_dir], progress=False)
            except IngestBusy as exc:
                return f"{exc}"
            for file, why in report.skipped:
                notes.append(f"{Path(file).name}: skipped ({why})")
            notes.insert(0, f"Indexed: {report.summary()}")
        return "\n".join(notes)


def contextualize(question: str, history: list[dict]) -> str:
    """Rewrite a follow-up ('and who said that?') with the previous question, so retrieval and
    the model see what 'that' refers to."""
    previous = [m["content"] for m in history if m.get("role") == "user"]
    if previous and len(question.split()) <= 8 and _FOLLOW_UP.search(question):
        return f"{previous[-1]} {question}"
    return question


def _error(text: str) -> str:
    return f'<div class="error">{html.escape(text)}</div>'


def answer_html(answer: Answer) -> str:
    if answer.abstained:
        return f'<div class="abstain">{html.escape(answer.text)}</div>'
    body = html.escape(answer.text)
    body = re.sub(r"\[(\d+)\]", r'<sup class="fn"><a href="#cite-\1">[\1]</a></sup>', body)
    if answer.dropped:
        body += (f'<div class="flagged">{len(answer.dropped)} unsupported sentence(s) of the '
                 "model were removed.</div>")
    return f'<div class="fallback">{body}</div>' if answer.fallback else body


def _highlight(passage_text: str, start: int, end: int) -> str:
    return (html.escape(passage_text[:start]) + "<mark>" + html.escape(passage_text[start:end])
            + "</mark>" + html.escape(passage_text[end:]))


def _scores(p: Passage) -> str:
    dense = "–" if p.dense_score is None else f"{p.dense_score:.2f}"
    lex = "–" if p.lexical_score is None else f"{p.lexical_score:.2f}"
    return f'<span class="scores">rank {p.rank} · fused {p.score:.4f} · dense {dense} · ' \
           f"BM25 {lex}</span>"


def sources_html(answer: Answer, details: bool = False) -> str:
    by_id = {p.chunk_id: p for p in answer.passages}
    parts = []
    if answer.citations:
        parts.append("<h3>Sources</h3>")
    elif answer.passages:
        parts.append("<h3>Closest passages</h3><p class='source-meta'>None of these answers "
                     "the question.</p>")
        for p in answer.passages[:2]:
            parts.append(f'<div class="source-card"><div class="source-meta">'
                         f"{html.escape(p.source)} · chars {p.start}–{p.end}</div>"
                         f"{html.escape(p.text)}</div>")
    for c in answer.citations:
        p = by_id.get(c.chunk_id)
        text = (_highlight(p.text, c.start - p.start, c.end - p.start) if p
                else f"<mark>{html.escape(c.quote)}</mark>")
        parts.append(f'<div class="source-card" id="cite-{c.n}"><div class="source-meta">'
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
    return "".join(parts)


def build_app(service: ChatService) -> gr.Blocks:
    with gr.Blocks(title="Ask the documents") as demo:
        gr.Markdown("## Ask the documents\nAnswers come only from the indexed documents; every "
                    "sentence cites the passage it comes from. Click a footnote to see it.")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Chat", height=480, elem_id="chat",
                                  placeholder="Ask a question about the documents.",
                                  feedback_options=None)
                box = gr.Textbox(placeholder="Ask a question and press Enter", show_label=False,
                                 elem_id="question", max_lines=4)
                gr.Examples(EXAMPLES, inputs=box)
            with gr.Column(scale=2):
                sources = gr.HTML("<p class='source-meta'>Sources of the current answer appear "
                                  "here.</p>", elem_id="sources")
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

        def ask(message, history, size, k, details):  # noqa: ANN001, ANN202
            yield from service.respond(message, history, size, k, details)

        box.submit(ask, [box, chat, size, k, details], [chat, sources], api_name="ask"
                   ).then(lambda: "", None, box)

        def index(files, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
            return service.upload(files, progress)

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
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                auth=(user, password) if user and password else None, css=CSS,
                footer_links=["api"], quiet=True)
    print(f"Ready on http://{host}:{port} in {time.perf_counter() - t0:.1f} s", flush=True)
    # load the LLM now rather than on the first question; started after the print because
    # llama.cpp silences stdout/stderr while it loads
    threading.Thread(target=service.warm_up, daemon=True).start()
    if block:
        demo.block_thread()
    return demo
