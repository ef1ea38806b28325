"""The load generator: N concurrent chat users through ``gradio_client`` against a running app.
Used by ``tests/test_load.py`` (short CI variant) and ``python -m benchmarks.load`` (full run).

Bounded in count (users x questions) and time (deadline); loopback only.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

from tests.support import rss_mb

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
                history, *_ = c.submit(q, [], size, 4, False, api_name="/ask").result(
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
