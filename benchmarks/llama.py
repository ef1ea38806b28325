"""llama.cpp builds and the model's process boundary, measured side by side on this machine.

    python -m benchmarks.llama                       # the installed build + the worker's cost
    python -m benchmarks.llama --wheel A.whl --wheel B.whl   # compare other builds of 0.3.36

Builds: each wheel is unpacked into a temporary folder and run in its own subprocess on the same
prompt (the system prompt, four article passages and a question, ~860 tokens): prefill tok/s is
the prompt from an empty cache to the first token, decode tok/s the answer's tokens after it
(greedy, at most 64; a logit bias to ban the end of text would run a Python logits processor per
token and halve the measured rate).
Boundary: the same questions answered in-process (``llama_cpp.Llama``) and through the worker
process the app uses (``generation.ModelWorker``), alternating, with the system prompt's KV cache
warm in both; first-token and answer times are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from rag import Settings
from rag.generation import ModelWorker, build_messages
from rag.models import model_file
from rag.types import Passage
from tests.support import PROJECT

ARTICLE = PROJECT / "corpus" / "us-policy-in-tajikistan.txt"
QUESTIONS = ["How much is the Boeing deal worth?", "Who is Almas Miriev?",
             "What minerals does Tajikistan have?", "What risks does the article see?"]

_BUILD_PROBE = r"""
import json, sys, time
import llama_cpp
from llama_cpp import Llama
path, prompt, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=2048, n_threads=2, n_batch=256, verbose=False)
tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
prefill, decode = [], []
for _ in range(runs):
    llm.reset()
    t0 = time.perf_counter()
    first, n = None, 0
    for _part in llm.create_completion(tokens, max_tokens=64, temperature=0.0, stream=True):
        n += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    prefill.append(len(tokens) / (first - t0))
    decode.append((n - 1) / (end - first))
print(json.dumps({"system_info": llama_cpp.llama_print_system_info().decode().strip(),
                  "prompt_tokens": len(tokens), "prefill": prefill, "decode": decode}))
"""


def _passages(first: int) -> list[Passage]:
    """Four consecutive 450-character windows of the article, from window ``first`` (about the
    size of the app's k = 4 passages of 96 tokens)."""
    text = ARTICLE.read_text()
    return [Passage(f"c{i}", ARTICLE.name, i * 450, (i + 1) * 450, text[i * 450:(i + 1) * 450],
                    rank=i) for i in range(first, first + 4)]


def _prompt() -> str:
    msgs = build_messages(QUESTIONS[0], _passages(0))
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + \
        "<|im_start|>assistant\n"


def bench_build(python_path: str | None, model: Path, runs: int) -> dict:
    """Prefill and decode tok/s of one build (``python_path``: where its llama_cpp lies)."""
    env = {**os.environ, "PYTHONPATH": python_path} if python_path else None
    out = subprocess.run([sys.executable, "-c", _BUILD_PROBE, str(model), _prompt(), str(runs)],
                         capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return {"error": f"exit {out.returncode}: {out.stderr.strip()[-300:]}"}
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"system_info": res["system_info"], "prompt_tokens": res["prompt_tokens"],
            "prefill_tok_s": round(statistics.median(res["prefill"]), 1),
            "decode_tok_s": round(statistics.median(res["decode"]), 1)}


def bench_boundary(model: Path, rounds: int) -> dict:
    """First-token and answer time in-process vs through the worker process."""
    from llama_cpp import Llama

    cases = [build_messages(q, _passages(2 * i)) for i, q in enumerate(QUESTIONS)]
    inproc = Llama(model_path=str(model), n_ctx=2048, n_threads=2, n_batch=256, verbose=False)
    worker = ModelWorker(str(model), 2048, 2)

    def in_process(msgs: list[dict[str, str]]) -> tuple[float, float]:
        t0 = time.perf_counter()
        first = None
        for part in inproc.create_chat_completion(messages=msgs, max_tokens=48, temperature=0.0,
                                                  stream=True):
            if first is None and part["choices"][0].get("delta", {}).get("content"):
                first = time.perf_counter() - t0
        return first or 0.0, time.perf_counter() - t0

    def through_worker(msgs: list[dict[str, str]]) -> tuple[float, float]:
        t0 = time.perf_counter()
        first = None
        for _ in worker.generate(msgs, 48, 0.0, 300):
            if first is None:
                first = time.perf_counter() - t0
        return first or 0.0, time.perf_counter() - t0

    for fn in (in_process, through_worker):  # warm both: the system prompt's KV cache
        fn(cases[0])
    got: dict[str, list[tuple[float, float]]] = {"in_process": [], "worker": []}
    for _ in range(rounds):
        for msgs in cases:
            got["in_process"].append(in_process(msgs))
            got["worker"].append(through_worker(msgs))
    worker.stop()
    inproc.close()
    out = {name: {"first_token_p50_s": round(statistics.median(f for f, _ in v), 3),
                  "answer_p50_s": round(statistics.median(t for _, t in v), 3), "n": len(v)}
           for name, v in got.items()}
    for key in ("first_token_p50_s", "answer_p50_s"):
        base = out["in_process"][key]
        out["worker"][key.replace("_s", "_overhead_pct")] = round(
            100 * (out["worker"][key] - base) / base, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llama", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", action="append", default=[], type=Path,
                        help="another llama-cpp-python wheel to compare (repeatable)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="boundary: rounds of 4 questions")
    parser.add_argument("--skip-boundary", action="store_true")
    parser.add_argument("--out", type=Path, default=PROJECT / "benchmark-output")
    args = parser.parse_args(argv)
    settings = Settings.load()
    model = model_file(settings.model_size, settings.model_dir)
    res: dict = {"model": settings.model_size, "builds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        res["builds"]["installed"] = bench_build(None, model, args.runs)
        for i, wheel in enumerate(args.wheel):
            dest = Path(tmp) / f"w{i}"
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(dest)
            for lib in (dest / "llama_cpp" / "lib").glob("*.so*"):
                lib.chmod(0o755)
            flags = wheel.parent / "cmake-args.txt"
            name = flags.read_text().strip() if flags.exists() else wheel.name
            res["builds"][name] = bench_build(str(dest), model, args.runs)
    print(f"\nllama.cpp builds ({settings.model_size}, same prompt, median of {args.runs})")
    print(f"{'build':<40}{'prefill tok/s':>15}{'decode tok/s':>14}  compiled paths")
    for name, r in res["builds"].items():
        label = name if len(name) < 40 else "…" + name[-38:]
        if "error" in r:
            print(f"{label:<40}{'crashed: ' + r['error'][:60]}")
            continue
        paths = r["system_info"].replace("CPU : ", "").replace(" = 1", "").replace(" |", "")
        print(f"{label:<40}{r['prefill_tok_s']:>15}{r['decode_tok_s']:>14}  {paths}")
    if not args.skip_boundary:
        res["boundary"] = b = bench_boundary(model, args.rounds)
        print(f"\nProcess boundary ({settings.model_size}, {b['worker']['n']} answers each, "
              "48 tokens max, warm prefix)")
        print(f"{'':<14}{'first token p50 s':>18}{'answer p50 s':>14}")
        for name in ("in_process", "worker"):
            print(f"{name:<14}{b[name]['first_token_p50_s']:>18}{b[name]['answer_p50_s']:>14}")
        print(f"worker overhead: first token {b['worker']['first_token_p50_overhead_pct']:+} %, "
              f"answer {b['worker']['answer_p50_overhead_pct']:+} %")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "llama.json").write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
