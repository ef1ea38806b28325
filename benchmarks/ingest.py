"""Load and chunk at scale: seconds per MB of ``load_text`` + ``chunk_text`` on generated files.

    python -m benchmarks.ingest                       # prose 1-20 MB, pathological 1-5 MB
    python -m benchmarks.ingest --sizes 1,2 --kinds prose

Prose is the sentences of ``corpus/*.txt`` shuffled into paragraphs of 2-6 sentences. The
pathological inputs are ``"x. "`` repeated (one endless sentence of initials), base64-like
text without spaces or line breaks, one giant paragraph of prose (no line breaks) and prose
lines separated by runs of blank lines. Files are written to a temporary folder and chunked
with the settings' chunk size and overlap. A linear pipeline shows a flat "s per MB" column.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rag import Settings
from rag.chunking import chunk_text
from rag.loaders import load_text
from rag.text import sentence_spans

PROJECT = Path(__file__).resolve().parent.parent
MB = 1_000_000
PROSE_SIZES = [1, 2, 5, 10, 20]
PATHOLOGICAL_SIZES = [1, 2, 5]


def _sentences() -> list[str]:
    out = []
    for path in sorted((PROJECT / "corpus").glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        out += [text[a:b] for a, b in sentence_spans(text)]
    return out or ["The quick brown fox jumps over the lazy dog."]


def _fill(size: int, piece: Callable[[], str]) -> str:
    """Concatenate ``piece()`` until ``size`` UTF-8 bytes, cut to exactly that many (or one
    character fewer)."""
    parts: list[str] = []
    n = 0
    while n < size:
        p = piece()
        parts.append(p)
        n += len(p.encode())
    return "".join(parts).encode()[:size].decode("utf-8", errors="ignore")


def prose(size: int, rng: random.Random) -> str:
    sents = _sentences()
    return _fill(size, lambda: " ".join(rng.choices(sents, k=rng.randint(2, 6))) + "\n\n")


def giant_paragraph(size: int, rng: random.Random) -> str:
    sents = _sentences()
    return _fill(size, lambda: rng.choice(sents) + " ")


def blank_lines(size: int, rng: random.Random) -> str:
    sents = _sentences()
    return _fill(size, lambda: rng.choice(sents) + "\n" * rng.randint(2, 400)
                 + " \n" * rng.randint(0, 3))


def initials(size: int, rng: random.Random) -> str:
    return "x. " * (size // 3) + "x"


def base64_like(size: int, rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "+/"
    return "".join(rng.choices(alphabet, k=size))


KINDS: dict[str, tuple[Callable[[int, random.Random], str], list[int]]] = {
    "prose": (prose, PROSE_SIZES),
    "x. repeated": (initials, PATHOLOGICAL_SIZES),
    "base64-like": (base64_like, PATHOLOGICAL_SIZES),
    "giant paragraph": (giant_paragraph, PATHOLOGICAL_SIZES),
    "blank lines": (blank_lines, PATHOLOGICAL_SIZES),
}


def measure(path: Path, size: int, overlap: int) -> dict:
    """Wall-clock seconds of loading and of chunking one file, and the CPU seconds of both
    (less disturbed by other processes on a shared machine)."""
    c0, t0 = time.process_time(), time.perf_counter()
    text = load_text(path)
    t1 = time.perf_counter()
    chunks = chunk_text(text, path.name, size, overlap)
    t2, c2 = time.perf_counter(), time.process_time()
    mb = path.stat().st_size / MB
    total = t2 - t0
    return {"mb": mb, "load_s": t1 - t0, "chunk_s": t2 - t1, "seconds": total,
            "cpu_s": c2 - c0, "mb_per_s": mb / total if total else float("inf"),
            "chunks": len(chunks), "s_per_mb": total / mb}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ingest", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma list of: " + ", ".join(KINDS))
    p.add_argument("--sizes", default="", help="comma list of MB (fractions allowed) for every "
                   "kind; default: prose 1,2,5,10,20 and pathological 1,2,5")
    p.add_argument("--budget", type=float, default=120.0,
                   help="skip a kind's larger sizes once one took longer than this many seconds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    settings = Settings()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        p.error(f"unknown kind(s): {', '.join(unknown)}")
    chunk_text("Warm up: the tokenizer and its tables load once.", "warm-up.txt")
    print(f"chunk size {settings.chunk_tokens} tokens, overlap {settings.chunk_overlap}\n")
    print("| input | MB | load s | chunk s | total s | CPU s | MB/s | chunks | s per MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        for kind in kinds:
            make, default_sizes = KINDS[kind]
            sizes = [float(s) for s in args.sizes.split(",") if s.strip()] or default_sizes
            for mb in sizes:
                path = Path(tmp) / f"{kind.replace(' ', '-').replace('.', '')}-{mb:g}MB.txt"
                path.write_text(make(int(mb * MB), random.Random(args.seed)), encoding="utf-8")
                r = measure(path, settings.chunk_tokens, settings.chunk_overlap)
                path.unlink()
                print(f"| {kind} | {r['mb']:.2f} | {r['load_s']:.2f} | {r['chunk_s']:.2f} | "
                      f"{r['seconds']:.2f} | {r['cpu_s']:.2f} | {r['mb_per_s']:.2f} | "
                      f"{r['chunks']:,} | {r['s_per_mb']:.2f} |", flush=True)
                if r["seconds"] > args.budget:
                    print(f"| {kind} | larger sizes skipped: over the {args.budget:g} s budget "
                          "| | | | | | | |", flush=True)
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main())
