"""``python -m evals``: the eval command line (``rag eval`` runs this)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rag import USAGE_ERRORS, USER_ERRORS, Settings

from .harness import main as run_eval


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evals",
                                description="Run the eval harness on a Q&A file.")
    p.add_argument("--config", help="TOML settings file (default: ./rag.toml if present)")
    p.add_argument("--model-size", choices=["1.5b", "0.5b"], help="embedded model size")
    p.add_argument("--backend", choices=["llama", "openai"], help="LLM backend")
    p.add_argument("--qa", type=Path, default=Path("evals/qa.jsonl"))
    p.add_argument("--out", type=Path, default=Path("eval-output"))
    p.add_argument("--limit", type=int, help="stratified subset of this many items")
    p.add_argument("--split", choices=["dev", "test"],
                   help="only this split (tune on dev; run test only to report)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--thresholds", type=Path, help="fail (exit 1) below these minimums")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.load(args.config, model_size=args.model_size, backend=args.backend)
        return run_eval(settings, args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, USAGE_ERRORS) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
