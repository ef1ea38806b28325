"""The CI quality gate: the full eval with the real embedded model must meet
evals/thresholds.toml. Writes test-output/eval/{results.jsonl,summary.json,report.html}."""

import time

import pytest

from evals.harness import check_thresholds, evaluate, print_table
from rag import Settings

from .conftest import OUTPUT, PROJECT

pytestmark = pytest.mark.eval


def test_eval_meets_the_thresholds(capsys):
    t0 = time.perf_counter()
    summary = evaluate(Settings.load(), PROJECT / "evals" / "qa.jsonl", OUTPUT / "eval",
                       progress=False)
    with capsys.disabled():
        print_table(summary)
        print(f"eval duration: {time.perf_counter() - t0:.0f} s; report: "
              f"{OUTPUT / 'eval' / 'report.html'}")
    assert summary["items"] == summary["items_in_file"]
    failures = check_thresholds(summary, PROJECT / "evals" / "thresholds.toml")
    assert not failures, "\n".join(failures)
