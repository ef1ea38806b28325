"""The fixed Q&A set, the judge labels and the harness's pure parts."""

import json
from collections import Counter

import pytest

from evals.harness import CATEGORIES, KEYS, check_thresholds, load_qa, stratified
from evals.metrics import balanced_accuracy, correct, norm

from .conftest import ARTICLE, PROJECT

QA = PROJECT / "evals" / "qa.jsonl"
LABELS = PROJECT / "evals" / "judge_labels.jsonl"


def test_qa_set_is_valid_and_covers_every_category():
    items = load_qa(QA, ARTICLE.read_text())
    counts = Counter(it["category"] for it in items)
    assert len(items) >= 60
    assert set(counts) == set(CATEGORIES)
    assert counts["unanswerable"] >= 10 and counts["false_premise"] >= 5
    for it in items:
        assert list(it) == list(KEYS)
        assert 1 <= len(it["must_include"]) <= 4 if it["answerable"] else not it["must_include"]
        assert all(s in ARTICLE.read_text() for s in it["support"])


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
    assert {it["category"] for it in subset} == set(CATEGORIES)


def test_thresholds_report_each_failure(tmp_path):
    t = tmp_path / "t.toml"
    t.write_text("[min]\ncorrectness = 0.8\ncitation_validity = 1.0\n"
                 "[max]\nfalse_abstention_rate = 0.2\n")
    summary = {"judge": {"balanced_accuracy": 0.9}, "systems": {"project": {"overall": {
        "correctness": 0.7, "citation_validity": 1.0, "false_abstention_rate": 0.3}}}}
    failures = check_thresholds(summary, t)
    assert len(failures) == 2
    assert any("correctness" in f for f in failures)
