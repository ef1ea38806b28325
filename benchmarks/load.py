"""Load test: N concurrent chat users through ``gradio_client`` against the running app.

    python -m benchmarks.load                       # 20 users x 3 questions, app started here
    python -m benchmarks.load --url http://127.0.0.1:7860 --users 20 --questions 2

Bounded in count (users x questions) and time (--deadline); loopback only. The app answers
one question at a time (queue concurrency 1: the CPU is the limit), so waits grow with the
queue; the point is that every request is answered or queued, none fails, memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

from rag import Settings

from .servers import PROJECT, rss_mb, running_app

QUESTIONS = [
    "How much is the Boeing deal worth?",
    "What minerals does Tajikistan hold significant deposits of?",
    "What is the capital of Tajikistan?",  # abstains
    "Who is Emily Harding?",
    "What does the article say about China?",
    "Who won the 2022 World Cup?",  # abstains without the model
]


def run_load(url: str, users: int, questions: int, deadline: float = 900.0,
             model_size: str = "", pid: int = 0) -> dict:
    """Each user asks ``questions`` questions in turn; returns counts, waits and memory."""
    from gradio_client import Client

    host = urlparse(url).hostname
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"refusing to load-test {url}: loopback only")
    client = Client(url, verbose=False)
    size = model_size or "1.5b"
    client.predict(QUESTIONS[0], [], size, 4, False, api_name="/ask")  # warm the model
    rss_start = rss_mb(pid) if pid else 0.0
    peak = [rss_start]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], rss_mb(pid))

    waits: list[float] = []
    failures: list[str] = []
    t_end = time.monotonic() + deadline

    def user(u: int) -> None:
        c = Client(url, verbose=False)
        for i in range(questions):
            left = t_end - time.monotonic()
            if left <= 0:
                failures.append(f"user {u}: deadline reached before question {i + 1}")
                return
            q = QUESTIONS[(u + i) % len(QUESTIONS)]
            t0 = time.monotonic()
            try:
                history, _ = c.submit(q, [], size, 4, False, api_name="/ask").result(
                    timeout=left)
                reply = history[-1]["content"] if history else ""
                if not reply or "class=\"error\"" in str(reply):
                    failures.append(f"user {u}: {q!r} -> {str(reply)[:120]}")
                    continue
                waits.append(time.monotonic() - t0)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                failures.append(f"user {u}: {q!r} -> {type(exc).__name__}: {exc}")

    if pid:
        threading.Thread(target=sample, daemon=True).start()
    t0 = time.monotonic()
    with ThreadPoolExecutor(users) as pool:
        list(pool.map(user, range(users)))
    seconds = time.monotonic() - t0
    stop.set()
    rss_end = rss_mb(pid) if pid else 0.0
    waits.sort()
    return {
        "users": users, "requests": users * questions, "answered": len(waits),
        "failed": len(failures), "failures": failures[:10], "seconds": round(seconds, 1),
        "answers_per_minute": round(60 * len(waits) / seconds, 1) if seconds else 0.0,
        "wait_p50_s": round(statistics.median(waits), 1) if waits else None,
        "wait_p95_s": round(waits[int(0.95 * (len(waits) - 1))], 1) if waits else None,
        "wait_max_s": round(waits[-1], 1) if waits else None,
        "rss_mb_after_warmup": round(rss_start), "rss_mb_peak": round(peak[0]),
        "rss_mb_end": round(rss_end), "model": size,
    }


def print_table(result: dict) -> None:
    rows = [("users x questions", f"{result['users']} x "
             f"{result['requests'] // max(result['users'], 1)}"),
            ("answered / failed", f"{result['answered']} / {result['failed']}"),
            ("wall time", f"{result['seconds']} s"),
            ("throughput", f"{result['answers_per_minute']} answers/min"),
            ("wait p50 / p95 / max", f"{result['wait_p50_s']} / {result['wait_p95_s']} / "
             f"{result['wait_max_s']} s"),
            ("app RSS after warm-up / peak / end",
             f"{result['rss_mb_after_warmup']} / {result['rss_mb_peak']} / "
             f"{result['rss_mb_end']} MB"),
            ("model", result["model"])]
    width = max(len(r[0]) for r in rows)
    print(f"\nLoad test ({result['model']} model)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for f in result["failures"]:
        print(f"  FAILED {f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running app (default: start one on the default article)")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--questions", type=int, default=3, help="questions per user")
    p.add_argument("--model-size", default="1.5b", choices=["1.5b", "0.5b"])
    p.add_argument("--deadline", type=float, default=900.0, help="seconds for the whole run")
    p.add_argument("--out", type=Path, default=Path("benchmark-output/load.json"))
    args = p.parse_args(argv)
    if args.url:
        result = run_load(args.url, args.users, args.questions, args.deadline, args.model_size)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            settings = _article_copy(Path(tmp))
            with running_app(settings, Path(tmp) / "app.log",
                             RAG_MODEL_SIZE=args.model_size) as app:
                result = run_load(app.url, args.users, args.questions, args.deadline,
                                  args.model_size, app.pid)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 1 if result["failed"] else 0


def _article_copy(root: Path) -> Settings:
    """The default corpus in a private folder with its own index."""
    corpus = root / "corpus"
    shutil.copytree(PROJECT / "corpus", corpus)
    return Settings.load(corpus_dir=corpus, store_dir=root / "store",
                         model_dir=PROJECT / ".rag" / "models")


if __name__ == "__main__":
    raise SystemExit(main())
