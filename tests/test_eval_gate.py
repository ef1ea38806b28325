"""The CI quality gate: the eval's test split (a third of evals/qa.jsonl, never tuned on) with
the real embedded model must meet evals/thresholds.toml. Writes
test-output/eval/{results.jsonl,summary.json,report.html}. The dev split and the naive chain
beside it: `python -m evals` (README, Evaluation)."""

import time

import pytest

from evals.harness import check_thresholds, evaluate, print_table
from rag import Settings

from .conftest import OUTPUT, PROJECT

pytestmark = pytest.mark.eval


def test_eval_meets_the_thresholds(capsys):
    t0 = time.perf_counter()
    summary = evaluate(Settings.load(), PROJECT / "evals" / "qa.jsonl", OUTPUT / "eval",
                       baseline=False, progress=False, split="test", grounded=False)
    # grounded=False: 'grounded in retrieved' is reported by `python -m evals`, not gated; the
    # judge calls it costs (about a third) are kept out of `make test`'s 45-minute budget
    with capsys.disabled():
        print_table(summary)
        print(f"eval duration: {time.perf_counter() - t0:.0f} s; report: "
              f"{OUTPUT / 'eval' / 'report.html'}")
    assert summary["split"] == "test" and summary["items"] == summary["items_in_file"] > 40
    failures = check_thresholds(summary, PROJECT / "evals" / "thresholds.toml")
    assert not failures, "\n".join(failures)
