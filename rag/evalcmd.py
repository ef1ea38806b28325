"""``rag eval``: runs the eval harness (``python -m evals``) of the source checkout.

The harness (``evals/``: the question set, the judge, the gate's thresholds) is not part of the
installed package: a top-level ``evals`` package in the wheel would shadow PyPI's ``evals``. It
runs from a source checkout: the one this package runs from, or the working directory if it is
one. Anywhere else ``rag eval`` says so and exits with 2 (a usage error).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .settings import is_checkout, source_checkout

NOT_HERE = ("error: `rag eval` runs the eval harness (evals/), which is not part of the "
            "installed package: it lives in the project's source checkout; run `make eval` "
            "(or `rag eval --help` for its options) in the checkout's folder")


def harness_root() -> Path | None:
    """The source checkout whose ``evals/`` harness ``rag eval`` runs, or None."""
    for root in (source_checkout(), Path.cwd()):
        if root is not None and (root / "evals" / "__main__.py").is_file() and is_checkout(root):
            return root
    return None


def eval_command(argv: list[str]) -> int:
    """Run ``python -m evals *argv`` from the checkout's harness; exit code 2 with one
    ``error:`` line when there is none (an installed wheel outside a checkout)."""
    root = harness_root()
    if root is None:
        print(NOT_HERE, file=sys.stderr)
        return 2
    # the checkout's folder first on the path: its evals/, never another `evals` installed
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return subprocess.call([sys.executable, "-m", "evals", *argv], env=env)
