"""The fixed Q&A set, the judge labels and the harness's pure parts."""

import json
import re
from collections import Counter

import pytest

from evals.claims import split_answer
from evals.harness import check_thresholds
from evals.judge import missing, polarity_differs
from evals.metrics import balanced_accuracy, correct, norm
from evals.qa import CATEGORIES, KEYS, QAItem, load_qa, stratified

from .conftest import ARTICLE, PROJECT

QA = PROJECT / "evals" / "qa.jsonl"
LABELS = PROJECT / "evals" / "judge_labels.jsonl"


def test_qa_set_is_valid_and_covers_every_category():
    items = load_qa(QA, ARTICLE.read_text())
    counts = Counter(it.category for it in items)
    assert len(items) >= 60
    assert set(counts) == set(CATEGORIES)
    assert counts["unanswerable"] >= 10 and counts["false_premise"] >= 5
    assert {it.split for it in items} == {"dev", "test"}
    for line in QA.read_text().splitlines():
        assert list(json.loads(line)) == list(KEYS)
    for it in items:
        assert isinstance(it, QAItem)
        assert 1 <= len(it.must_include) <= 4 if it.answerable else not it.must_include
        assert all(s in ARTICLE.read_text() for s in it.support)


def test_judge_labels_have_hard_negatives_of_every_kind():
    labels = [json.loads(line) for line in LABELS.read_text().splitlines()]
    assert len(labels) >= 60
    kinds = Counter(x["kind"] for x in labels if not x["supported"])
    assert {"changed number", "swapped name", "negation"} <= set(kinds)
    assert 0.4 <= sum(x["supported"] for x in labels) / len(labels) <= 0.6
    assert all(x["passage"] in ARTICLE.read_text() for x in labels)


def test_load_qa_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = json.loads(QA.read_text().splitlines()[0])
    bad.write_text(json.dumps({**good, "extra": 1}) + "\n")
    with pytest.raises(ValueError, match="keys"):
        load_qa(bad)
    bad.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match="duplicate"):
        load_qa(bad)
    bad.write_text(json.dumps({**good, "support": ["not in the article at all"]}) + "\n")
    with pytest.raises(ValueError, match="not in the corpus"):
        load_qa(bad, ARTICLE.read_text())


def test_normalisation_for_must_include():
    assert norm("Over the past Six months – “quote”") == 'over the past 6 months - "quote"'
    assert correct("It is worth $3.2 Billion [1].", ["3.2 billion"])
    assert correct("the 5–10 year outlook", ["5-10 year"])
    assert not correct("It is worth $3.5 billion.", ["3.2 billion"])


def test_balanced_accuracy():
    assert balanced_accuracy([True, True, False, False], [True, False, False, False]) == 0.75


def test_stratified_subset_keeps_every_category():
    items = load_qa(QA)
    subset = stratified(items, 18)
    assert len(subset) == 18
    assert {it.category for it in subset} == set(CATEGORIES)
    assert [it.id for it in subset] == [it.id for it in items if it in subset]  # file order


def test_thresholds_report_each_failure(tmp_path):
    t = tmp_path / "t.toml"
    t.write_text("[min]\ncorrectness = 0.8\ncitation_validity = 1.0\n"
                 "[max]\nfalse_abstention_rate = 0.2\n")
    summary = {"judge": {"balanced_accuracy": 0.9}, "systems": {"project": {"overall": {
        "correctness": 0.7, "citation_validity": 1.0, "false_abstention_rate": 0.3}}}}
    failures = check_thresholds(summary, t)
    assert len(failures) == 2
    assert any("correctness" in f for f in failures)


def test_split_answer_assigns_markers_to_their_sentences():
    got = split_answer("The deal is worth $3.2 billion [1]. It covers aircraft [1][2]. "
                       "The U.S. runs a program.[3] Washington [2, 4] acted.")
    assert [(c.text, c.cited) for c in got] == [
        ("The deal is worth $3.2 billion.", (1,)), ("It covers aircraft.", (1, 2)),
        ("The U.S. runs a program.", (3,)), ("Washington acted.", (2, 4))]
    assert split_answer("No markers here.")[0].cited == ()
    assert split_answer("") == []


def test_judge_facts_and_polarity_need_no_model():
    passage = ("Over the past six months, Washington has dramatically intensified its "
               "engagement, driven by concerns over China’s growing influence.")
    assert missing("Washington intensified its engagement over six months.", passage) == []
    assert missing("Washington intensified its engagement over 6 years.", passage) == ["6 year"]
    assert missing("Russia's growing influence is a concern.", passage) == ["russia"]
    assert missing("Chinese influence is growing.", passage) == []  # another ending
    assert missing("The United States intensified its engagement.",
                   "The U.S. has intensified its engagement.") == []
    cannot = "While the U.S. can offer training, it cannot alter Tajikistan’s calculus."
    assert polarity_differs("The U.S. can alter Tajikistan's calculus.", cannot)
    assert not polarity_differs("The U.S. can offer training.", cannot)
    assert not polarity_differs("The U.S. cannot alter Tajikistan's calculus.", cannot)
    assert not polarity_differs("The deal is about more than the fleet.",
                                "The deal is not simply about the fleet.")


def test_judge_takes_a_verbatim_sentence_without_a_model():
    from evals.judge import Judge

    class Untouchable:
        name = "none"

        def encode(self, texts):
            raise AssertionError("the embedding model was asked")

        def stream(self, messages, max_tokens):
            raise AssertionError("the LLM was asked")

    judge = Judge(Untouchable(), Untouchable())  # type: ignore[arg-type]
    passage = ("The $3.2 billion deal with Boeing – encompassing aircraft purchases – is not "
               "simply about modernizing Tajikistan’s air fleet. It’s a calculated move.")
    verdict = judge("“The $3.2 billion deal with Boeing - encompassing aircraft purchases - is "
                    "not simply about modernizing Tajikistan's air fleet.”", passage)
    assert verdict.supported and verdict.reason == "verbatim"
    assert judge("it's a calculated move", passage).reason == "verbatim"
    # a part of a sentence is no sentence of the passage: the judge reads it as usual
    with pytest.raises(AssertionError, match="embedding"):
        judge("The deal is simply about modernizing Tajikistan’s air fleet.", passage)


def test_evals_share_no_code_with_the_checker():
    banned = re.compile(r"^\s*(from|import)\s+(rag\.verify|rag\.grounding|rag\.store|chromadb|"
                        r"langchain_chroma)\b", re.M)
    for path in (PROJECT / "evals").glob("*.py"):
        found = banned.search(path.read_text())
        assert not found, f"{path.name}: {found.group(0).strip()}"


def test_cli_parses_the_eval_options():
    from evals.__main__ import parser

    args = parser().parse_args(["--qa", "q.jsonl", "--limit", "5", "--split", "dev",
                                "--no-baseline", "--model-size", "0.5b", "--backend", "llama"])
    assert (str(args.qa), args.limit, args.split, args.no_baseline, args.model_size,
            args.backend, args.config, args.thresholds) == (
        "q.jsonl", 5, "dev", True, "0.5b", "llama", None, None)


def test_scoring_aggregation_and_report_on_a_made_up_run(tmp_path):
    from evals.harness import aggregate, score_item
    from evals.judge import Verdict
    from evals.report import write_report
    from evals.runs import Hit, Retrieval, Run

    items = stratified(load_qa(QA), 4)
    quote = "The $3.2 billion deal with Boeing"
    source = {"a.txt": f"x {quote} y"}
    cite = {"n": 1, "source": "a.txt", "chunk_id": "c1", "start": 2, "end": 2 + len(quote),
            "quote": quote}
    runs = [Run("The deal is worth $3.2 billion [1]. It is with Boeing [1].", False, [cite],
                {"c1": quote}, {1: quote}, seconds=1.0, first_token=0.5)
            if it.answerable else Run("The documents don't say.", True, [], {}, {}, seconds=0.5)
            for it in items]
    retrievals = [Retrieval((Hit("c1", 0.9, 0.8, 1.0),), 1 if it.answerable else None)
                  for it in items]
    judged = []

    def judge(claim: str, passage: str) -> Verdict:
        judged.append(claim)
        return Verdict("Boeing" in claim, 1.0, "")

    scores = [score_item(it, run, judge, source) for it, run in zip(items, runs, strict=True)]
    answered = next(s for s, it in zip(scores, items, strict=True) if it.answerable)
    assert answered["citation_valid"] == [True]
    assert answered["sentences_supported"] == [False, True]
    assert "The deal is worth $3.2 billion." in judged
    summary = aggregate(items, retrievals, scores, runs)
    assert summary["overall"]["n"] == 4 and summary["overall"]["recall@1"] == 1.0
    by_split = summary["by_split"]
    assert set(by_split) == {it.split for it in items}
    assert sum(block["n"] for block in by_split.values()) == 4
    report = tmp_path / "report.html"
    write_report(report, {"systems": {"project": summary}, "judge": {
        "name": "stub", "balanced_accuracy": 1.0, "n": 0, "wrong": []}, "items": 4,
        "items_in_file": 4, "qa": "qa.jsonl", "settings": {}, "seconds": 1.0,
        "subset": False}, items, retrievals, {"project": runs}, {"project": scores})
    assert "Eval report" in report.read_text()


def test_rag_eval_hands_every_option_to_the_harness():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "rag.cli", "--model-size", "0.5b", "eval",
                          "--split", "dev", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--split" in out.stdout and "--thresholds" in out.stdout
