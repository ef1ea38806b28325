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
import tempfile
from pathlib import Path

from rag import Settings
from tests.load_support import print_table, run_load
from tests.support import PROJECT, running_app


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
