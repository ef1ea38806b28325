"""Load documents as plain text. Citation offsets index into the text these functions return.

What is indexed is what a reader sees: HTML hidden by attribute or inline style and PDF text
drawn invisibly (render mode 3 or 7 unless over an image, zero alpha, white on a bare page,
under 1 pt, off the page or outside the clip) are left out, and invisible Unicode
(zero-width, bidi controls, tag characters, ...) is removed.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import unicodedata
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf"}


class LoadError(Exception):
    """A file that cannot be ingested; the message says why."""


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the corpus root, with forward slashes
    path: Path
    text: str


def load_text(path: Path, max_bytes: int = 20_000_000) -> str:
    """The text of one file, as the chunker and the citations see it (NFC, without
    invisible characters)."""
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"unsupported file type {suffix or '(none)'}")
    size = path.stat().st_size
    if size > max_bytes:
        raise LoadError(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
    data = path.read_bytes()
    if suffix == ".pdf":
        text = _pdf_text(data)
    else:
        if b"\x00" in data[:8192]:
            raise LoadError("looks binary (NUL bytes)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not valid UTF-8 (byte {exc.start})") from exc
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if suffix in {".html", ".htm"}:
            try:
                text = _html_text(text)
            except Exception as exc:  # noqa: BLE001 - any parser failure is this file's
                raise LoadError(f"unreadable HTML ({_brief(exc)})") from exc
    text = clean_text(text)
    if not text.strip():
        raise LoadError("no text")
    return text


# --- text hygiene ----------------------------------------------------------------------

# Characters that draw nothing but can carry hidden instructions, split a word so that it no
# longer matches, or reorder what is displayed: soft hyphen, combining grapheme joiner,
# Hangul and Khmer fillers, Mongolian vowel separator, zero-width space/non-joiner/joiner,
# bidi marks, embeddings, overrides and isolates, word joiner and invisible operators,
# variation selectors (also used to smuggle bytes after an emoji), byte order mark,
# interlinear annotation, musical and shorthand format controls, and the whole of plane 14
# (tag characters, variation selectors supplement).
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
# Control characters other than tab and line feed (C0, DEL, C1); line-like ones become "\n".
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_LINE_BREAKS = str.maketrans({"\x0b": "\n", "\x0c": "\n", "\x85": "\n", "\u2028": "\n",
                              "\u2029": "\n\n"})


def clean_text(text: str) -> str:
    """``text`` in NFC without invisible format characters and control characters (tab and
    line feed are kept; CR, VT, FF, NEL and the Unicode line/paragraph separators become line
    feeds)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_LINE_BREAKS)
    text = _CONTROL.sub("", _INVISIBLE.sub("", text))
    # NFC is quadratic in a run of combining marks: keep at most 30 of a run (Unicode's
    # stream-safe limit, UAX #15), which no real text exceeds
    text = _MARK_RUN.sub(lambda m: m.group(0)[:30], text)
    return unicodedata.normalize("NFC", text)


_MARK_RUN = re.compile("[" + "".join(
    re.escape(chr(c)) for c in range(0x300, 0x110000)
    if unicodedata.combining(chr(c))) + "]{31,}")


def escape_name(name: str) -> str:
    """``name`` safe to print on one line: backslashes, control, format (bidi, zero-width,
    tag) and separator characters, and undecodable bytes (surrogate escapes) are written as
    ``\\xNN``/``\\uNNNN`` escapes, so a file name cannot forge or reorder output lines."""
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif ch == " " or (ch.isprintable() and not _INVISIBLE.match(ch)):
            out.append(ch)
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _brief(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- finding files ----------------------------------------------------------------------

def discover(paths: list[Path], max_bytes: int = 20_000_000
             ) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]]]:
    """Files to ingest as (root, file) pairs, and skipped ones as (file, reason).

    A directory is walked (without recursion, so any depth works); a file stands for itself
    (its root is its folder). Hidden files and folders are ignored; symlinked folders are not
    followed. Symlinks that leave their root, symlink loops, broken symlinks, names that are
    not valid UTF-8 and unreadable folders are skipped with the reason.
    """
    found: list[tuple[Path, Path]] = []
    skipped: list[tuple[Path, str]] = []
    for p in paths:
        p = Path(os.path.normpath(Path(p).absolute()))  # 'corpus/../corpus' -> 'corpus'
        if not _utf8(str(p)):
            skipped.append((p, "path is not valid UTF-8"))
            continue
        try:
            st = p.stat()
        except OSError as exc:
            skipped.append((p, _link_problem(exc) if p.is_symlink() else "does not exist"))
            continue
        try:
            if stat.S_ISDIR(st.st_mode):
                root = p.resolve(strict=True)
                _walk(p, root, found, skipped)
            elif not stat.S_ISREG(st.st_mode):
                skipped.append((p, "not a regular file"))
            elif p.suffix.lower() not in SUPPORTED:
                skipped.append((p, f"unsupported file type {p.suffix or '(none)'}"))
            else:
                found.append((p.resolve(strict=True).parent, p))
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
            skipped.append((p, _link_problem(exc)))
    return found, skipped


def _walk(top: Path, root: Path, found: list[tuple[Path, Path]],
          skipped: list[tuple[Path, str]]) -> None:
    """Depth-first walk of ``top`` with an explicit stack (no recursion limit), in name
    order. Directories are identified by (device, inode) so a bind-mount loop ends too."""
    seen: set[tuple[int, int]] = set()
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                skipped.append((folder, "folder already walked (a file system loop)"))
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            skipped.append((folder, f"cannot read folder ({exc.strerror or exc})"))
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue  # hidden files and folders
            f = folder / entry.name
            if not _utf8(entry.name):
                skipped.append((f, "name is not valid UTF-8"))
                continue
            try:
                if entry.is_symlink():
                    try:
                        target_st = os.stat(f)
                    except OSError as exc:
                        skipped.append((f, _link_problem(exc)))
                        continue
                    if not Path(os.path.realpath(f)).is_relative_to(root):
                        skipped.append((f, "symlink points outside the corpus folder"))
                        continue
                    if not stat.S_ISREG(target_st.st_mode):
                        continue  # a folder linked from inside the corpus is walked as itself
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append(f)
                    continue
                elif not entry.is_file(follow_symlinks=False):
                    continue  # FIFO, socket, device: never read
            except OSError as exc:
                skipped.append((f, f"cannot read ({exc.strerror or exc})"))
                continue
            if f.suffix.lower() not in SUPPORTED:
                skipped.append((f, f"unsupported file type {f.suffix or '(none)'}"))
            else:
                found.append((root, f))
        stack.extend(reversed(subfolders))


def _utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (``os.fsdecode`` surrogate escapes)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _link_problem(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP:
        return "symlink loop"
    if isinstance(exc, FileNotFoundError):
        return "broken symlink (its target does not exist)"
    return f"cannot read ({getattr(exc, 'strerror', None) or exc})"


def relative_source(root: Path, file: Path) -> str:
    try:
        return file.absolute().relative_to(root).as_posix()
    except ValueError:
        return file.resolve().relative_to(root).as_posix()


# --- HTML: the text a browser shows -------------------------------------------------------

_VOID = {"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img",
         "input", "keygen", "link", "meta", "param", "source", "track", "wbr"}
# Elements whose content is never shown (and SVG, whose text is not indexed).
_SKIP = {"script", "style", "head", "title", "noscript", "template", "svg", "iframe"}
_BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
          "article", "blockquote", "pre", "ul", "ol", "table", "header", "footer", "dd", "dt",
          "td", "th", "hr", "main", "nav", "aside", "figure", "figcaption", "address",
          "details", "summary", "dl", "fieldset", "form", "caption"}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
# Scope boundaries of the HTML parsing algorithm: an implied or stray end tag never closes
# an element outside the innermost of these.
_SCOPE = {"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"}
# The "special" elements: the end tag of an inline element does not close through them.
_SPECIAL = _SCOPE | _VOID | _BLOCK | _SKIP | {
    "body", "button", "center", "colgroup", "dir", "frameset", "hgroup", "listing",
    "menu", "noembed", "noframes", "plaintext", "select", "tbody", "textarea", "tfoot",
    "thead", "title", "xmp", "search", "dialog"}
# Start tags that close an open <p> (in button scope), as browsers do.
_CLOSES_P = {"address", "article", "aside", "blockquote", "center", "details", "dialog", "dir",
             "div", "dl", "fieldset", "figcaption", "figure", "footer", "form", "header",
             "hgroup", "hr", "main", "menu", "nav", "ol", "p", "pre", "section", "summary",
             "table", "ul", "li", "dd", "dt", "listing", "plaintext", "xmp", "search",
             *_HEADINGS}
# Start tag -> (open elements it closes, elements the search for them stops at).
_IMPLIED: dict[str, tuple[set[str], set[str]]] = {
    "li": ({"li"}, {"ul", "ol", "menu"} | _SCOPE),
    "dd": ({"dd", "dt"}, {"dl"} | _SCOPE),
    "dt": ({"dd", "dt"}, {"dl"} | _SCOPE),
    "tr": ({"tr"}, {"table", "thead", "tbody", "tfoot"}),
    "td": ({"td", "th"}, {"tr", "table"}),
    "th": ({"td", "th"}, {"tr", "table"}),
    "thead": ({"thead", "tbody", "tfoot"}, {"table"}),
    "tbody": ({"thead", "tbody", "tfoot"}, {"table"}),
    "tfoot": ({"thead", "tbody", "tfoot"}, {"table"}),
    "option": ({"option"}, {"select", "datalist", "optgroup"}),
    "optgroup": ({"optgroup", "option"}, {"select"}),
}
_FORMATTING = {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike",
               "strong", "tt", "u"}
_IN_HEAD = {"base", "basefont", "bgsound", "link", "meta", "noscript", "script", "style",
            "template", "title"}
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_CSS_LENGTH = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([a-z%]*)")


@dataclass
class _Open:
    tag: str
    hidden: bool
    foreign: bool  # inside <svg> or <math>: no HTML implied-end-tag rules


def _hidden_by(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """Whether the element's attributes hide it (and its content) from a reader."""
    for name, value in attrs:
        value = (value or "").strip().lower()
        if name == "hidden":
            return True
        if name == "aria-hidden" and value == "true":
            return True
        if name == "type" and tag == "input" and value == "hidden":
            return True
        if name == "style" and _style_hides(value):
            return True
    return False


def _style_hides(style: str) -> bool:
    """An inline style that makes text invisible: display:none, visibility:hidden|collapse,
    a font size or opacity of (about) zero, a transparent colour, or a far negative offset."""
    for decl in _CSS_COMMENT.sub("", style.lower()).split(";"):
        prop, _, value = decl.partition(":")
        prop = "".join(prop.split())
        value = "".join(value.split()).replace("!important", "")
        if prop == "display" and value == "none":
            return True
        if prop == "visibility" and value in {"hidden", "collapse"}:
            return True
        if prop == "color" and value == "transparent":
            return True
        m = _CSS_LENGTH.fullmatch(value)
        if not m:
            continue
        number, unit = float(m.group(1)), m.group(2)
        if prop == "font-size" and (number <= 0 or (unit in {"px", "pt", ""} and number < 1)
                                    or (unit in {"em", "rem", "ex", "ch"} and number < 0.1)
                                    or (unit == "%" and number < 10)):
            return True
        if prop == "opacity" and number <= (5 if unit == "%" else 0.05):
            return True
        if (prop in {"left", "top", "text-indent", "margin-left", "margin-top"}
                and unit in {"px", "pt", "em", "rem"}
                and number <= (-100 if unit in {"em", "rem"} else -999)):
            return True
    return False


class _TextExtractor(HTMLParser):
    """The text content of an HTML page without what a browser would not show.

    Keeps a stack of open elements: an element hidden by its tag or attributes hides
    everything until its own end tag, or until an ancestor's end tag closes it; void
    elements (``<br>``, ``<input>``) have no content and are never pushed; an unclosed
    ``<p>``, ``<li>``, ``<td>``... is closed by the start tags that close it in a browser.
    Every tag costs O(1): open elements are indexed by tag, so 100,000 nested or stray tags
    stay linear.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[_Open] = []
        self.hidden = 0  # hidden elements on the stack
        # stack indexes, innermost last: per (tag, foreign), of special and of scope elements
        self.where: dict[tuple[str, bool], list[int]] = {}
        self.specials: list[int] = []
        self.scopes: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        top = self.stack[-1] if self.stack else None
        foreign = top is not None and (top.foreign or top.tag in {"svg", "math"})
        if not foreign:
            self._implied_ends(tag)
        if tag in _BLOCK:
            self.parts.append("\n\n")
        if (tag in _VOID or (tag == "head" and len(self.stack) > 1)) and not foreign:
            return  # no content; a <head> inside the body is ignored, as a browser does
        self._push(_Open(tag, tag in _SKIP or _hidden_by(tag, attrs), foreign))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        # '<div/>' opens a div in HTML (the slash is ignored); only SVG/MathML self-close.
        self.handle_starttag(tag, attrs)
        if self.stack and self.stack[-1].foreign and self.stack[-1].tag == tag:
            self._pop_to(len(self.stack) - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK:
            self.parts.append("\n\n")
        i = max(self._innermost({tag}, False), self._innermost({tag}, True))
        # the end tag of an element that is special (or formatting) closes up to a scope
        # boundary; any other stops at the first special element; else it is ignored
        fence = self.scopes if tag in _SPECIAL or tag in _FORMATTING else self.specials
        if i < 0 or (fence and fence[-1] > i):
            return
        if tag in _FORMATTING and self.specials and self.specials[-1] > i:
            # '<b hidden><p>x</b>y': a browser moves the <p> out of the <b>, so only the <b>
            # ends (a simplified adoption agency algorithm); it stays as a blank placeholder
            node = self.stack[i]
            self.where[(node.tag, node.foreign)].pop()
            self.hidden -= node.hidden
            node.tag, node.hidden = "", False
        else:
            self._pop_to(i)

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)

    def _implied_ends(self, tag: str) -> None:
        if tag not in _IN_HEAD:
            for i, node in enumerate(self.stack[:2]):  # <head> or <html><head>
                if node.tag == "head":
                    self._pop_to(i)
                    break
        if tag in _CLOSES_P:
            self._close({"p"}, _SCOPE | {"button"})
        if tag in _HEADINGS and self.stack and self.stack[-1].tag in _HEADINGS:
            self._pop_to(len(self.stack) - 1)
        if tag in _IMPLIED:
            self._close(*_IMPLIED[tag])

    def _close(self, tags: set[str], stop: set[str]) -> None:
        """Close the innermost open element in ``tags`` unless one in ``stop`` is nearer."""
        i = self._innermost(tags, False)
        if i >= 0 and self._innermost(stop, False) < i:
            self._pop_to(i)

    def _innermost(self, tags: set[str], foreign: bool) -> int:
        return max((self.where[(t, foreign)][-1] for t in tags if self.where.get((t, foreign))),
                   default=-1)

    def _push(self, node: _Open) -> None:
        i = len(self.stack)
        self.stack.append(node)
        self.where.setdefault((node.tag, node.foreign), []).append(i)
        if not node.foreign:
            if node.tag in _SPECIAL:
                self.specials.append(i)
            if node.tag in _SCOPE:
                self.scopes.append(i)
        self.hidden += node.hidden

    def _pop_to(self, i: int) -> None:
        while len(self.stack) > i:
            node = self.stack.pop()
            j = len(self.stack)
            self.hidden -= node.hidden
            if node.tag:  # not a placeholder
                self.where[(node.tag, node.foreign)].pop()
            if self.specials and self.specials[-1] == j:
                self.specials.pop()
            if self.scopes and self.scopes[-1] == j:
                self.scopes.pop()


def _html_text(source: str) -> str:
    # Python's HTMLParser (before the CVE-2025-6069 fix) is quadratic on '<' constructs left
    # open at the end ('<a' repeated): no tag can start after the last '>', so escape them
    last = source.rfind(">")
    source = source[:last + 1] + source[last + 1:].replace("<", "&lt;")
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    text = "".join(parser.parts)  # character references are already decoded, once
    text = re.sub(r"[ \t\f\v]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- PDF: the text a reader sees ----------------------------------------------------------

def _pdf_text(data: bytes) -> str:
    import io

    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [_visible_page_text(reader, page).strip() for page in reader.pages]
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - LimitReachedError (a decompression bomb),
        # PdfReadError, and whatever else a hostile file makes the parser raise
        raise LoadError(f"unreadable PDF ({_brief(exc)})") from exc
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise LoadError("PDF has no extractable text")
    return text


_IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_MIN_TEXT_SIZE = 1.0  # text under 1 pt (0.35 mm) high cannot be read
_WHITE = 0.95  # ink this light is invisible on white paper
_DARK = 0.8  # a fill at most this light is a background white text shows on
_MIN_ALPHA = 0.05
_MAX_FORMS = 1000  # form XObjects expanded per page
_MAX_DEPTH = 12  # form XObjects nested
_MAX_CHECKS = 2_000_000  # text-origin-in-box tests per page
_PAINT = {b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*", b"S", b"s", b"n"}  # end a path
_NOWHERE_CLIPPED = (-math.inf, -math.inf, math.inf, math.inf)
_DEVICE_SPACES = {"/DeviceGray": 1, "/G": 1, "/CalGray": 1, "/DeviceRGB": 3, "/RGB": 3,
                  "/CalRGB": 3, "/DeviceCMYK": 4, "/CMYK": 4}


def _mul(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, ...]:
    """``a × b`` for PDF matrices [a b c d e f] (row vectors: p' = p × M)."""
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3],
            a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5])


def _point(m: tuple[float, ...], x: float, y: float) -> tuple[float, float]:
    return x * m[0] + y * m[2] + m[4], x * m[1] + y * m[3] + m[5]


def _nums(operands: list, n: int) -> list[float] | None:
    """The first ``n`` operands as floats, or None if they are not all numbers."""
    if len(operands) < n or not all(isinstance(v, (int, float)) for v in operands[:n]):
        return None
    return [float(v) for v in operands[:n]]


def _luminance(space: int, operands: list) -> float:
    """0 (black) to 1 (white) for a colour in a space of ``space`` components (-1: a
    Separation/DeviceN tint, 0: unknown, taken as dark)."""
    vals = [min(1.0, max(0.0, float(v))) for v in operands if isinstance(v, (int, float))]
    if space == 1 and len(vals) == 1:
        return vals[0]
    if space == 3 and len(vals) == 3:
        r, g, b = vals
    elif space == 4 and len(vals) == 4:
        c, m, y, k = vals
        r, g, b = (1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)
    elif space == -1 and vals:
        return 1.0 if max(vals) <= 0.02 else 0.0  # tint 0: no colorant, white paper
    else:
        return 0.0
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@dataclass
class _GState:
    ctm: tuple[float, ...] = _IDENTITY
    fill: float = 0.0  # luminance
    stroke: float = 0.0
    fill_space: int = 1
    stroke_space: int = 1
    fill_alpha: float = 1.0
    stroke_alpha: float = 1.0
    mode: int = 0  # text render mode
    size: float = 12.0  # font size
    hscale: float = 1.0
    leading: float = 0.0
    clip: tuple[float, float, float, float] = _NOWHERE_CLIPPED  # the clip path's bounding box


@dataclass
class _Show:
    """A text-showing operator, kept or dropped once the whole page has been seen."""

    operands: list
    op: bytes
    origin: tuple[float, float]
    ink: str  # "ink", "white" (shows only on a dark background), "clip", "none"
    tiny: bool
    clipped: bool  # off the page, or outside the clip path
    keep: bool = True

    def replacement(self) -> list[tuple[list, bytes]]:
        if self.keep:
            return [(self.operands, self.op)]
        if self.op == b"'":  # the line move stays, the text goes
            return [([], b"T*")]
        if self.op == b'"' and len(self.operands) >= 2:
            return [([self.operands[0]], b"Tw"), ([self.operands[1]], b"Tc"), ([], b"T*")]
        return []


@dataclass
class _Stream:
    """A content stream with its text-showing operators pending, and the form XObjects it
    draws (each Do gets its own filtered copy under an alias)."""

    ops: list
    resources: Any
    forms: dict[str, tuple[Any, _Stream]] = field(default_factory=dict)


class _PageInk:
    """Walks a page's content (and its forms), tracking the graphics state, to tell
    visible text from text drawn invisibly."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.shows: list[_Show] = []
        self.images: list[tuple[float, float, float, float]] = []
        self.backdrops: list[tuple[float, float, float, float]] = []  # dark fills, images
        self.shaded = False
        self.forms = 0
        self.parsed: dict[int, list] = {}  # form XObject -> its operators, parsed once
        self.aliases = 0

    def walk(self, operations: list, resources: Any, gs: _GState, depth: int,
             active: frozenset[int]) -> _Stream:
        res = _resolve(resources)
        out = _Stream([], resources)
        saved: list[_GState] = []
        tlm = tm = _IDENTITY
        path: list[tuple[float, float]] = []
        clipping = False  # W or W*: the path, once painted or ended, clips what follows
        for operands, op in operations:
            emit = True
            if op == b"q":
                saved.append(replace(gs))
            elif op == b"Q":
                if saved:
                    gs = saved.pop()
            elif op == b"cm":
                if (m := _nums(operands, 6)) is not None:
                    gs.ctm = _mul(tuple(m), gs.ctm)
            elif op in (b"g", b"rg", b"k"):
                gs.fill_space = {b"g": 1, b"rg": 3, b"k": 4}[op]
                gs.fill = _luminance(gs.fill_space, operands)
            elif op in (b"G", b"RG", b"K"):
                gs.stroke_space = {b"G": 1, b"RG": 3, b"K": 4}[op]
                gs.stroke = _luminance(gs.stroke_space, operands)
            elif op == b"cs" and operands:
                gs.fill_space, gs.fill = _colour_space(operands[0], res), 0.0
            elif op == b"CS" and operands:
                gs.stroke_space, gs.stroke = _colour_space(operands[0], res), 0.0
            elif op in (b"sc", b"scn"):
                gs.fill = _luminance(gs.fill_space, operands)
            elif op in (b"SC", b"SCN"):
                gs.stroke = _luminance(gs.stroke_space, operands)
            elif op == b"gs" and operands:
                _ext_gstate(gs, operands[0], res)
            elif op == b"Tr":
                if (m := _nums(operands, 1)) is not None and math.isfinite(m[0]):
                    gs.mode = int(m[0])
            elif op == b"Tf":
                if len(operands) >= 2 and isinstance(operands[1], (int, float)):
                    gs.size = float(operands[1])
            elif op == b"Tz":
                if (m := _nums(operands, 1)) is not None:
                    gs.hscale = m[0] / 100
            elif op == b"TL":
                if (m := _nums(operands, 1)) is not None:
                    gs.leading = m[0]
            elif op == b"BT":
                tlm = tm = _IDENTITY
            elif op in (b"Td", b"TD"):
                if (m := _nums(operands, 2)) is not None:
                    if op == b"TD":
                        gs.leading = -m[1]
                    tlm = tm = _mul((1.0, 0.0, 0.0, 1.0, m[0], m[1]), tlm)
            elif op == b"Tm":
                if (m := _nums(operands, 6)) is not None:
                    tlm = tm = tuple(m)
            elif op == b"T*":
                tlm = tm = _mul((1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading), tlm)
            elif op in (b"Tj", b"TJ", b"'", b'"'):
                if op in (b"'", b'"'):
                    tlm = tm = _mul((1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading), tlm)
                show = self._show(operands, op, tm, gs)
                self.shows.append(show)
                out.ops.append(show)
                emit = False
            elif op in (b"m", b"l", b"c", b"v", b"y"):
                nums = [float(v) for v in operands if isinstance(v, (int, float))]
                pairs = zip(nums[::2], nums[1::2], strict=False)  # an odd one out is ignored
                path += [_point(gs.ctm, x, y) for x, y in pairs]
            elif op == b"re":
                if (m := _nums(operands, 4)) is not None:
                    x, y, w, h = m
                    path += [_point(gs.ctm, x + dx, y + dy) for dx in (0, w) for dy in (0, h)]
            elif op in (b"W", b"W*"):
                clipping = True
            elif op in _PAINT:
                filled = op not in (b"S", b"s", b"n")
                if path and filled and gs.fill <= _DARK and gs.fill_alpha > _MIN_ALPHA:
                    self.backdrops.append(_bbox(path))
                if clipping and path:
                    gs.clip = _intersection(gs.clip, _bbox(path))
                path, clipping = [], False
            elif op == b"sh":
                self.shaded = True  # a shading fills the clip, of unknown extent
            elif op == b"INLINE IMAGE":
                self._image(gs.ctm)
            elif op == b"Do" and operands:
                emit = self._do(operands[0], res, gs, depth, active, out)
            if emit:
                out.ops.append((operands, op))
        return out

    def _show(self, operands: list, op: bytes, tm: tuple[float, ...], gs: _GState) -> _Show:
        trm = _mul(tm, gs.ctm)
        scale = abs(trm[0] * trm[3] - trm[1] * trm[2]) * abs(gs.hscale)
        tiny = abs(gs.size) * math.sqrt(scale) < _MIN_TEXT_SIZE
        inks = []
        if gs.mode in (0, 2, 4, 6) and gs.fill_alpha > _MIN_ALPHA:
            inks.append(gs.fill)
        if gs.mode in (1, 2, 5, 6) and gs.stroke_alpha > _MIN_ALPHA:
            inks.append(gs.stroke)
        if inks:
            ink = "white" if min(inks) >= _WHITE else "ink"
        else:
            ink = "clip" if gs.mode == 7 else "none"
        return _Show(list(operands), op, (trm[4], trm[5]), ink, tiny,
                     not _overlaps(self._extent(operands, op, trm, gs), gs.clip))

    @staticmethod
    def _extent(operands: list, op: bytes, trm: tuple[float, ...], gs: _GState
                ) -> tuple[float, float, float, float]:
        """A box sure to hold the glyphs shown: at most 1 em per byte, plus TJ's moves."""
        from pypdf.generic import NameObject

        items = (list(operands[0]) if op == b"TJ" and operands and isinstance(operands[0], list)
                 else operands[2:3] if op == b'"' else operands[:1])
        ems = 0.0
        for item in items:
            if isinstance(item, (bytes, str)) and not isinstance(item, NameObject):
                ems += len(item)
            elif isinstance(item, (int, float)):
                ems += max(0.0, -float(item) / 1000)
        width, height = ems * gs.size * gs.hscale, 1.2 * abs(gs.size)
        return _bbox([_point(trm, x, y) for x in (0.0, width) for y in (-height, height)])

    def _image(self, ctm: tuple[float, ...]) -> None:
        box = _bbox([_point(ctm, x, y) for x in (0, 1) for y in (0, 1)])
        self.images.append(box)
        self.backdrops.append(box)

    def _do(self, name: Any, res: Any, gs: _GState, depth: int, active: frozenset[int],
            out: _Stream) -> bool:
        """Handle ``/name Do``; False when the operator is replaced or dropped."""
        from pypdf.generic import ContentStream, NameObject

        if not isinstance(name, str):
            return True
        xobjects = _resolve(res.get("/XObject")) if res is not None else None
        xobj = _resolve(xobjects.get(name)) if xobjects is not None else None
        if xobj is None:
            return True
        subtype = xobj.get("/Subtype")
        if subtype == "/Image":
            self._image(gs.ctm)
            return True
        if subtype != "/Form":
            return True
        if id(xobj) in active or depth >= _MAX_DEPTH or self.forms >= _MAX_FORMS:
            return False  # a cycle or too much nesting: its text is not indexed
        self.forms += 1
        matrix = _nums(list(_resolve(xobj.get("/Matrix")) or []), 6) or list(_IDENTITY)
        ctm = _mul(tuple(matrix), gs.ctm)
        bbox = _nums(list(_resolve(xobj.get("/BBox")) or []), 4)
        clip = gs.clip if bbox is None else _intersection(gs.clip, _bbox(
            [_point(ctm, x, y) for x in bbox[::2] for y in bbox[1::2]]))
        inner = replace(gs, ctm=ctm, clip=clip)
        if id(xobj) not in self.parsed:
            try:
                self.parsed[id(xobj)] = ContentStream(xobj, self.reader, "bytes").operations
            except Exception:  # noqa: BLE001 - a broken form gives no text, as in pypdf
                self.parsed[id(xobj)] = []
        ops = self.parsed[id(xobj)]
        child = self.walk(ops, xobj.get("/Resources"), inner, depth + 1, active | {id(xobj)})
        self.aliases += 1
        alias = f"/RagVisible{self.aliases}"
        out.forms[alias] = (xobj, child)
        out.ops.append(([NameObject(alias)], b"Do"))
        return False

    def decide(self) -> None:
        """Keep or drop each text-showing operator. The box tests are capped per page: past
        ``_MAX_CHECKS``, text that needs one is dropped (never indexed unseen)."""
        budget = _MAX_CHECKS
        for s in self.shows:
            if s.tiny or s.clipped:
                s.keep = False
            elif s.ink in ("none", "clip", "white"):
                if s.ink != "none" and self.shaded:
                    continue
                # invisible ink counts only over an image: the OCR layer of a scanned page
                boxes = self.images if s.ink == "none" else self.backdrops
                budget -= len(boxes)
                s.keep = budget >= 0 and any(_inside(s.origin, box) for box in boxes)

    def materialise(self, node: _Stream) -> tuple[Any, Any]:
        """(ContentStream, resources) for ``node`` with the decisions applied."""
        from pypdf.generic import ContentStream, DictionaryObject, NameObject

        ops: list[tuple[list, bytes]] = []
        for item in node.ops:
            ops.extend(item.replacement() if isinstance(item, _Show) else [item])
        stream = ContentStream(None, self.reader)
        stream.operations = ops
        resources = node.resources
        if node.forms:
            resources = DictionaryObject(_resolve(resources) or {})
            xobjects = DictionaryObject(_resolve(resources.get("/XObject")) or {})
            for alias, (xobj, child) in node.forms.items():
                form, form_resources = self.materialise(child)
                for key, value in xobj.items():
                    if key not in ("/Length", "/Filter", "/DecodeParms", "/Resources"):
                        form[NameObject(key)] = value
                if form_resources is not None:
                    form[NameObject("/Resources")] = form_resources
                xobjects[NameObject(alias)] = form
            resources[NameObject("/XObject")] = xobjects
        return stream, resources


def _resolve(obj: Any) -> Any:
    return obj.get_object() if obj is not None and hasattr(obj, "get_object") else obj


def _colour_space(name: Any, res: Any) -> int:
    """Components of colour space ``name`` (-1 Separation/DeviceN, 0 unknown or pattern)."""
    if not isinstance(name, str):
        return 0
    if name in _DEVICE_SPACES:
        return _DEVICE_SPACES[name]
    spaces = _resolve(res.get("/ColorSpace")) if res is not None else None
    cs = _resolve(spaces.get(name)) if spaces is not None else None
    if cs is None:
        return 0
    if not isinstance(cs, list):
        return _DEVICE_SPACES.get(cs, 0)
    family = cs[0] if cs else None
    if family in ("/Separation", "/DeviceN"):
        return -1
    if family == "/ICCBased" and len(cs) > 1:
        n = _resolve(cs[1]).get("/N")
        return int(n) if n in (1, 3, 4) else 0
    return _DEVICE_SPACES.get(family, 0)


def _ext_gstate(gs: _GState, name: Any, res: Any) -> None:
    if not isinstance(name, str):
        return
    states = _resolve(res.get("/ExtGState")) if res is not None else None
    state = _resolve(states.get(name)) if states is not None else None
    if state is None:
        return
    if isinstance(state.get("/ca"), (int, float)):
        gs.fill_alpha = float(state["/ca"])
    if isinstance(state.get("/CA"), (int, float)):
        gs.stroke_alpha = float(state["/CA"])
    font = _resolve(state.get("/Font"))
    if isinstance(font, list) and len(font) == 2 and isinstance(font[1], (int, float)):
        gs.size = float(font[1])


def _bbox(points: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _intersection(a: tuple[float, float, float, float], b: tuple[float, float, float, float]
                  ) -> tuple[float, float, float, float]:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]
              ) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _visible_page_text(reader: Any, page: Any) -> str:
    """The page's text without text drawn invisibly (see the module docstring)."""
    from pypdf.generic import ContentStream, NameObject

    if page.get("/Contents") is None:
        return ""
    # strings stay bytes, to be decoded with each font's encoding, as pypdf's own extraction
    contents = ContentStream(page["/Contents"], reader, "bytes")
    try:
        box = [float(v) for v in page.cropbox]
        page_box = _bbox([(box[0], box[1]), (box[2], box[3])])
    except Exception:  # noqa: BLE001 - no usable page box: nothing is off the page
        page_box = _NOWHERE_CLIPPED
    ink = _PageInk(reader)
    tree = ink.walk(contents.operations, page.get("/Resources"), _GState(clip=page_box), 0,
                    frozenset())
    ink.decide()
    stream, resources = ink.materialise(tree)
    page[NameObject("/Contents")] = stream
    if resources is not None:
        page[NameObject("/Resources")] = resources
    return page.extract_text() or ""
