"""Load documents as plain text. Citation offsets index into the text these functions return."""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}


class LoadError(Exception):
    """A file that cannot be ingested; the message says why."""


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus root, with forward slashes
    path: Path
    text: str


def load_text(path: Path, max_bytes: int = 20_000_000) -> str:
    """The text of one file, as the chunker and the citations see it."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"unsupported file type {suffix or '(none)'}")
    size = path.stat().st_size
    if size > max_bytes:
        raise LoadError(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
    data = path.read_bytes()
    if suffix == ".pdf":
        return _pdf_text(data)
    if b"\x00" in data[:8192]:
        raise LoadError("looks binary (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not valid UTF-8 (byte {exc.start})") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if suffix in {".html", ".htm"}:
        text = _html_text(text)
    if not text.strip():
        raise LoadError("no text")
    return text


def discover(paths: list[Path], max_bytes: int = 20_000_000
             ) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Files to ingest as (root, file) pairs, and skipped ones as (file, reason).

    A directory is walked recursively; a file stands for itself (its root is its folder).
    Symlinks that leave their root are skipped.
    """
    found: list[tuple[Path, Path]] = []
    skipped: list[tuple[Path, str]] = []
    for p in paths:
        p = Path(os.path.normpath(Path(p).absolute()))  # 'corpus/../corpus' -> 'corpus'
        if not p.exists():
            skipped.append((p, "does not exist"))
            continue
        root = p.resolve() if p.is_dir() else p.resolve().parent
        entries = sorted(p.rglob("*")) if p.is_dir() else [p]
        for f in entries:
            if p.is_dir() and any(part.startswith(".") for part in f.relative_to(p).parts):
                continue  # hidden files and folders
            if not f.resolve().is_relative_to(root):  # a linked file or folder elsewhere
                skipped.append((f, "symlink points outside the corpus folder"))
            elif not f.is_file():
                continue
            elif f.suffix.lower() not in SUPPORTED:
                skipped.append((f, f"unsupported file type {f.suffix or '(none)'}"))
            else:
                found.append((root, f.absolute()))
    return found, skipped


def relative_source(root: Path, file: Path) -> str:
    try:
        return file.absolute().relative_to(root).as_posix()
    except ValueError:
        return file.resolve().relative_to(root).as_posix()


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "head", "noscript", "template", "svg"}
    _BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
              "article", "blockquote", "pre", "ul", "ol", "table", "header", "footer"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _html_text(source: str) -> str:
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    text = html.unescape("".join(parser.parts))
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _pdf_text(data: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise LoadError(f"unreadable PDF ({exc})") from exc
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise LoadError("PDF has no extractable text")
    return text
