"""The Gradio chat UI: streamed answers, footnotes that jump to highlighted quotes, uploads, the
documents panel (list, remove), the conversation kept in the browser across reloads, and its
export as Markdown or JSON."""

from __future__ import annotations

import atexit
import hashlib
import html
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from .api import build_api
from .assistant import Assistant, QuestionError, Stopped
from .documents import UnknownDocument
from .embeddings import Embedder
from .generation import LLM, NOT_FOUND, BackendError
from .ingestion import IngestBusy
from .loaders import SUPPORTED
from .models import ModelError, model_choices, model_label, with_model
from .questions import read_follow_up
from .settings import ARTICLE_EXAMPLES, ARTICLE_SOURCE, COLLECTION_NAME, Settings
from .shared import LockedAssistant, TurnLock
from .store import StoreError, list_collections, now_iso
from .types import Answer, DocumentInfo, Passage
from .web import GuardMiddleware, allowed_hosts

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 5_000_000
# The conversation kept in the browser (localStorage, via gr.BrowserState) across reloads:
# the chat as shown, the sources panel's sections and the structured answers (for export).
STORAGE_KEY = "rag-conversation"
SETTINGS_KEY = "rag-settings"  # kept apart: clearing the conversation keeps the settings
EMPTY_CONVERSATION: dict[str, list] = {"chat": [], "panel": [], "turns": []}
MAX_STORED_CHARS = 1_500_000  # localStorage holds ~5 MB per origin: older turns go first
SOURCES_PLACEHOLDER = ("<p class='source-meta'>Sources of each answer appear here, newest "
                       "first.</p>")

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
.premise {border-left: 4px solid #0891b2; background: #ecfeff; padding: 4px 10px;
           margin-bottom: 6px;}
.source-card a.back {display: inline-block; min-height: 24px; line-height: 24px;
                     padding: 0 6px; font-size: 0.85em; text-decoration: none;}
.read-as {color: #6b7280; font-size: 0.85em; font-style: italic; margin-bottom: 4px;}
.turn h3 {font-size: 1em; margin: 12px 0 4px;}
.fn a {display: inline-block; min-width: 24px; min-height: 24px; text-align: center;}
.docs {width: 100%; border-collapse: collapse; font-size: 0.9em;}
.docs th, .docs td {text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e7eb;}
.docs td.num, .docs th.num {text-align: right;}
"""


class ChatService:
    """What the UI does, without the widgets: testable and reusable."""

    def __init__(self, settings: Settings, uploads_dir: Path | None = None,
                 llm: LLM | None = None, embeddings: Embedder | None = None) -> None:
        self.settings = settings
        # the default collection's uploads (documents removed from here have their copy
        # deleted, ``Assistant.remove``); another collection's: its settings' uploads_dir
        self.uploads_dir = uploads_dir or settings.uploads_dir
        self.llm, self.embeddings = llm, embeddings  # injected ones (tests, embedding apps)
        self._assistants: dict[tuple[str, str], Assistant] = {}
        self._lock = threading.Lock()
        self._stops: dict[str, threading.Event] = {}  # per browser session: its Stop button
        self._exports = Path(tempfile.mkdtemp(prefix="rag-exports-"))
        atexit.register(shutil.rmtree, self._exports, True)
        self.generation = TurnLock()  # one answer at a time: the UI's and the HTTP API's

    def assistant(self, model: str | None = None, collection: str | None = None) -> Assistant:
        """The assistant answering with ``model`` (one of ``models.model_choices``; None: the
        settings' own) from ``collection`` (None: the settings' own)."""
        settings = with_model(self.settings, model)
        if collection:
            settings = settings.replace(collection=collection)
        key = (model_label(settings), settings.collection)
        with self._lock:
            if key not in self._assistants:
                base = next(iter(self._assistants.values()), None)
                self._assistants[key] = LockedAssistant(
                    self.generation, settings, llm=self.llm,
                    embeddings=self.embeddings or (base.embeddings if base else None))
            return self._assistants[key]

    def uploads_for(self, collection: str | None = None) -> Path:
        """Where ``collection``'s uploads are kept."""
        if not collection or collection == self.settings.collection:
            return self.uploads_dir
        return self.settings.replace(collection=collection).uploads_dir

    def collections(self) -> list[str]:
        """The collections with an index, the settings' own first (even before its index)."""
        try:
            found = list_collections(self.settings)
        except StoreError:
            found = []
        return [self.settings.collection] + [c for c in found if c != self.settings.collection]

    def warm_up(self) -> None:
        self.assistant().warm_up()

    def stop(self, session: str = "") -> None:
        """End the answer being generated for ``session`` (at the model's next token)."""
        if event := self._stops.get(session):
            event.set()

    def respond(self, message: str, history: list[dict], model_size: str, k: int,
                details: bool, panel: list[str] | None = None, session: str = "",
                turns: list[dict] | None = None, collection: str | None = None
                ) -> Iterator[tuple[list[dict], str, list[str], list[dict]]]:
        """Yield (chat history, sources panel HTML, panel sections, turns) as the answer
        progresses; ``turns`` gains this question's record when it is answered (see
        ``turn_record``), the structured form that exports are made of.

        Each answer is turn ``n`` (its number among the conversation's questions); its
        footnotes link to ``#cite-n-i`` in its own section of the panel, so older answers keep
        pointing at their own quotes."""
        history = list(history or [])
        question = (message or "").strip()
        earlier = [_plain(m["content"]) for m in history if m.get("role") == "user"]
        # no earlier question: a new conversation (an API client's empty history), whatever
        # the session's panel and turns still hold
        panel = list(panel or []) if earlier else []
        turns = list(turns or []) if earlier else []
        turn = max([len(earlier), *(int(t.get("turn", 0)) for t in turns)]) + 1
        history.append({"role": "user", "content": safe(question)})
        history.append({"role": "assistant", "content": "Searching the documents…"})
        stop = self._stops[session] = threading.Event()  # before the first update: Stop counts
        yield history, "".join(panel), panel, turns
        raw = ""
        try:
            assistant = self.assistant(model_size, collection)
            if k and k != assistant.settings.k:
                assistant.settings = assistant.settings.replace(k=int(k))
            for event in assistant.stream(question, stop=stop, history=earlier):
                if isinstance(event, Answer):
                    history[-1] = {"role": "assistant", "content": answer_html(event, turn)}
                    panel.insert(0, sources_html(event, details, turn, question))
                    turns.append(turn_record(turn, question, event))
                    yield history, "".join(panel), panel, turns
                    return
                raw += event
                history[-1] = {"role": "assistant", "content": safe(streamed(raw))
                               + " <em>(checking citations…)</em>"}
                yield history, "".join(panel), panel, turns
        except Stopped:
            note = ("Stopped. Nothing of the unfinished answer is shown, because it was not "
                    "checked against the documents.")
            history[-1] = {"role": "assistant", "content": _note(note, "abstain")}
        except (QuestionError, StoreError, ValueError) as exc:  # ValueError: a bad collection
            note = str(exc)
            history[-1] = {"role": "assistant", "content": _note(note)}
        except (BackendError, ModelError) as exc:
            note = f"The language model is unavailable: {exc}"
            history[-1] = {"role": "assistant", "content": _note(note)}
        except Exception as exc:  # noqa: BLE001 - a chat must never show a stack trace
            note = f"Something went wrong: {exc}"
            history[-1] = {"role": "assistant", "content": _note(note)}
        finally:
            self._stops.pop(session, None)
        turns.append(turn_record(turn, question, note=note))
        yield history, "".join(panel), panel, turns

    # -- the documents panel ---------------------------------------------------------------
    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        """The indexed documents (none if there is no index yet)."""
        try:
            return self.assistant(None, collection).documents()
        except StoreError:
            return []

    def remove(self, doc_id: str, collection: str | None = None) -> str:
        """Remove the document whose ``document_id`` is ``doc_id``; what happened, for people."""
        doc = next((d for d in self.documents(collection) if document_id(d) == doc_id), None)
        if doc is None:
            return "Choose a document first." if not doc_id else \
                "That document is no longer in the index."
        try:
            return self.assistant(None, collection).remove(doc.path).message
        except (IngestBusy, UnknownDocument, StoreError) as exc:
            return f"Not removed: {exc}"

    def examples(self, docs: list[DocumentInfo] | None = None) -> list[str]:
        """The example questions to offer: the configured ones; the default article's only
        while that article is indexed (they make no sense for another corpus)."""
        configured = tuple(self.settings.examples)
        if configured != ARTICLE_EXAMPLES:
            return list(configured)
        docs = self.documents() if docs is None else docs
        return list(configured) if any(d.source == ARTICLE_SOURCE for d in docs) else []

    # -- export ----------------------------------------------------------------------------
    def export(self, turns: list[dict]) -> tuple[Path, Path] | None:
        """The conversation as ``conversation.md`` and ``conversation.json`` files, new ones
        each time (exports older than an hour are deleted); None if there is nothing yet."""
        if not turns:
            return None
        for old in self._exports.iterdir():
            if time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(dir=self._exports))
        md, js = folder / "conversation.md", folder / "conversation.json"
        md.write_text(conversation_markdown(turns), encoding="utf-8")
        js.write_text(conversation_json(turns), encoding="utf-8")
        return md, js

    def upload(self, files: list[Any] | None, progress: gr.Progress | None = None,
               collection: str | None = None) -> str:
        """Copy uploads into their collection's own folder (never the corpus) and index only
        them (a new collection name makes the collection)."""
        if not files:
            return "Choose one or more files first."
        uploads = self.uploads_for(collection)
        uploads.mkdir(parents=True, exist_ok=True)
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
            target = _free_name(uploads / name, src)
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
                report = self.assistant(None, collection).ingest(saved, progress=False)
            except IngestBusy as exc:
                return f"{exc}"
            for file, why in report.skipped:
                notes.append(f"{Path(file).name}: skipped ({why})")
            notes.insert(0, f"Indexed: {report.summary()}")
        return "\n".join(notes)


# -- the conversation as data: kept in the browser, exported ---------------------------------
def turn_record(turn: int, question: str, answer: Answer | None = None, note: str = ""
                ) -> dict[str, Any]:
    """One question of the conversation as data: ``turn``, ``question`` and either the answer
    (``Answer.to_dict()``: text, abstained, fallback, citations with n, source, chunk_id,
    start, end and the verbatim quote, read_as, disagreements) or the ``note`` shown instead
    (stopped, an error)."""
    record: dict[str, Any] = {"turn": turn, "question": question}
    if answer is not None:
        record["answer"] = answer.to_dict()
    else:
        record["note"] = note
    return record


def conversation_json(turns: list[dict]) -> str:
    return json.dumps({"exported_at": now_iso(), "turns": turns}, ensure_ascii=False,
                      indent=2)


# Markdown's active characters in text from documents, the model or the user are escaped, so
# that a Markdown viewer shows the text and never loads an image or forms a link or markup.
_MD_ACTIVE = re.compile(r"([\\`*_\[\]<>!|~$])")


def _md(text: str) -> str:
    return _MD_ACTIVE.sub(r"\\\1", " ".join(str(text).split()))


def conversation_markdown(turns: list[dict]) -> str:
    """The conversation for people: each question, its answer, whether it abstained, and its
    citations (source, character offsets, verbatim quote)."""
    lines = ["# Conversation with the documents", "",
             f"Exported {_now()}. Quotes are verbatim (Markdown characters escaped, line breaks "
             "joined; the JSON export has them exact); “chars a–b” are offsets in the text "
             "the source's loader returns.", ""]
    for t in turns:
        lines += [f"## {t.get('turn', '?')}. {_md(t.get('question', ''))}", ""]
        answer = t.get("answer")
        if answer is None:
            lines += [f"*No answer:* {_md(t.get('note', ''))}", ""]
            continue
        if answer.get("read_as"):
            lines += [f"*Read as:* {_md(answer['read_as'])}", ""]
        if answer.get("premise"):
            lines += [f"*Premise not borne out:* {_md(answer['premise'])}", ""]
        text = re.sub(r"\\\[(\d+)\\\](?!\\?\()", r"[\1]", _md(answer.get("answer", "")))
        if answer.get("abstained"):
            lines += [f"**Abstained** (the documents do not answer this): {text}", ""]
        else:
            lines += [text, ""]
        for d in answer.get("disagreements", []):
            lines += [f"The documents disagree here: compare [{d['said']}] with "
                      f"[{d['other']}].", ""]
        for c in answer.get("citations", []):
            lines.append(f"- [{c['n']}] {_md(c['source'])}, chars {c['start']}–{c['end']}: "
                         f"“{_md(c['quote'])}”")
        if answer.get("citations"):
            lines.append("")
    return "\n".join(lines)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def stored_conversation(value: Any) -> dict[str, list]:
    """The conversation read back from the browser, or an empty one if it is not one (another
    version's format, or edited by hand)."""
    if not isinstance(value, dict):
        return {k: [] for k in EMPTY_CONVERSATION}
    chat, panel, turns = value.get("chat"), value.get("panel"), value.get("turns")
    ok = (isinstance(chat, list) and isinstance(panel, list) and isinstance(turns, list)
          and all(isinstance(m, dict) and m.get("role") in ("user", "assistant")
                  and isinstance(m.get("content"), str) for m in chat)
          and all(isinstance(x, str) for x in panel)
          and all(isinstance(t, dict) and isinstance(t.get("turn"), int) for t in turns))
    if not ok:
        return {k: [] for k in EMPTY_CONVERSATION}
    return {"chat": chat, "panel": panel, "turns": turns}


def without_last_turn(chat: list[dict], panel: list[str], turns: list[dict]
                      ) -> tuple[list[dict], list[str], list[dict], str]:
    """The conversation without its last question and answer, and that question's text."""
    chat, panel, turns = list(chat or []), list(panel or []), list(turns or [])
    asked = [i for i, m in enumerate(chat) if m.get("role") == "user"]
    if not asked:
        return chat, panel, turns, ""
    question = _plain(chat[asked[-1]]["content"])
    if turns:
        last = turns.pop()
        panel = [p for p in panel if f'id="turn-{last["turn"]}"' not in p]
    return chat[:asked[-1]], panel, turns, question


def stored_settings(value: Any, models: list[str]) -> dict[str, Any]:
    """The UI settings read back from the browser; each one that is not valid is left out."""
    value = value if isinstance(value, dict) else {}
    out: dict[str, Any] = {}
    if value.get("model") in models:
        out["model"] = value["model"]
    if isinstance(value.get("k"), (int, float)) and 2 <= value["k"] <= 8:
        out["k"] = int(value["k"])
    if isinstance(value.get("details"), bool):
        out["details"] = value["details"]
    if isinstance(value.get("collection"), str) and COLLECTION_NAME.fullmatch(value["collection"]):
        out["collection"] = value["collection"]
    return out


def conversation_to_store(chat: list[dict], panel: list[str], turns: list[dict]
                          ) -> dict[str, list]:
    """What is kept in the browser: all of it, or, past ``MAX_STORED_CHARS``, the newest
    turns that fit (older ones drop out of the kept copy, not of the page)."""
    chat = [{"role": m.get("role"), "content": _text(m.get("content"))} for m in chat or []]
    panel, turns = list(panel or []), list(turns or [])
    while turns and len(json.dumps([chat, panel, turns])) > MAX_STORED_CHARS:
        first = turns.pop(0)
        asked = [i for i, m in enumerate(chat) if m.get("role") == "user"]
        chat = chat[asked[1]:] if len(asked) > 1 else []
        panel = [p for p in panel if f'id="turn-{first["turn"]}"' not in p]
    return {"chat": chat, "panel": panel, "turns": turns}


def browser_secret(settings: Settings) -> str:
    """The key gr.BrowserState encrypts the kept conversation with, the same across restarts
    (a file beside the store), so a restarted app still reads it."""
    path = settings.store_dir.parent / "ui-secret"
    try:
        return path.read_text().strip() or _new_secret(path)
    except FileNotFoundError:
        return _new_secret(path)
    except OSError:
        return secrets.token_urlsafe(24)


def _new_secret(path: Path) -> str:
    secret = secrets.token_urlsafe(24)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret)
    except OSError:
        pass  # kept for this process only
    return secret


# -- the documents panel -------------------------------------------------------------------
def document_id(doc: DocumentInfo) -> str:
    """A stable, opaque id of an indexed document for the browser (paths stay on the server)."""
    return hashlib.sha256(f"{doc.root}\0{doc.source}".encode()).hexdigest()[:16]


def _chunks(n: int) -> str:
    return f"{n} chunk" + ("" if n == 1 else "s")


def _size(n: int | None) -> str:
    if n is None:
        return "not on disk"
    if n < 1000:
        return f"{n} B"
    return f"{n / 1000:.1f} kB" if n < 1_000_000 else f"{n / 1_000_000:.1f} MB"


def _when(iso: str | None) -> str:
    if not iso:
        return "–"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def uploaded(doc: DocumentInfo, uploads: Path) -> bool:
    """Whether ``doc`` is a file uploaded through the UI (kept in ``uploads``)."""
    try:
        return Path(doc.root).resolve() == uploads.resolve()
    except OSError:
        return False


def document_label(doc: DocumentInfo, uploads: Path) -> str:
    """How a document is named in the panel: its source, marked if it was uploaded."""
    return doc.source + (" (uploaded)" if uploaded(doc, uploads) else "")


def documents_html(docs: list[DocumentInfo], uploads: Path) -> str:
    if not docs:
        return "<p class='source-meta'>No documents are indexed.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(document_label(d, uploads))}</td>"
        f"<td class='num'>{_size(d.bytes)}</td><td class='num'>{d.chunks}</td>"
        f"<td>{_when(d.indexed_at)}</td></tr>" for d in docs)
    return ("<table class='docs'><thead><tr><th>Document</th><th class='num'>Size</th>"
            "<th class='num'>Chunks</th><th>Indexed</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


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


def _text(content: Any) -> str:
    """A chat message's content as one string: the chatbot hands messages back with their
    content as a list of parts (``{"type": "text", "text": …}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or "")
    if isinstance(content, (list, tuple)):
        return "".join(_text(part) for part in content)
    return "" if content is None else str(content)


def _plain(content: Any) -> str:
    """A chat message's text as the user typed it (the history holds it as ``safe`` HTML)."""
    return html.unescape(re.sub(r"<[^>]+>", "", _text(content)))


_MARKER = re.compile(r"(?i)" + r"[\s_]+".join(map(re.escape, NOT_FOUND.split())) + r"\.?")


def streamed(raw: str) -> str:
    """The model's text so far, without the internal no-answer marker in any case or spacing
    ('NOT IN DOCUMENTS', 'not_in_documents'), nor a beginning of it at the end."""
    text = _MARKER.sub("", raw)
    folded = re.sub(r"[\s_]", " ", text.upper())
    for n in range(min(len(NOT_FOUND) - 1, len(text)), 0, -1):
        at_word = n == len(text) or not text[-n - 1].isalnum()
        if at_word and NOT_FOUND.startswith(folded[-n:]) and folded[-n:].strip():
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
    seen: set[str] = set()

    def footnote(m: re.Match) -> str:  # the first link to each source: the cards' way back
        n = m.group(1)
        anchor = f' id="fn-{turn}-{n}"' if n not in seen else ""
        seen.add(n)
        return f'<sup class="fn"><a href="#cite-{turn}-{n}"{anchor}>[{n}]</a></sup>'

    body = re.sub(r"&#91;(\d+)&#93;", footnote, safe(answer.text))
    for d in answer.disagreements:
        link = '<sup class="fn"><a href="#cite-{t}-{n}">[{n}]</a></sup>'
        body += ('<div class="disagree">The documents disagree here: compare '
                 f"{link.format(t=turn, n=d.said)} with {link.format(t=turn, n=d.other)}.</div>")
    if answer.dropped:
        items = "".join(f"<li>{safe(d)}</li>" for d in answer.dropped)
        body += (f'<details class="flagged"><summary>{len(answer.dropped)} sentence(s) of the '
                 "model removed: not supported by the passages they cite</summary>"
                 f"<ul>{items}</ul></details>")
    if answer.premise:  # a correction: the assumption it rejects, shown apart
        read += ('<div class="premise">The question assumes what the documents do not bear '
                 f"out: {safe(answer.premise)}</div>")
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
                     f"{' · ' + _scores(p) if p and details else ''}</div>{text}"
                     f'<div><a class="back" href="#fn-{turn}-{c.n}">↩ back to the answer</a>'
                     "</div></div>")
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
        collection = gr.Dropdown(
            service.collections(), value=service.settings.collection, allow_custom_value=True,
            label="Collection: what answers come from, what is listed and where uploads go "
                  "(type a new name, then upload files, to start one)", elem_id="collection")
        panel = gr.State([])
        turns = gr.State([])  # structured answers (turn_record), for the exports
        saved = gr.BrowserState(EMPTY_CONVERSATION, storage_key=STORAGE_KEY,
                                secret=browser_secret(service.settings))
        with gr.Row():
            with gr.Column(scale=3):
                # no per-message copy button: it copied the raw HTML (<sup>, &#36;…); "Copy
                # conversation" below copies the text as shown
                chat = gr.Chatbot(label="Chat", height=480, elem_id="chat",
                                  placeholder="Ask a question about the documents.",
                                  feedback_options=None, latex_delimiters=[],
                                  sanitize_html=True, buttons=[])
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question and press Enter",
                                     show_label=False, elem_id="question", max_lines=4, scale=8)
                    send = gr.Button("Send", elem_id="send", variant="primary", scale=1,
                                     min_width=80)
                    stop = gr.Button("Stop", elem_id="stop", scale=1, min_width=80)
                status = gr.Markdown("", elem_id="status")
                first = service.examples()
                examples = gr.Dataset(components=[box], samples=[[q] for q in first],
                                      label="Examples", elem_id="examples",
                                      visible=bool(first))
                with gr.Row():
                    export_md = gr.DownloadButton("Export Markdown", elem_id="export-md",
                                                  interactive=False, size="sm")
                    export_json = gr.DownloadButton("Export JSON", elem_id="export-json",
                                                    interactive=False, size="sm")
                    copy = gr.Button("Copy conversation", elem_id="copy-conversation",
                                     size="sm")
                    retry = gr.Button("Ask the last question again", elem_id="retry",
                                      size="sm")
                    clear = gr.Button("Clear conversation", elem_id="clear", size="sm")
            with gr.Column(scale=2):
                sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources")
        with gr.Accordion("Add documents", open=False):
            files = gr.File(file_count="multiple", file_types=sorted(SUPPORTED),
                            label=f"Text, Markdown, HTML or PDF, up to "
                                  f"{MAX_UPLOAD_BYTES // 1_000_000} MB each",
                            elem_id="upload")
            add = gr.Button("Index these files", elem_id="index-button")
            upload_status = gr.Textbox(label="Indexing", interactive=False,
                                       elem_id="upload-status")
        with gr.Accordion("Documents", open=False, elem_id="documents-panel") as panel_docs:
            table = gr.HTML("", elem_id="documents")
            with gr.Row():
                choice = gr.Dropdown([], value=None, label="Document to remove",
                                     elem_id="doc-choice", scale=3)
                remove = gr.Button("Remove from the index…", elem_id="remove-doc", scale=1)
            with gr.Column(visible=False) as confirm:
                question = gr.Markdown("", elem_id="remove-question")
                with gr.Row():
                    yes = gr.Button("Yes, remove it", variant="stop", elem_id="remove-yes")
                    no = gr.Button("Cancel", elem_id="remove-no")
            removed = gr.Markdown("", elem_id="documents-status")
        with gr.Accordion("Settings", open=False):
            choices = model_choices(service.settings)
            size = gr.Dropdown(choices, value=choices[0], elem_id="model",
                               label="Model (0.5b is faster, 1.5b is more accurate)")
            k = gr.Slider(2, 8, value=service.settings.k, step=1, label="Passages per answer",
                          elem_id="passages")
            details = gr.Checkbox(False, label="Show retrieval details", elem_id="details")

        busy = ("Answering… A question you type now stays in the box; press Enter to have it "
                "answered next, or Stop.")

        def ask(message, history, size, k, details, panel, turns, collection,  # noqa: ANN001, ANN202
                request: gr.Request):
            session = getattr(request, "session_hash", "") or ""
            steps = service.respond(message, history, size, k, details, panel, session, turns,
                                    collection)
            last = next(steps)
            yield *last, "", busy  # the box is cleared once, when the question is taken
            for last in steps:  # noqa: B007 - what is typed from now on stays in the box
                yield *last, gr.skip(), busy
            yield *last, gr.skip(), ""

        def exports(turns):  # noqa: ANN001, ANN202
            files = service.export(turns or [])
            if files is None:
                return (gr.DownloadButton(value=None, interactive=False),
                        gr.DownloadButton(value=None, interactive=False))
            return (gr.DownloadButton(value=str(files[0]), interactive=True),
                    gr.DownloadButton(value=str(files[1]), interactive=True))

        def keep(chat, panel, turns):  # noqa: ANN001, ANN202
            return conversation_to_store(chat, panel, turns), *exports(turns)

        inputs = [box, chat, size, k, details, panel, turns, collection]
        outputs = [chat, sources, panel, turns, box, status]
        # a question sent while one is answered runs next (the last one sent), never dropped;
        # once answered, the conversation is kept in the browser and the exports made
        # (one dependency for Enter and Send: the browser then holds a question sent either
        # way until the running answer is complete, and sends it with the history as it is)
        sent = [box.submit, send.click]
        asked = [gr.on(sent, ask, inputs, outputs, api_name="ask", trigger_mode="always_last")]
        asked[0].then(keep, [chat, panel, turns], [saved, export_md, export_json],
                      api_name=False, show_progress="hidden")
        # the keyboard stays in the question box after sending (Enter or the Send button)
        gr.on(sent, None, None, None, js=FOCUS_QUESTION_JS, queue=False, api_name=False)

        def halt(request: gr.Request):  # noqa: ANN202
            service.stop(getattr(request, "session_hash", "") or "")
            return "Stopping…"

        stop.click(halt, None, status, queue=False, api_name=False)

        def restore(stored):  # noqa: ANN001, ANN202
            kept = stored_conversation(stored)
            return (kept["chat"], "".join(kept["panel"]) or SOURCES_PLACEHOLDER, kept["panel"],
                    kept["turns"], *exports(kept["turns"]))

        demo.load(restore, saved, [chat, sources, panel, turns, export_md, export_json],
                  api_name=False, show_progress="hidden")

        def again(chat, panel, turns):  # noqa: ANN001, ANN202
            """The last question back in the box, its answer gone (then asked again)."""
            chat, panel, turns, question = without_last_turn(chat, panel, turns)
            return chat, "".join(panel) or SOURCES_PLACEHOLDER, panel, turns, question

        retry.click(again, [chat, panel, turns], [chat, sources, panel, turns, box],
                    api_name=False, show_progress="hidden").then(
            ask, inputs, outputs, api_name=False).then(
            keep, [chat, panel, turns], [saved, export_md, export_json], api_name=False,
            show_progress="hidden")

        # the settings (model, passages, details, collection) survive a reload too
        kept_settings = gr.BrowserState({}, storage_key=SETTINGS_KEY,
                                        secret=browser_secret(service.settings))
        knobs = [size, k, details, collection]

        def restore_settings(stored):  # noqa: ANN001, ANN202
            got = stored_settings(stored, choices)
            return tuple(gr.skip() if got.get(name) is None else got[name]
                         for name in ("model", "k", "details", "collection"))

        demo.load(restore_settings, kept_settings, knobs, api_name=False,
                  show_progress="hidden")
        gr.on([c.change for c in knobs],
              lambda size, k, details, collection: {"model": size, "k": k, "details": details,
                                                    "collection": collection},
              knobs, kept_settings, api_name=False, show_progress="hidden", queue=False)

        def forget():  # noqa: ANN202
            return ([], SOURCES_PLACEHOLDER, [], [], dict(EMPTY_CONVERSATION), "",
                    *exports([]))

        forgotten = [chat, sources, panel, turns, saved, status, export_md, export_json]
        clear.click(forget, None, forgotten, api_name=False, cancels=asked)
        chat.clear(forget, None, forgotten, api_name=False, cancels=asked)  # its trash icon
        # the chat's text as shown, one message a paragraph (not the HTML behind it)
        copy.click(None, None, None, api_name=False, js=COPY_CONVERSATION_JS)

        examples.click(lambda sample: sample[0], examples, box, api_name=False, queue=False,
                       show_progress="hidden")

        def refresh(collection):  # noqa: ANN001, ANN202
            try:
                docs, uploads = service.documents(collection), service.uploads_for(collection)
            except ValueError as exc:  # a malformed new collection name
                return (f"<p class='source-meta'>{safe(str(exc))}</p>",
                        gr.Dropdown(choices=[], value=None), gr.Dataset(visible=False),
                        gr.Column(visible=False))
            shown = service.examples(docs)
            return (documents_html(docs, uploads),
                    gr.Dropdown(choices=[(document_label(d, uploads), document_id(d))
                                         for d in docs], value=None),
                    gr.Dataset(samples=[[q] for q in shown], visible=bool(shown)),
                    gr.Column(visible=False))

        demo.load(None, None, None, js=FOOTNOTE_NAVIGATION_JS, api_name=False, queue=False)

        listing = [table, choice, examples, confirm]
        demo.load(refresh, collection, listing, api_name=False, show_progress="hidden")
        # opened: listed afresh (`rag ingest` or `rag remove` may have changed the index)
        panel_docs.expand(refresh, collection, listing, api_name=False, show_progress="hidden")
        collection.change(refresh, collection, listing, api_name=False, show_progress="hidden")

        def index(files, collection, progress=gr.Progress()):  # noqa: ANN001, ANN202, B008
            yield "Indexing…"
            try:
                yield service.upload(files, progress, collection)
            except ValueError as exc:  # a malformed new collection name
                yield str(exc)

        def collections():  # noqa: ANN202 - an upload may have started one
            return gr.Dropdown(choices=service.collections())

        add.click(index, [files, collection], upload_status, api_name="upload").then(
            refresh, collection, listing, api_name=False, show_progress="hidden").then(
            collections, None, collection, api_name=False, show_progress="hidden")

        def confirm_removal(doc_id, collection):  # noqa: ANN001, ANN202
            uploads = service.uploads_for(collection)
            doc = next((d for d in service.documents(collection) if document_id(d) == doc_id),
                       None)
            if doc is None:
                return gr.Column(visible=False), "", "Choose a document first."
            what = ("its uploaded copy is deleted too" if uploaded(doc, uploads) else
                    "the file itself stays in its folder, and the next ingest of that folder "
                    "adds it back unless you delete or move it")
            return (gr.Column(visible=True),
                    f"Remove **{safe(doc.source)}** ({_chunks(doc.chunks)}) from the index? "
                    f"Questions will no longer be answered from it; {what}.", "")

        remove.click(confirm_removal, [choice, collection], [confirm, question, removed],
                     api_name=False, show_progress="hidden")
        no.click(lambda: (gr.Column(visible=False), ""), None, [confirm, removed],
                 api_name=False, queue=False)
        yes.click(lambda doc_id, collection: (gr.Column(visible=False),
                                              safe(service.remove(doc_id, collection))),
                  [choice, collection], [confirm, removed], api_name=False).then(
            refresh, collection, listing, api_name=False, show_progress="hidden")
    demo.queue(default_concurrency_limit=1, max_size=64)
    return demo


FOCUS_QUESTION_JS = """
() => { setTimeout(() => document.querySelector('#question textarea')?.focus(), 50); }
"""

# A footnote and its card's "back to the answer" link: the browser follows the fragment; this
# also brings the target into view inside its scrolling container (the chat keeps scrolled to
# its end otherwise) and, going back, puts the keyboard on the footnote again.
FOOTNOTE_NAVIGATION_JS = """
() => {
  if (window.__ragFootnotes) return;
  window.__ragFootnotes = true;
  document.addEventListener('click', event => {
    const link = event.target.closest?.('#chat sup.fn a, #sources a.back');
    const target = link && document.getElementById((link.getAttribute('href') || '').slice(1));
    if (!target) return;
    setTimeout(() => {
      target.scrollIntoView({block: 'center'});
      if (link.matches('#sources a.back')) target.focus({preventScroll: true});
    }, 50);
  });
}
"""

# "Copy conversation": the messages' text as the browser shows it (footnotes as [n]), one
# paragraph each, questions marked "Q:" and answers "A:".
COPY_CONVERSATION_JS = """
() => {
  const rows = [...document.querySelectorAll('#chat .message-row')];
  const text = rows.map(row => {
    const body = row.querySelector('.message-content');
    if (!body) return '';
    return (row.classList.contains('user-row') ? 'Q: ' : 'A: ') + body.innerText.trim();
  }).filter(t => t).join('\\n\\n');
  if (text) navigator.clipboard.writeText(text);
}
"""


def launch(settings: Settings | None = None, host: str = "127.0.0.1", port: int = 7860,
           block: bool = True) -> gr.Blocks:
    settings = settings or Settings.load()
    service = ChatService(settings)
    t0 = time.perf_counter()
    report = service.assistant().ingest(progress=True)
    log.info("Index: %s", report.summary())
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
    log.info("Ready on http://%s:%d in %.1f s", host, port, time.perf_counter() - t0)
    # load the LLM now rather than on the first question; started after the print because
    # llama.cpp silences stdout/stderr while it loads
    threading.Thread(target=service.warm_up, daemon=True).start()
    if block:
        demo.block_thread()
    return demo
