"""``rag`` command line: ingest, list, remove, ask, chat, ui, doctor, eval."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from . import (
    USAGE_ERRORS,
    USER_ERRORS,
    Assistant,
    BackendError,
    QuestionError,
    Settings,
    UnknownDocument,
)
from .evalcmd import eval_command
from .types import Answer


def build_parser() -> argparse.ArgumentParser:
    """The ``rag`` command's arguments (``rag eval`` has its own: ``python -m evals``)."""
    parser = argparse.ArgumentParser(
        prog="rag", description=__doc__,
        epilog="Exit codes: 0 done, 1 runtime error (store, model, busy ingest), 2 usage error "
               "(bad question, path or setting), 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--config", help="TOML settings file (default: ./rag.toml if present)")
    parser.add_argument("--model-size", choices=["1.5b", "0.5b"], help="embedded model size")
    parser.add_argument("--backend", choices=["llama", "openai"], help="LLM backend")
    parser.add_argument("--collection", metavar="NAME",
                        help="the collection to use (default: corpus, or RAG_COLLECTION): each "
                             "has its own index, lexical index and uploads folder")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index documents (default: the corpus folder)")
    p.add_argument("paths", nargs="*", type=Path,
                   help="files or folders to index (default: the corpus folder)")
    p.add_argument("--rebuild", action="store_true",
                   help="build a new index beside the current one (never opening it) and "
                        "swap it in when complete")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("list", help="the indexed documents: source, chunks, bytes, when indexed")
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = sub.add_parser("collections", help="the collections of this store, with their "
                                           "documents and chunks")
    p.add_argument("--json", action="store_true", help="print a JSON list")

    p = sub.add_parser("remove", help="remove one document from the index (an uploaded copy is "
                                      "deleted too; a corpus file stays on disk)")
    p.add_argument("document", metavar="PATH_OR_SOURCE",
                   help="the document's path, or its source name as `rag list` shows it")

    p = sub.add_parser("ask", help="answer one question with citations")
    p.add_argument("question", help="the question; - reads it from standard input")
    p.add_argument("--json", action="store_true",
                   help="print the answer, citations and timings as one JSON object")
    p.add_argument("-k", type=int, help="passages given to the model")

    sub.add_parser("chat", help="interactive question prompt in the terminal")
    p = sub.add_parser("models", help="assemble and verify the embedded GGUF models")
    p.add_argument("--smoke", action="store_true",
                   help="also generate a few tokens with each in a worker process (set-up's "
                        "proof that the llama.cpp build runs on this CPU)")
    p = sub.add_parser("ui", help="start the chat UI (default http://127.0.0.1:7860)")
    p.add_argument("--host", default=os.environ.get("RAG_UI_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1, or RAG_UI_HOST)")
    p.add_argument("--port", type=int, default=int(os.environ.get("RAG_UI_PORT", "7860")),
                   help="port (default 7860, or RAG_UI_PORT)")

    # -- rag serve: the HTTP API alone (rag/api.py) --
    p = sub.add_parser("serve", help="serve the HTTP API alone, no UI (default "
                                     "http://127.0.0.1:8000/v1)")
    p.add_argument("--host", default=os.environ.get("RAG_API_HOST", "127.0.0.1"),
                   help="address to listen on (default 127.0.0.1, or RAG_API_HOST)")
    p.add_argument("--port", type=int, default=int(os.environ.get("RAG_API_PORT", "8000")),
                   help="port (default 8000, or RAG_API_PORT)")

    p = sub.add_parser("doctor", help="check the index against the sources; repair what "
                                      "is derivable (the lexical index, leftovers)")
    p.add_argument("paths", nargs="*", type=Path, help="ingested folders (default: corpus)")
    p.add_argument("--check", action="store_true", help="only check, repair nothing")

    sub.add_parser("eval", help="run the eval harness (`rag eval --help` for its options)")

    return parser


def _log_to_stderr() -> None:
    """The library's progress lines (``logging``, logger ``rag``) as plain lines on stderr."""
    log = logging.getLogger("rag")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        log.addHandler(_Stderr())
        log.setLevel(logging.INFO)


class _Stderr(logging.Handler):
    """Each record's message on whatever ``sys.stderr`` is when it is logged."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(record.getMessage(), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    _log_to_stderr()
    at = _command_at(argv)
    if at is not None and argv[at] == "eval":
        # the eval harness is not part of the product: it runs apart, with every option
        return eval_command([*argv[:at], *argv[at + 1:]])
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(args.config, model_size=args.model_size, backend=args.backend,
                                 collection=args.collection)
        if args.command == "ingest":
            return _ingest(settings, args)
        if args.command == "list":
            return _list(Assistant(settings), args.json)
        if args.command == "collections":
            return _collections(settings, args.json)
        if args.command == "remove":
            return _remove(Assistant(settings), args.document)
        if args.command == "doctor":
            from .doctor import diagnose

            diagnosis = diagnose(settings, args.paths or None, repair=not args.check)
            print(diagnosis.report())
            return 0 if diagnosis.healthy else 1
        if args.command == "ask":
            if args.k:
                settings = settings.replace(k=args.k)
            question = sys.stdin.read() if args.question == "-" else args.question
            return _ask(Assistant(settings), question, args.json)
        if args.command == "chat":
            return _chat(Assistant(settings))
        if args.command == "ui":
            from .ui import launch

            launch(settings, args.host, args.port)
            return 0
        if args.command == "serve":  # the HTTP API alone (rag/api.py)
            from .api import serve

            serve(settings, args.host, args.port)
            return 0
        if args.command == "models":
            from .models import gguf_for, model_choices, with_model

            for choice in model_choices(settings):
                chosen = with_model(settings, choice)
                print(f"{choice}: {gguf_for(chosen)}")
                if args.smoke:
                    from .generation import smoke_test

                    t0 = time.perf_counter()
                    text = smoke_test(chosen)
                    print(f"  smoke test: generated {text.strip()!r} in "
                          f"{time.perf_counter() - t0:.1f} s (load included)")
            return 0
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, USAGE_ERRORS) else 1
    except KeyboardInterrupt:
        return 130
    return 0


def _version() -> str:
    from . import __version__

    return str(__version__)


def _command_at(argv: list[str]) -> int | None:
    """Index of the sub-command in ``argv`` (global options may come first)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--config", "--model-size", "--backend", "--collection"):
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            return i
    return None


def _ingest(settings: Settings, args: argparse.Namespace) -> int:
    report = Assistant(settings).ingest(args.paths or None, rebuild=args.rebuild,
                                        progress=not args.json)
    print(json.dumps(report.to_dict()) if args.json else f"Ingested: {report.summary()}")
    return 0


def _list(assistant: Assistant, as_json: bool) -> int:
    from .loaders import escape_name

    docs = assistant.documents()
    if as_json:
        print(json.dumps([d.to_dict() for d in docs]))  # \u-escaped: no control characters
        return 0
    if not docs:
        print("No documents are indexed: run `rag ingest`.")
        return 0
    rows = [("SOURCE", "CHUNKS", "BYTES", "INDEXED AT", "FOLDER")]
    rows += [(escape_name(d.source), str(d.chunks),
              "(gone)" if d.bytes is None else f"{d.bytes:,}",
              (d.indexed_at or "?").replace("T", " "), escape_name(d.root)) for d in docs]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  "
              f"{r[3]:<{widths[3]}}  {r[4]}")
    return 0


def _collections(settings: Settings, as_json: bool) -> int:
    from .documents import collections

    found = collections(settings)
    if as_json:
        print(json.dumps([c.to_dict() for c in found]))
    elif not found:
        print("No collections yet: `rag ingest` makes one (`--collection NAME` for another).")
    for c in [] if as_json else found:
        mark = "*" if c.name == settings.collection else " "
        print(f"{mark} {c.name}  " + (c.problem or f"{c.documents} document(s), "
                                              f"{c.chunks} chunk(s)"))
    return 0


def _remove(assistant: Assistant, name: str) -> int:
    try:
        removed = assistant.remove(name)
    except UnknownDocument as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(removed.message)
    return 0


def _ask(assistant: Assistant, question: str, as_json: bool) -> int:
    t0 = time.perf_counter()
    answer = assistant.ask(question)
    if as_json:
        out = answer.to_dict()
        out["seconds"] = round(time.perf_counter() - t0, 3)
        print(json.dumps(out))  # \u-escaped: no bidi or control character reaches a terminal
    else:
        print(render(answer))
    return 0


def render(answer: Answer) -> str:
    """The answer with numbered footnotes: source, character span and the quote. Source
    names are escaped (newlines, bidi and other invisible characters), so a file name cannot
    forge a footnote line."""
    from .loaders import escape_name

    lines = [answer.text]
    if answer.citations:
        lines.append("")
        for c in answer.citations:
            lines.append(f"[{c.n}] {escape_name(c.source)} (chars {c.start}-{c.end}): "
                         f"“{c.quote}”")
    elif answer.abstained and answer.passages:
        lines.append("\nClosest passages:")
        for p in answer.passages[:2]:
            lines.append(f"  - {escape_name(p.source)} (chars {p.start}-{p.end}): "
                         f"{p.text[:160]}…")
    return "\n".join(lines)


def _chat(assistant: Assistant) -> int:
    print("Loading models…", file=sys.stderr)
    assistant.warm_up()
    print("Ask a question about the documents (empty line or Ctrl-D to quit).")
    history: list[str] = []
    while True:
        try:
            question = input("\n? ").strip()
        except EOFError:
            return 0
        if not question:
            return 0
        try:
            print()
            answer = assistant.ask(question, history=history)
            history.append(question)  # as asked: Assistant.read resolves the chain
            if answer.read_as:
                print(f"(read as: {answer.read_as})")
            print(render(answer))
        except (QuestionError, BackendError) as exc:
            print(f"error: {exc}")


if __name__ == "__main__":
    sys.exit(main())
